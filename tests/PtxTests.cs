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

    static LsKd.Kernels.Gpu.KernelPtx.Compiler? s_compiler;

    [OneTimeTearDown]
    public void TearDown()
    {
        s_compiler?.Dispose();
        s_compiler = null;
    }

    static IEnumerable<TestCaseData> Kernels() =>
        LsKd.Kernels.Gpu.KernelPtx.Kernels().Select(m => new TestCaseData(m).SetName($"PTX of {LsKd.Kernels.Gpu.KernelPtx.Name(m)}"));

    public static string Compile(MethodInfo kernel) => Ptx(kernel);

    static string Ptx(MethodInfo kernel) =>
        (s_compiler ??= new LsKd.Kernels.Gpu.KernelPtx.Compiler(CudaArchitecture.SM_90, CudaInstructionSet.ISA_80)).Compile(kernel);

    [TestCaseSource(nameof(Kernels))]
    public void KernelHasNoSlowOrApproximateInstructions(MethodInfo kernel)
    {
        string ptx = Ptx(kernel);
        Assert.That(Division64.Matches(ptx), Is.Empty, "64-bit integer division: use 32-bit index arithmetic");
        Assert.That(ApproximateTanh.Matches(ptx), Is.Empty, "tanh.approx: use ScalarMath.Tanh (through exp)");
    }

    static readonly Regex LocalDeclaration = new(@"\.local\s+\.align\s+\d+\s+\.b8\s+\w+\[(\d+)\]");

    /// <summary>No local memory: arrays in registers' place (a per-thread tile as an array, a big struct on the stack)
    /// show up as .local declarations. The only ones allowed are the 4-byte operands of the TF32 kernels' inline
    /// mma.sync (ILGPU passes them by address), which ptxas folds into registers: `lskd ptx --ptxas` reads a 0-byte
    /// stack frame for every kernel (docs/BENCHMARKS.md).</summary>
    [TestCaseSource(nameof(Kernels))]
    public void KernelDeclaresNoLocalArrays(MethodInfo kernel)
    {
        var sizes = LocalDeclaration.Matches(Ptx(kernel)).Select(m => int.Parse(m.Groups[1].Value)).ToList();
        if (kernel.Name.Contains("Tf32")) Assert.That(sizes, Has.All.EqualTo(4), "only 4-byte mma operands may be declared local");
        else Assert.That(sizes, Is.Empty, "local memory declared");
    }

    [Test]
    public void PtxasVerboseOutputIsRead()
    {
        const string output = """
            ptxas info    : 0 bytes gmem
            ptxas info    : Compiling entry function 'Kernel' for 'sm_90'
            ptxas info    : Function properties for Kernel
                24 bytes stack frame, 8 bytes spill stores, 12 bytes spill loads
            ptxas info    : Used 126 registers, 16 bytes smem, 552 bytes cmem[0]
            """;
        var usage = LsKd.Kernels.Gpu.KernelPtx.ParsePtxas("k", output)!;
        Assert.That((usage.Registers, usage.StackFrameBytes, usage.SpillStoreBytes, usage.SpillLoadBytes, usage.SharedBytes), Is.EqualTo((126, 24, 8, 12, 16)));
        Assert.That(usage.UsesLocalMemory, Is.True);
        Assert.That(LsKd.Kernels.Gpu.KernelPtx.ParsePtxas("k", "ptxas fatal   : Unresolved extern function"), Is.Null);
        var clean = LsKd.Kernels.Gpu.KernelPtx.ParsePtxas("k", "    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\nptxas info    : Used 10 registers")!;
        Assert.That(clean.UsesLocalMemory, Is.False);
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
