using LsKd.Kernels;
using LsKd.Kernels.Cpu;
using LsKd.Kernels.Gpu;

namespace LsKd.Tests;

/// <summary>The backends every op test runs on (candle's test_device! idea): the CPU SIMD backend on both vector
/// widths and thread counts, and ILGPU's CPU accelerator with two simulated group sizes (16 like the emulator's
/// default, 64 closer to a GPU). Backends are created once per test run; CUDA is added when present.</summary>
public static class Backends
{
    static readonly Lazy<Dictionary<string, IBackend>> s_all = new(() =>
    {
        var d = new Dictionary<string, IBackend>
        {
            ["cpu-v512-2t"] = new CpuBackend(2),
            ["cpu-v256-1t"] = new CpuBackend(1, allowVector512: false),
            ["ilgpu-cpu-g64"] = IlgpuBackend.CreateCpuEmulator(warpSize: 4, warpsPerGroup: 16),
            ["ilgpu-cpu-g16"] = IlgpuBackend.CreateCpuEmulator(warpSize: 4, warpsPerGroup: 4),
        };
        if (IlgpuBackend.CudaAvailable()) d["cuda"] = IlgpuBackend.CreateCuda();
        return d;
    });

    public static IEnumerable<string> Names => s_all.Value.Keys;
    public static IBackend Get(string name) => s_all.Value[name];
    public static bool IsEmulator(string name) => name.StartsWith("ilgpu-cpu", StringComparison.Ordinal);
}
