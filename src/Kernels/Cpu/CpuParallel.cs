namespace LsKd.Kernels.Cpu;

/// <summary>Static partitioning of a range over a fixed number of threads. Each index is always processed by
/// the same code in the same order, so results do not depend on scheduling.</summary>
public sealed class CpuParallel
{
    readonly ParallelOptions _options;

    public CpuParallel(int threads)
    {
        Threads = Math.Max(1, threads);
        _options = new ParallelOptions { MaxDegreeOfParallelism = Threads };
    }

    public int Threads { get; }

    /// <summary>Applied to every thread that runs a chunk (see <see cref="FloatControl"/>).</summary>
    public DenormalMode Denormals { get; set; } = DenormalMode.Flush;

    /// <summary>Runs body(start, end) over [0, count) in at most Threads contiguous chunks, or inline when the
    /// total work (count * costPerItem, in rough flops) is too small to pay for a thread hand-off.</summary>
    public void For(int count, long costPerItem, Action<int, int> body, long minCostPerChunk = 1 << 16)
    {
        if (count <= 0) return;
        long total = count * Math.Max(1, costPerItem);
        int chunks = (int)Math.Min(Math.Min(Threads, count), Math.Max(1, total / minCostPerChunk));
        var mode = Denormals;
        FloatControl.Use(mode);
        if (chunks <= 1) { body(0, count); return; }
        Parallel.For(0, chunks, _options, c =>
        {
            FloatControl.Use(mode);
            body((int)((long)c * count / chunks), (int)((long)(c + 1) * count / chunks));
        });
    }

    /// <summary>Runs body(chunkIndex) for chunkIndex in [0, chunks) on up to Threads threads.</summary>
    public void Chunks(int chunks, Action<int> body)
    {
        var mode = Denormals;
        FloatControl.Use(mode);
        if (chunks <= 1) { if (chunks == 1) body(0); return; }
        Parallel.For(0, chunks, _options, c => { FloatControl.Use(mode); body(c); });
    }
}
