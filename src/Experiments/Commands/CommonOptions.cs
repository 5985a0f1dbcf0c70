using System.CommandLine;
using LsKd.Kernels;
using LsKd.Kernels.Cpu;

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
        Description = "CPU only: run every convolution pass whose shape supports it with this algorithm (A/B timings): " +
                      string.Join(", ", ConvPlanner.All.Select(ConvPlanner.Name)),
    };

    /// <summary>The backend with the forced convolution algorithm, if one was given (a usage error on a GPU device
    /// or an unknown name).</summary>
    public static IBackend CreateBackend(string device, int threads, string? convAlgorithm)
    {
        var backend = CreateBackend(device, threads);
        if (convAlgorithm == null) return backend;
        if (!ConvPlanner.TryParse(convAlgorithm, out var algorithm))
        {
            backend.Dispose();
            throw new UsageException($"--conv: unknown algorithm '{convAlgorithm}'; valid: {string.Join(", ", ConvPlanner.All.Select(ConvPlanner.Name))}");
        }
        if (backend is not CpuBackend cpu)
        {
            backend.Dispose();
            throw new UsageException($"--conv: convolution algorithms are chosen on the CPU backend only, not on '{device}'");
        }
        cpu.ForcedConvAlgorithm = algorithm;
        return cpu;
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
