using System.Globalization;
using System.Reflection;
using System.Text.RegularExpressions;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace LsKd.Kernels.Gpu;

/// <summary>What ptxas reported for one kernel: registers per thread, the stack frame (local memory) and spills.</summary>
public sealed record PtxasUsage(string Kernel, int Registers, int StackFrameBytes, int SpillStoreBytes, int SpillLoadBytes, int SharedBytes)
{
    /// <summary>Local memory in a kernel (a stack frame or spills) is the slow path the tiled kernels are written to avoid.</summary>
    public bool UsesLocalMemory => StackFrameBytes > 0 || SpillStoreBytes > 0 || SpillLoadBytes > 0;
}

/// <summary>
/// The PTX of every ILGPU kernel for a chosen NVIDIA architecture, compiled without a GPU (ILGPU's PTX backend), and
/// the reading of `ptxas -v` on it. Kernels are the static methods of this namespace's static classes whose first
/// parameter is an Index1D (implicitly grouped) or that take no index (explicitly grouped, e.g. the tiled GEMMs).
/// </summary>
public static class KernelPtx
{
    public static IEnumerable<MethodInfo> Kernels() =>
        from t in typeof(KernelPtx).Assembly.GetTypes()
        where t.Namespace == typeof(KernelPtx).Namespace && t.IsAbstract && t.IsSealed
        from m in t.GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static)
        where m.ReturnType == typeof(void) && m.GetParameters().Length > 0 && !m.IsSpecialName
            && !m.ContainsGenericParameters && m.GetParameters().All(p => !p.ParameterType.IsByRef)   // helpers take refs; kernels never do
        orderby t.Name, m.Name
        select m;

    public static string Name(MethodInfo kernel) => $"{kernel.DeclaringType!.Name}.{kernel.Name}";

    /// <summary>A compiler for one architecture and PTX ISA (ptxas of CUDA 11.8 reads ISA 7.8 at most; 12.0 reads 8.0).</summary>
    public sealed class Compiler : IDisposable
    {
        readonly Context _context;
        readonly PTXBackend _backend;

        public Compiler(CudaArchitecture architecture, CudaInstructionSet isa)
        {
            _context = Context.Create(b => b.Cuda().EnableAlgorithms().Optimize(OptimizationLevel.O2));
            _backend = new PTXBackend(_context, new CudaCapabilityContext(architecture), architecture, isa, null);
        }

        public string Compile(MethodInfo kernel)
        {
            bool implicitlyGrouped = kernel.GetParameters()[0].ParameterType == typeof(Index1D);
            var entry = implicitlyGrouped ? EntryPointDescription.FromImplicitlyGroupedKernel(kernel) : EntryPointDescription.FromExplicitlyGroupedKernel(kernel);
            return ((PTXCompiledKernel)_backend.Compile(entry, IlgpuGemmKernels.SpecializationOf(kernel))).PTXAssembly;
        }

        public void Dispose() { _backend.Dispose(); _context.Dispose(); }
    }

    static readonly Regex Registers = new(@"Used (\d+) registers");
    static readonly Regex Frame = new(@"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads");
    static readonly Regex Shared = new(@"(\d+) bytes smem");

    /// <summary>Reads `ptxas -v` output for one kernel (its "Used N registers" and "N bytes stack frame" lines);
    /// null if the output holds neither (ptxas failed).</summary>
    public static PtxasUsage? ParsePtxas(string kernel, string output)
    {
        var r = Registers.Match(output);
        var f = Frame.Match(output);
        if (!r.Success && !f.Success) return null;
        int G(Match m, int i) => m.Success ? int.Parse(m.Groups[i].Value, CultureInfo.InvariantCulture) : 0;
        var s = Shared.Match(output);
        return new PtxasUsage(kernel, G(r, 1), G(f, 1), G(f, 2), G(f, 3), G(s, 1));
    }
}
