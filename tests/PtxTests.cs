using System.Reflection;
using System.Text.RegularExpressions;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace LsKd.Tests;

/// <summary>Compiles every ILGPU kernel to PTX for an H100 (SM 9.0) without a GPU and checks two things the first
/// CUDA run taught: no 64-bit integer division or remainder (ILGPU placed index divisions inside inner loops, and
/// convolutions ran at 82 GFLOP/s instead of 2.2 TFLOP/s), and no tanh.approx (2^-11 relative error, which failed
/// the GELU and tanh checks).</summary>
[TestFixture]
public class PtxTests
{
    static readonly Regex Division64 = new(@"\b(div|rem)\.[su]64\b");
    static readonly Regex ApproximateTanh = new(@"\btanh\.approx\b");

    static Context? s_context;
    static PTXBackend? s_backend;

    static PTXBackend Backend()
    {
        s_context ??= Context.Create(b => b.Cuda().EnableAlgorithms().Optimize(OptimizationLevel.O2));
        return s_backend ??= new PTXBackend(s_context, new CudaCapabilityContext(CudaArchitecture.SM_90), CudaArchitecture.SM_90, CudaInstructionSet.ISA_80, null);
    }

    [OneTimeTearDown]
    public void TearDown()
    {
        s_backend?.Dispose(); s_context?.Dispose();
        s_backend = null; s_context = null;
    }

    /// <summary>Kernels are the static void methods of the Gpu namespace; an Index1D first parameter marks an
    /// implicitly grouped kernel, anything else an explicitly grouped one.</summary>
    static IEnumerable<TestCaseData> Kernels() =>
        from t in typeof(Kernels.IBackend).Assembly.GetTypes()
        where t.Namespace == "LsKd.Kernels.Gpu" && t.IsAbstract && t.IsSealed
        from m in t.GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static)
        where m.ReturnType == typeof(void) && m.GetParameters().Length > 0 && !m.IsSpecialName
            && !m.ContainsGenericParameters && m.GetParameters().All(p => !p.ParameterType.IsByRef)   // helpers take refs; kernels never do
        select new TestCaseData(m).SetName($"PTX of {t.Name}.{m.Name}");

    public static string Compile(MethodInfo kernel) => Ptx(kernel);

    static string Ptx(MethodInfo kernel)
    {
        bool implicitlyGrouped = kernel.GetParameters()[0].ParameterType == typeof(Index1D);
        var entry = implicitlyGrouped ? EntryPointDescription.FromImplicitlyGroupedKernel(kernel) : EntryPointDescription.FromExplicitlyGroupedKernel(kernel);
        return ((PTXCompiledKernel)Backend().Compile(entry, new KernelSpecialization())).PTXAssembly;
    }

    [TestCaseSource(nameof(Kernels))]
    public void KernelHasNoSlowOrApproximateInstructions(MethodInfo kernel)
    {
        string ptx = Ptx(kernel);
        Assert.That(Division64.Matches(ptx), Is.Empty, "64-bit integer division: use 32-bit index arithmetic");
        Assert.That(ApproximateTanh.Matches(ptx), Is.Empty, "tanh.approx: use ScalarMath.Tanh (through exp)");
    }

    [Test]
    public void TheDetectorFindsBothPatterns()
    {
        string ptx = Ptx(typeof(PtxTests).GetMethod(nameof(BadKernel), BindingFlags.NonPublic | BindingFlags.Static)!);
        Assert.That(Division64.Matches(ptx), Is.Not.Empty);
        Assert.That(ApproximateTanh.Matches(ptx), Is.Not.Empty);
    }

    /// <summary>What the checks must catch: a 64-bit division in a loop and MathF.Tanh.</summary>
    static void BadKernel(Index1D i, ArrayView1D<float, Stride1D.Dense> y, long n)
    {
        float acc = 0f;
        for (long j = 0; j < n; j++) acc += y[(int)i * j / (n + 1)];
        y[i] = MathF.Tanh(acc);
    }
}
