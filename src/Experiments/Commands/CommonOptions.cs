using System.CommandLine;
using LsKd.Kernels;

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

    /// <summary>Creates the backend, turning a bad device name or a missing GPU into a one-line usage error.</summary>
    public static IBackend CreateBackend(string device, int threads)
    {
        if (threads < 0 || threads > MaxThreads) throw new UsageException($"--threads must be from 0 (all cores) to {MaxThreads}, got {threads}");
        try { return Devices.Create(device, threads); }
        catch (ArgumentException e) { throw new UsageException($"--device: {e.Message}"); }
        catch (InvalidOperationException e) { throw new UsageException($"--device: {e.Message}"); }
    }
}
