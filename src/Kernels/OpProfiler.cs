using System.Collections.Concurrent;
using System.Diagnostics;

namespace LsKd.Kernels;

/// <summary>Optional wall-clock time per backend op (`lskd bench train --profile`). Off by default: then each op
/// pays one static flag test. Times include the op's argument checks. On asynchronous devices (CUDA) the outermost
/// op synchronises the device before reading the clock, so a profiled step measures kernels, not launches.</summary>
public static class OpProfiler
{
    static readonly ConcurrentDictionary<string, (long Ticks, long Calls)> s_totals = new();
    [ThreadStatic] static int t_depth;

    public static bool Enabled { get; set; }

    public static long Start()
    {
        if (!Enabled) return 0;
        t_depth++;
        return Stopwatch.GetTimestamp();
    }

    /// <summary>Only the outermost op on a thread is recorded, so composed ops are not counted twice.</summary>
    public static void Stop(string op, long start, IBackend backend)
    {
        if (start == 0) return;
        if (--t_depth > 0) return;
        backend.Synchronize();
        long elapsed = Stopwatch.GetTimestamp() - start;
        s_totals.AddOrUpdate(op, (elapsed, 1), (_, v) => (v.Ticks + elapsed, v.Calls + 1));
    }

    /// <summary>`using var profile = OpProfiler.Scope(this, "Op");` times the rest of the block (nothing when off).</summary>
    public static ProfileScope Scope(IBackend backend, string op)
    {
        if (backend is BackendBase counted) { counted.Dispatches++; counted.PrepareThread(); }
        return Enabled ? new ProfileScope(op, backend, Start()) : default;
    }

    public readonly struct ProfileScope(string op, IBackend backend, long start) : IDisposable
    {
        public void Dispose() { if (start != 0) Stop(op, start, backend); }
    }

    public static void Reset() => s_totals.Clear();

    /// <summary>(op, total milliseconds, calls), most expensive first.</summary>
    public static List<(string Op, double Milliseconds, long Calls)> Snapshot() =>
        s_totals.Select(kv => (kv.Key, kv.Value.Ticks * 1000.0 / Stopwatch.Frequency, kv.Value.Calls)).OrderByDescending(x => x.Item2).ToList();
}
