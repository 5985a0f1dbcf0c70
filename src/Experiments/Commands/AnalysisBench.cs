using System.CommandLine;
using System.Diagnostics;
using LsKd.Kernels;
using Spectre.Console;

namespace LsKd.Experiments.Commands;

/// <summary>`lskd bench analysis`: the analysis kernels at the size of a whole Fashion-MNIST training set's
/// penultimate features (60,000 x 512 by default): class centroids, distances, Householder QR and PCA.</summary>
internal static class AnalysisBench
{
    public static Command Create(Func<Option<bool>> peerOption)
    {
        var device = CommonOptions.Device(); var threads = CommonOptions.Threads(); var peer = peerOption();
        var rows = new Option<int>("--rows") { Description = "feature rows (samples)", DefaultValueFactory = _ => 60000 };
        var dim = new Option<int>("--dim") { Description = "feature dimension", DefaultValueFactory = _ => 512 };
        var runs = new Option<int>("--runs") { Description = "timed runs per kernel (after one warm-up)", DefaultValueFactory = _ => 3 };
        var jsonl = ResultLog.Option();
        var cmd = new Command("analysis", "Time centroids, distances, QR and PCA on a features matrix (default 60,000 x 512).") { device, threads, rows, dim, runs, peer, jsonl };
        cmd.SetAction(pr =>
        {
            int n = pr.GetValue(rows), d = pr.GetValue(dim), r = pr.GetValue(runs);
            if (n < 2 || d < 1 || n < d) throw new UsageException($"--rows/--dim: need rows >= dim >= 1 and rows >= 2, got {n} x {d}");
            if (r < 1) throw new UsageException($"--runs must be >= 1, got {r}");
            const int classes = 10, subset = 4000;
            using var be = CommonOptions.CreateBackend(pr.GetValue(device)!, pr.GetValue(threads));
            var log = ResultLog.Open(pr.GetValue(jsonl), "analysis", be);
            AnsiConsole.MarkupLine($"analysis kernels on [bold]{Markup.Escape(be.ToString()!)}[/], features {n} x {d}, {r} timed run(s) each");
            using var x = be.Allocate(n * d);
            be.InitNormal(x, n * d, 5, 0f, 1f);
            using var labels = be.AllocateInt(n);
            labels.Upload(Enumerable.Range(0, n).Select(i => (int)((uint)(i * 2654435761u) % classes)).ToArray());
            using var centroids = be.Allocate(classes * d);
            using var toCentroids = be.Allocate(n * classes);
            int m = Math.Min(subset, n);
            using var pairs = be.Allocate(m * m);
            using var q = be.Allocate(n * d); using var rr = be.Allocate(d * d);

            Dictionary<string, double>? peerMs = null;
            if (pr.GetValue(peer))
                peerMs = BenchCommand.RunPeer(be, "analysis_torch.py", $"--threads {be.Threads} --rows {n} --dim {d} --runs {r}")
                    .ToDictionary(j => j.GetProperty("kernel").GetString()!, j => j.GetProperty("median_ms").GetDouble());
            var table = new Table().AddColumn("kernel").AddColumn("shape").AddColumn("median ms").AddColumn("min-max ms").AddColumn("GFLOP/s or GB/s");
            if (peerMs != null) table.AddColumn("PyTorch ms").AddColumn("speed-up");
            void Row(string name, string shape, Action run, double flops, double bytes)
            {
                var t = Time(be, run, r);
                string rate = flops > 0 ? $"{flops / (t.Median * 1e-3) / 1e9:F1} GFLOP/s" : bytes > 0 ? $"{bytes / (t.Median * 1e-3) / 1e9:F1} GB/s" : "";
                var row = new List<string> { name, shape, $"{t.Median:F1}", $"{t.Min:F1}-{t.Max:F1}", rate };
                double? peerTime = peerMs != null && peerMs.TryGetValue(name, out double p) ? p : null;
                if (peerTime is { } pt) { row.Add($"{pt:F1}"); row.Add($"{pt / t.Median:F2}x"); }
                log?.Add($"{name.Trim()} {shape}", "ms", t.Median, peerTime, higherIsBetter: false, note: rate.Length > 0 ? rate : null);
                table.AddRow(row.ToArray());
                AnsiConsole.MarkupLine($"  {Markup.Escape(name)}: {t.Median:F1} ms");
            }
            Row("class centroids", $"{n} x {d}, {classes} classes", () => be.ClassCentroids(x, labels, centroids, n, d, classes), 0, 4.0 * n * d);
            Row("distances to centroids", $"{n} x {classes}, dim {d}", () => be.PairwiseDistances(x, centroids, toCentroids, n, classes, d), 3.0 * n * classes * d, 0);
            Row("pairwise distances", $"{m} x {m}, dim {d}", () => be.PairwiseDistances(x, x, pairs, m, m, d), 3.0 * m * m * d, 0);
            Row("Householder QR (Q and R)", $"{n} x {d}", () => be.HouseholderQr(x, q, rr, n, d), 4.0 * n * d * d - 4.0 / 3 * d * d * d, 0);
            Row("PCA fit (centring, covariance, eigen)", $"{n} x {d} -> 2", () => Pca.Fit(be, x, n, d, 2), 2.0 * n * d * d, 0);
            using var cov = be.Allocate(d * d); using var mean = be.Allocate(d);
            be.Covariance(x, mean, cov, n, d);
            using var values = be.Allocate(d); using var vectors = be.Allocate(d * d);
            Row("  of which symmetric eigen", $"{d} x {d}", () => be.SymmetricEigen(cov, values, vectors, d), 0, 0);
            AnsiConsole.Write(table);
            return 0;
        });
        return cmd;
    }

    /// <summary>One warm-up run (compiles kernels), then `runs` synchronised runs: median, min, max in ms.</summary>
    static (double Median, double Min, double Max) Time(IBackend be, Action run, int runs)
    {
        run();
        be.Synchronize();
        var times = new List<double>();
        for (int i = 0; i < runs; i++)
        {
            long t0 = Stopwatch.GetTimestamp();
            run();
            be.Synchronize();
            times.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
        }
        times.Sort();
        return (times[times.Count / 2], times[0], times[^1]);
    }
}
