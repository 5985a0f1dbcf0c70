using LsKd.Kernels.Cpu;
using LsKd.Kernels.Gpu;

namespace LsKd.Kernels;

/// <summary>Device choice: auto (CUDA if present, else CPU SIMD), cpu, cuda, ilgpu-cpu (kernel debugging).</summary>
public static class Devices
{
    public static readonly string[] Names = ["auto", "cpu", "cuda", "ilgpu-cpu"];

    public static IBackend Create(string name, int threads = 0)
    {
        switch (name.Trim().ToLowerInvariant())
        {
            case "cpu": return new CpuBackend(threads);
            case "cuda": return IlgpuBackend.CreateCuda();
            case "ilgpu-cpu": return IlgpuBackend.CreateCpuEmulator();
            case "auto": return IlgpuBackend.CudaAvailable() ? IlgpuBackend.CreateCuda() : new CpuBackend(threads);
            default:
                throw new ArgumentException($"unknown device '{name}'; valid choices: {string.Join(", ", Names)}");
        }
    }
}
