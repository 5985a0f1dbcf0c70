using LsKd.Kernels.Cpu;
using LsKd.Kernels.Gpu;

namespace LsKd.Kernels;

/// <summary>Device choice: auto (CUDA if present, else CPU SIMD), cpu, cpu-v256 (the CPU kernels on 256-bit vectors even
/// where AVX-512 exists: what an AVX2 machine runs), cuda, ilgpu-cpu (kernel debugging).</summary>
public static class Devices
{
    public static readonly string[] Names = ["auto", "cpu", "cpu-v256", "cuda", "ilgpu-cpu"];

    public static IBackend Create(string name, int threads = 0)
    {
        switch (name.Trim().ToLowerInvariant())
        {
            case "cpu": return new CpuBackend(threads);
            case "cpu-v256": return new CpuBackend(threads, allowVector512: false);
            case "cuda": return IlgpuBackend.CreateCuda();
            case "ilgpu-cpu": return IlgpuBackend.CreateCpuEmulator();
            case "auto": return IlgpuBackend.CudaAvailable() ? IlgpuBackend.CreateCuda() : new CpuBackend(threads);
            default:
                throw new ArgumentException($"unknown device '{name}'; valid choices: {string.Join(", ", Names)}");
        }
    }
}
