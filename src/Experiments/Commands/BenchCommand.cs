using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using LsKd.Kernels;
using LsKd.Kernels.Gpu;
using Spectre.Console;

namespace LsKd.Experiments.Commands;

/// <summary>`lskd bench gemm|losses`: quick device benchmarks with an optional PyTorch CPU peer in the same run
/// (BenchmarkDotNet versions live in bench/). Times exclude kernel compilation and allocation; the device is
/// synchronised before each clock stop; median with p20/p80 of repeated runs.</summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var cmd = new Command("bench", "Time kernels on a device, optionally beside PyTorch on the CPU (bench/peers).");
        cmd.Subcommands.Add(Gemm());
        cmd.Subcommands.Add(Losses());
        cmd.Subcommands.Add(LayerBench.Create());
        cmd.Subcommands.Add(AnalysisBench.Create(PeerOption));
        cmd.Subcommands.Add(TrainBench.Create(PeerOption));
        cmd.Subcommands.Add(SequenceBench.Attention(PeerOption));
        cmd.Subcommands.Add(SequenceBench.Transformer(PeerOption));
        cmd.Subcommands.Add(BenchReport.Create());
        return cmd;
    }

    static readonly string DefaultGemmShapes = "64x64x64,256x256x256,512x512x512,1024x1024x1024,2048x2048x2048,100352x64x288";

    static Option<bool> PeerOption() => new("--peer") { Description = "also time PyTorch (/usr/bin/python3, bench/peers) in the same run and print the ratio" };
    static Option<double> MinTimeOption() => new("--min-time") { Description = "seconds of timed runs per case", DefaultValueFactory = _ => 1.0 };

    static Command Gemm()
    {
        var device = CommonOptions.Device(); var threads = CommonOptions.Threads(); var peer = PeerOption(); var minTime = MinTimeOption();
        var shapes = new Option<string>("--shapes") { Description = "comma-separated MxNxK", DefaultValueFactory = _ => DefaultGemmShapes };
        var kernel = CommonOptions.GemmKernel(); var tf32 = CommonOptions.Tf32(); var jsonl = ResultLog.Option();
        var cmd = new Command("gemm", "GEMM GFLOP/s at square and convolution-shaped sizes.") { device, threads, shapes, peer, minTime, kernel, tf32, jsonl };
        cmd.SetAction(pr =>
        {
            var parsed = ParseShapes(pr.GetValue(shapes)!);
            bool allowTf32 = pr.GetValue(tf32);
            using var be = CommonOptions.CreateBackend(pr.GetValue(device)!, pr.GetValue(threads), null, pr.GetValue(kernel), allowTf32);
            var log = ResultLog.Open(pr.GetValue(jsonl), allowTf32 ? "gemm-tf32" : "gemm", be);
            AnsiConsole.MarkupLine($"GEMM on [bold]{Markup.Escape(be.ToString()!)}[/]{(allowTf32 ? " with TF32 allowed (peer too)" : "")}");
            Dictionary<string, double>? peerGflops = null;
            if (pr.GetValue(peer))
                peerGflops = RunPeer(be, "gemm_torch.py", $"--threads {be.Threads} --shapes {pr.GetValue(shapes)} --min-time {pr.GetValue(minTime)}{(allowTf32 ? " --tf32" : "")}")
                    .ToDictionary(j => $"{j.GetProperty("m")}x{j.GetProperty("n")}x{j.GetProperty("k")}", j => j.GetProperty("gflops").GetDouble());
            var table = new Table().AddColumn("M x N x K").AddColumn("kernel").AddColumn("median ms").AddColumn("p20-p80 ms").AddColumn("GFLOP/s");
            if (peerGflops != null) table.AddColumn("PyTorch GFLOP/s").AddColumn("ratio");
            foreach (var (m, n, k) in parsed)
            {
                using var a = be.Allocate(m * k); using var b = be.Allocate(k * n); using var c = be.Allocate(m * n);
                be.InitUniform(a, m * k, 1, -1, 1); be.InitUniform(b, k * n, 2, -1, 1);
                var spec = new GemmSpec(false, false, m, n, k);
                var t = Time(be, () => be.Gemm(spec, a, b, c), pr.GetValue(minTime));
                double gflops = spec.Flops / (t.Median * 1e-3) / 1e9;
                string used = be is IlgpuBackend gpu ? IlgpuBackend.KernelName(gpu.ChooseGemmKernel(m, n, k)) : "cpu";
                var row = new List<string> { $"{m}x{n}x{k}", used, $"{t.Median:F3}", $"{t.P20:F3}-{t.P80:F3}", $"{gflops:F1}" };
                double? peerRate = peerGflops != null && peerGflops.TryGetValue($"{m}x{n}x{k}", out var pg) ? pg : null;
                if (peerRate is { } pr2) { row.Add($"{pr2:F1}"); row.Add($"{gflops / pr2:F2}x"); }
                table.AddRow(row.ToArray());
                log?.Add($"gemm{(allowTf32 ? " tf32" : "")} {m}x{n}x{k} ({used})", "GFLOP/s", gflops, peerRate);
            }
            AnsiConsole.Write(table);
            return 0;
        });
        return cmd;
    }

    static Command Losses()
    {
        var device = CommonOptions.Device(); var threads = CommonOptions.Threads(); var peer = PeerOption(); var minTime = MinTimeOption();
        var rows = new Option<int>("--rows") { DefaultValueFactory = _ => 4096, Description = "batch size B" };
        var cols = new Option<int>("--cols") { DefaultValueFactory = _ => 1000, Description = "classes K" };
        var jsonl = ResultLog.Option();
        var cmd = new Command("losses", "Fused KD and label-smoothing CE forward+backward, with effective bandwidth against memory copy.") { device, threads, rows, cols, peer, minTime, jsonl };
        cmd.SetAction(pr =>
        {
            int b = pr.GetValue(rows), k = pr.GetValue(cols);
            if (b <= 0 || k <= 0) throw new UsageException($"--rows and --cols must be positive, got {b} and {k}");
            using var be = CommonOptions.CreateBackend(pr.GetValue(device)!, pr.GetValue(threads));
            var log = ResultLog.Open(pr.GetValue(jsonl), "losses", be);
            double secs = pr.GetValue(minTime);
            AnsiConsole.MarkupLine($"fused losses at (B, K) = ({b}, {k}) on [bold]{Markup.Escape(be.ToString()!)}[/]");
            int n = b * k;
            using var zs = be.Allocate(n); using var zt = be.Allocate(n); using var grad = be.Allocate(n); using var loss = be.Allocate(b);
            using var copyDst = be.Allocate(n);
            using var labels = be.AllocateInt(b);
            be.InitNormal(zs, n, 1, 0, 3); be.InitNormal(zt, n, 2, 0, 3);
            var rng = new Random(3); labels.Upload(Enumerable.Range(0, b).Select(_ => rng.Next(k)).ToArray());
            double bytes = 4.0 * n;
            var copy = Time(be, () => be.Copy(zs, 0, copyDst, 0, n), secs);
            double copyGBs = 2 * bytes / (copy.Median * 1e-3) / 1e9;   // read + write
            var kd = Time(be, () => be.KdLoss(zs, zt, labels, loss, grad, b, k, new KdConfig(4f, 1f, 0f), 1f / b), secs);
            var ls = Time(be, () => be.LabelSmoothingCrossEntropy(zs, labels, loss, grad, b, k, 0.1f, 1f / b), secs);
            double kdGBs = 3 * bytes / (kd.Median * 1e-3) / 1e9, lsGBs = 2 * bytes / (ls.Median * 1e-3) / 1e9;
            Dictionary<string, double>? peerMs = null;
            if (pr.GetValue(peer))
                peerMs = RunPeer(be, "losses_torch.py", $"--threads {be.Threads} --rows {b} --cols {k} --min-time {secs}")
                    .ToDictionary(j => j.GetProperty("kernel").GetString()!, j => j.GetProperty("median_ms").GetDouble());
            var table = new Table().AddColumn("kernel").AddColumn("median ms").AddColumn("p20-p80 ms").AddColumn("GB/s (min traffic)").AddColumn("of copy BW");
            if (peerMs != null) table.AddColumn("PyTorch ms").AddColumn("speed-up");
            void Row(string name, Timing t, double gbs)
            {
                var r = new List<string> { name, $"{t.Median:F3}", $"{t.P20:F3}-{t.P80:F3}", $"{gbs:F1}", $"{gbs / copyGBs:P0}" };
                double pm = peerMs?.GetValueOrDefault(name) ?? 0;
                if (peerMs != null) { r.Add(pm > 0 ? $"{pm:F2}" : "-"); r.Add(pm > 0 ? $"{pm / t.Median:F1}x" : "-"); }
                table.AddRow(r.ToArray());
                log?.Add($"{name} at ({b}, {k})", "ms", t.Median, pm > 0 ? pm : null, higherIsBetter: false,
                    note: $"{gbs:F1} GB/s minimum traffic, {gbs / copyGBs:P0} of copy bandwidth ({copyGBs:F1} GB/s)");
                if (name != "memcpy") log?.Add($"{name} at ({b}, {k}): share of copy bandwidth", "fraction", gbs / copyGBs);
            }
            Row("memcpy", copy, copyGBs);
            Row("kd fwd+bwd (T=4, beta=1)", kd, kdGBs);
            Row("ls-ce fwd+bwd (alpha=0.1)", ls, lsGBs);
            AnsiConsole.Write(table);
            AnsiConsole.MarkupLine("traffic: KD reads z_s and z_t and writes the gradient (3 x B x K x 4 bytes); LS-CE reads z and writes the gradient; memcpy reads and writes B x K x 4 bytes.");
            return 0;
        });
        return cmd;
    }

    public readonly record struct Timing(double Median, double P20, double P80, int Runs);

    /// <summary>Warm-up (compiles kernels), then repeated synchronised runs for at least minSeconds.</summary>
    public static Timing Time(IBackend be, Action run, double minSeconds)
    {
        for (int i = 0; i < 3; i++) run();
        be.Synchronize();
        var times = new List<double>();
        var total = Stopwatch.StartNew();
        while (total.Elapsed.TotalSeconds < minSeconds || times.Count < 5)
        {
            long t0 = Stopwatch.GetTimestamp();
            run();
            be.Synchronize();
            times.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
        }
        times.Sort();
        double Q(double q) => times[(int)Math.Round(q * (times.Count - 1))];
        return new Timing(Q(0.5), Q(0.2), Q(0.8), times.Count);
    }

    static List<(int, int, int)> ParseShapes(string text)
    {
        var result = new List<(int, int, int)>();
        foreach (var s in text.Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = s.Split('x');
            if (parts.Length != 3 || !parts.All(p => int.TryParse(p, out int v) && v > 0))
                throw new UsageException($"--shapes: '{s}' is not MxNxK with positive integers");
            result.Add((int.Parse(parts[0]), int.Parse(parts[1]), int.Parse(parts[2])));
        }
        return result;
    }

    /// <summary>Runs a peer script from bench/peers and parses its JSON lines. On a CUDA backend the peer runs on the
    /// GPU too (`--device cuda`), with the Python named by LSKD_PEER_PYTHON (a GPU build of PyTorch); otherwise with
    /// Debian's /usr/bin/python3 on the CPU.</summary>
    internal static List<JsonElement> RunPeer(IBackend be, string script, string args)
    {
        string? path = null;
        for (var d = new DirectoryInfo(Directory.GetCurrentDirectory()); d != null && path == null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "bench", "peers", script))) path = Path.Combine(d.FullName, "bench", "peers", script);
        if (path == null) throw new UsageException($"--peer: bench/peers/{script} not found (run from the repository)");
        bool onGpu = be.Name == "cuda";
        string python = onGpu ? Environment.GetEnvironmentVariable("LSKD_PEER_PYTHON") ?? "/usr/bin/python3" : "/usr/bin/python3";
        if (!File.Exists(python)) throw new UsageException($"--peer: {python} not found (install Debian's python3-torch, or set LSKD_PEER_PYTHON for a GPU peer)");
        var psi = new ProcessStartInfo(python, $"{path} {args}{(onGpu ? " --device cuda" : "")}") { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        string stdout = p.StandardOutput.ReadToEnd(), stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new UsageException($"--peer: {script} failed: {stderr.Trim().Split('\n').LastOrDefault()}");
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToList();
        foreach (var j in lines)
            if (j.TryGetProperty("torch", out var v) && v.GetString() is { } version) PeerName = $"PyTorch {version} ({(onGpu ? "cuda" : "cpu")})";
        return lines;
    }

    /// <summary>The peer the last RunPeer ran, e.g. "PyTorch 2.6.0+cu124 (cuda)" (the version names its CUDA build).</summary>
    public static string? PeerName { get; private set; }
}
