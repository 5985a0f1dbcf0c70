using System.CommandLine;
using System.Text.Json.Nodes;
using LsKd.Kernels;
using LsKd.Kernels.Gpu;

namespace LsKd.Experiments.Commands;

/// <summary>
/// `--jsonl FILE` of `lskd check` and the `bench` commands: one JSON line per figure, appended as soon as the figure
/// exists (device, GPU driver and compute capability, the peer, the case, ours, the peer's, their ratio), so a run
/// killed at its time limit keeps every figure finished before it. Each line is one small append; a kill can at worst
/// cut the line being written.
/// </summary>
internal sealed class ResultLog
{
    readonly string _path;
    readonly string _step;
    readonly JsonObject _device;

    public static Option<string?> Option() => new("--jsonl")
    {
        Description = "append one JSON line per figure (device, driver, peer, case, ours, peer's, ratio) to this file as it is measured",
    };

    ResultLog(string path, string step, IBackend be)
    {
        _path = path;
        _step = step;
        _device = Describe(be);
    }

    /// <summary>The log, or null without --jsonl; a folder that cannot be written is a usage error before any timing.</summary>
    public static ResultLog? Open(string? path, string step, IBackend be)
    {
        if (string.IsNullOrEmpty(path)) return null;
        try
        {
            string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
            if (dir != null) Directory.CreateDirectory(dir);
            using (File.Open(path, FileMode.Append, FileAccess.Write)) { }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UsageException($"--jsonl: cannot append to {path}: {e.Message}");
        }
        return new ResultLog(path, step, be);
    }

    /// <summary>The device as the lines name it: the backend, and on CUDA the GPU, its driver and compute capability.</summary>
    public static JsonObject Describe(IBackend be)
    {
        var o = new JsonObject { ["backend"] = be.Name, ["device"] = be.DeviceDescription };
        if (be is IlgpuBackend { Accelerator: ILGPU.Runtime.Cuda.CudaAccelerator cuda })
        {
            o["gpu"] = cuda.Name;
            o["driver"] = cuda.DriverVersion.ToString();
            o["compute_capability"] = cuda.Architecture.ToString();
            o["multiprocessors"] = cuda.NumMultiprocessors;
        }
        return o;
    }

    /// <summary>One figure. <paramref name="higherIsBetter"/> sets the ratio's direction so that above 1 always
    /// means LsKd is ahead (GFLOP/s: ours / peer; milliseconds: peer / ours).</summary>
    public void Add(string @case, string unit, double ours, double? peer = null, bool higherIsBetter = true, bool? passed = null, string? note = null)
    {
        var o = new JsonObject
        {
            ["time"] = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ"),
            ["step"] = _step,
            ["device"] = _device.DeepClone(),
            ["peer"] = peer != null ? BenchCommand.PeerName ?? "PyTorch" : null,
            ["case"] = @case,
            ["unit"] = unit,
            ["ours"] = Finite(ours),
            ["peer_value"] = peer is { } p ? Finite(p) : null,
            ["ratio"] = peer is { } q && q > 0 && ours > 0 ? Finite(higherIsBetter ? ours / q : q / ours) : null,
        };
        if (passed != null) o["passed"] = passed;
        if (note != null) o["note"] = note;
        lock (this) File.AppendAllText(_path, o.ToJsonString() + "\n");
    }

    static JsonNode? Finite(double v) => double.IsFinite(v) ? JsonValue.Create(v) : null;
}
