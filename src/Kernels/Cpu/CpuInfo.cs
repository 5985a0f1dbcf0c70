namespace LsKd.Kernels.Cpu;

/// <summary>The processor name for reports (from /proc/cpuinfo on Linux).</summary>
public static class CpuInfo
{
    static readonly Lazy<string> s_model = new(() =>
    {
        try
        {
            if (File.Exists("/proc/cpuinfo"))
                foreach (var line in File.ReadLines("/proc/cpuinfo"))
                    if (line.StartsWith("model name", StringComparison.Ordinal))
                        return line[(line.IndexOf(':') + 1)..].Trim();
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return $"{System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture} CPU";
    });

    public static string ModelName => s_model.Value;
}
