using System.CommandLine;
using LsKd.Kernels;
using LsKd.Kernels.Cpu;
using LsKd.Kernels.Gpu;

namespace LsKd.Experiments.Commands;

internal static class CommonOptions
{
    public static Option<string> Device() => new("--device")
    {
        Description = $"compute device: {string.Join(", ", Devices.Names)} (auto = CUDA if present, else CPU SIMD)",
        DefaultValueFactory = _ => "auto",
    };

    public static Option<int> Threads() => new("--threads")
    {
        Description = "CPU threads (0 = all cores)",
        DefaultValueFactory = _ => 0,
    };

    public const int MaxThreads = 1024;

    public static Option<string?> ConvAlgorithm() => new("--conv")
    {
        Description = "run every convolution pass whose shape supports it with this algorithm (A/B timings). CPU: " +
                      string.Join(", ", ConvPlanner.All.Select(ConvPlanner.Name)) + "; GPU: " + string.Join(", ", IlgpuBackend.ConvKernelNames),
    };

    public static Option<string?> GemmKernel() => new("--gemm-kernel")
    {
        Description = "GPU only: run every GEMM (and implicit-GEMM convolution) on this kernel: " + string.Join(", ", IlgpuBackend.GemmKernelNames),
    };

    public static Option<bool> Tf32() => new("--tf32")
    {
        Description = "GPU only: let GEMMs and convolutions use TF32 tensor cores (10-bit mantissa inputs, fp32 sums); the peer then allows TF32 too",
    };

    /// <summary>The backend with the forced convolution algorithm or GEMM kernel and TF32 permission, where given (a
    /// usage error for an unknown name or an option the device does not have).</summary>
    public static IBackend CreateBackend(string device, int threads, string? convAlgorithm, string? gemmKernel = null, bool tf32 = false)
    {
        var backend = CreateBackend(device, threads);
        try
        {
            if (backend is IlgpuBackend gpu)
            {
                if (convAlgorithm != null)
                    gpu.ForcedConvKernel = IlgpuBackend.TryParseConvKernel(convAlgorithm, out var k) ? k
                        : throw new UsageException($"--conv: unknown GPU convolution kernel '{convAlgorithm}'; valid on '{device}': {string.Join(", ", IlgpuBackend.ConvKernelNames)}");
                if (gemmKernel != null)
                {
                    if (!IlgpuBackend.TryParseGemmKernel(gemmKernel, out var g))
                        throw new UsageException($"--gemm-kernel: unknown kernel '{gemmKernel}'; valid: {string.Join(", ", IlgpuBackend.GemmKernelNames)}");
                    if (!gpu.Supports(g)) throw new UsageException($"--gemm-kernel: '{gemmKernel}' cannot run on {gpu.Accelerator.Name} (groups or warps too small)");
                    gpu.ForcedGemmKernel = g;
                }
                gpu.AllowTf32 = tf32;
                return gpu;
            }
            if (gemmKernel != null || tf32) throw new UsageException($"--gemm-kernel and --tf32 choose GPU kernels; '{device}' runs the CPU backend");
            if (convAlgorithm == null) return backend;
            if (!ConvPlanner.TryParse(convAlgorithm, out var algorithm))
                throw new UsageException($"--conv: unknown algorithm '{convAlgorithm}'; valid: {string.Join(", ", ConvPlanner.All.Select(ConvPlanner.Name))}");
            ((CpuBackend)backend).ForcedConvAlgorithm = algorithm;
            return backend;
        }
        catch { backend.Dispose(); throw; }
    }

    /// <summary>Creates the backend, turning a bad device name or a missing GPU into a one-line usage error.</summary>
    public static IBackend CreateBackend(string device, int threads)
    {
        if (threads < 0 || threads > MaxThreads) throw new UsageException($"--threads must be from 0 (all cores) to {MaxThreads}, got {threads}");
        try { return Devices.Create(device, threads); }
        catch (ArgumentException e) { throw new UsageException($"--device: {e.Message}"); }
        catch (InvalidOperationException e) { throw new UsageException($"--device: {e.Message}"); }
    }
}
