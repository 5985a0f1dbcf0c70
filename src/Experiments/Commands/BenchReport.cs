using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using LsKd.Experiments.Analysis;
using LsKd.Kernels;
using LsKd.Kernels.Cpu;
using LsKd.Nets;
using Spectre.Console;

namespace LsKd.Experiments.Commands;

/// <summary>
/// `lskd bench report`: the benchmark set (GEMM, convolutions, fused losses) with its PyTorch peers in the same run,
/// written to &lt;out&gt;/&lt;machine&gt;/: one JSON file per case (machine, versions, command, median, p20/p80,
/// flops, bytes, peer figures), machine.json (the measured ceilings), summary.md and roofline.png (achieved GFLOP/s
/// against arithmetic intensity under the measured FMA peak and copy bandwidth).
/// </summary>
internal static class BenchReport
{
    static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>One timed case. Flops and bytes are the case's nominal work and minimum memory traffic (see
    /// docs/BENCHMARKS.md: for the fused losses, 10 and 6 flops per logit).</summary>
    sealed record Case(string Id, string Group, string Name, string Shape, double Flops, double Bytes, BenchCommand.Timing Time)
    {
        public double Gflops => Flops / (Time.Median * 1e-3) / 1e9;
        public double GBs => Bytes / (Time.Median * 1e-3) / 1e9;
        public double Intensity => Flops / Bytes;
        public (double Median, double P20, double P80)? Peer { get; set; }
        public double? PeerGflops => Peer is { } p ? Flops / (p.Median * 1e-3) / 1e9 : null;
    }

    public static Command Create()
    {
        var device = CommonOptions.Device(); var threads = CommonOptions.Threads();
        var quick = new Option<bool>("--quick") { Description = "fewer shapes and shorter timings (a few minutes on 2 cores)" };
        var outDir = new Option<string>("--out") { Description = "folder for the report (a subfolder per machine)", DefaultValueFactory = _ => "bench-report" };
        var noPeer = new Option<bool>("--no-peer") { Description = "skip the PyTorch peer even when it is installed" };
        var tiny = new Option<bool>("--tiny") { Description = "tiny shapes: a run-through of the report on ILGPU's CPU emulator, not a measurement" };
        var cmd = new Command("report", "Run the benchmark set beside its peers and write JSON per case, summary.md and a roofline figure.") { device, threads, quick, tiny, outDir, noPeer };
        cmd.SetAction(pr =>
        {
            bool q = pr.GetValue(quick) || pr.GetValue(tiny);
            s_tiny = pr.GetValue(tiny);
            using var be = CommonOptions.CreateBackend(pr.GetValue(device)!, pr.GetValue(threads));
            string machine = MachineSlug(be);
            string dir = Path.Combine(pr.GetValue(outDir)!, machine);
            try { Directory.CreateDirectory(dir); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new UsageException($"--out: cannot create {dir}: {e.Message}"); }
            double secs = q ? 0.3 : 1.0;
            string command = "lskd " + string.Join(" ", pr.Tokens.Select(t => t.Value));
            AnsiConsole.MarkupLine($"benchmark report on [bold]{Markup.Escape(be.ToString()!)}[/] into {Markup.Escape(dir)}");

            var (peak, bandwidth) = Ceilings(be, secs);
            AnsiConsole.MarkupLine($"ceilings: FMA peak {peak:F0} GFLOP/s, copy bandwidth {bandwidth:F1} GB/s");
            var cases = new List<Case>();
            cases.AddRange(Gemms(be, q, secs));
            cases.AddRange(Convolutions(be, q, secs));
            // Large enough on a GPU that the logits do not sit in its L2 cache (an H100 has 50 MB).
            (s_lossRows, s_lossCols) = s_tiny ? (64, 100) : be.Name == "cuda" ? (65536, 1000) : (4096, 1000);
            cases.AddRange(Losses(be, secs));

            string? peerNote = null;
            if (!pr.GetValue(noPeer))
            {
                try { AddPeers(be, cases, secs, q); }
                catch (UsageException e) { peerNote = e.Message; AnsiConsole.MarkupLine($"[yellow]peer skipped:[/] {Markup.Escape(e.Message)}"); }
            }
            else peerNote = "--no-peer";

            var machineJson = MachineJson(be, command, peak, bandwidth);
            string torch = cases.Select(c => c.Peer).Any(p => p != null) ? s_torchVersion ?? "?" : "not run";
            machineJson["versions"]!["torch"] = torch;
            machineJson["peer"] = cases.Any(c => c.Peer != null) ? BenchCommand.PeerName : peerNote;
            AtomicFile.WriteText(Path.Combine(dir, "machine.json"), machineJson.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            foreach (var c in cases)
            {
                var o = new JsonObject
                {
                    ["case"] = c.Id, ["group"] = c.Group, ["name"] = c.Name, ["shape"] = c.Shape,
                    ["machine"] = machineJson["machine"]!.DeepClone(), ["versions"] = machineJson["versions"]!.DeepClone(), ["command"] = command,
                    ["median_ms"] = c.Time.Median, ["p20_ms"] = c.Time.P20, ["p80_ms"] = c.Time.P80, ["runs"] = c.Time.Runs,
                    ["flops"] = c.Flops, ["bytes"] = c.Bytes, ["intensity"] = c.Intensity, ["gflops"] = c.Gflops, ["gbs"] = c.GBs,
                    ["share_of_peak"] = c.Gflops / peak, ["share_of_copy_bandwidth"] = c.GBs / bandwidth,
                    ["peer"] = c.Peer is { } p ? new JsonObject
                    {
                        ["name"] = $"PyTorch {torch}", ["median_ms"] = p.Median, ["p20_ms"] = p.P20, ["p80_ms"] = p.P80, ["gflops"] = c.PeerGflops,
                        ["speedup"] = p.Median / c.Time.Median,
                    } : null,
                };
                AtomicFile.WriteText(Path.Combine(dir, c.Id + ".json"), o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            }
            var points = cases.Select(c => new Figures.RooflinePoint("LsKd", c.Name, c.Intensity, c.Gflops))
                .Concat(cases.Where(c => c.PeerGflops != null).Select(c => new Figures.RooflinePoint($"PyTorch {torch}", c.Name, c.Intensity, c.PeerGflops!.Value))).ToList();
            Figures.Roofline(Path.Combine(dir, "roofline.png"), $"Roofline: {be.DeviceDescription}", peak, bandwidth, points);
            string md = Summary(be, machine, command, peak, bandwidth, cases, torch, peerNote);
            AtomicFile.WriteText(Path.Combine(dir, "summary.md"), md);
            AnsiConsole.WriteLine(md);
            AnsiConsole.MarkupLine($"wrote {cases.Count} case files, machine.json, summary.md and roofline.png to {Markup.Escape(dir)}");
            return 0;
        });
        return cmd;
    }

    static string? s_torchVersion;
    static bool s_tiny;
    static int s_lossRows = 4096, s_lossCols = 1000;

    /// <summary>The FMA peak (CPU: a register-only FMA loop at the backend's width and threads) and the copy bandwidth
    /// (the backend's Copy over 64 MiB, read + write).</summary>
    static (double Peak, double Bandwidth) Ceilings(IBackend be, double secs)
    {
        double peak = be switch
        {
            CpuBackend cpu => CpuPeak.FmaGflops(be.Threads, cpu.SimdWidth == "Vector512", secs),
            LsKd.Kernels.Gpu.IlgpuBackend gpu => gpu.MeasureFmaPeak(secs),
            _ => throw new UsageException($"--device: bench report cannot measure the FMA peak of '{be.Name}'"),
        };
        int n = s_tiny ? 1 << 16 : 16 << 20;
        using var a = be.Allocate(n); using var b = be.Allocate(n);
        be.Fill(a, 0, n, 1f);
        var t = BenchCommand.Time(be, () => be.Copy(a, 0, b, 0, n), secs);
        return (peak, 2.0 * 4 * n / (t.Median * 1e-3) / 1e9);
    }

    static IEnumerable<Case> Gemms(IBackend be, bool quick, double secs)
    {
        (int M, int N, int K)[] shapes = s_tiny ? [(32, 32, 32), (64, 48, 40)] : quick
            ? [(256, 256, 256), (1024, 1024, 1024), (100352, 16, 144)]
            : [(64, 64, 64), (256, 256, 256), (512, 512, 512), (1024, 1024, 1024), (2048, 2048, 2048), (100352, 64, 288)];
        foreach (var (m, n, k) in shapes)
        {
            using var a = be.Allocate(m * k); using var b = be.Allocate(k * n); using var c = be.Allocate(m * n);
            be.InitUniform(a, m * k, 1, -1, 1); be.InitUniform(b, k * n, 2, -1, 1);
            var spec = new GemmSpec(false, false, m, n, k);
            var t = BenchCommand.Time(be, () => be.Gemm(spec, a, b, c), secs);
            AnsiConsole.MarkupLine($"gemm {m}x{n}x{k}: {t.Median:F3} ms");
            yield return new Case($"gemm-{m}x{n}x{k}", "gemm", $"gemm {m}x{n}x{k}", $"{m}x{n}x{k}", spec.Flops, 4.0 * ((double)m * k + (double)k * n + (double)m * n), t);
        }
    }

    static readonly (string Id, string Name, ConvSpec Spec)[] s_convs =
    [
        ("conv3x3-16-28", "conv 3x3 16ch 28x28", new ConvSpec(128, 16, 28, 28, 16, 3, 3, 1, 1)),
        ("conv3x3-64-7", "conv 3x3 64ch 7x7", new ConvSpec(128, 64, 7, 7, 64, 3, 3, 1, 1)),
        ("dw3x3-144-14", "depthwise 3x3 144ch 14x14", new ConvSpec(128, 144, 14, 14, 144, 3, 3, 1, 1, 144)),
        ("conv3x3-32-14", "conv 3x3 32ch 14x14", new ConvSpec(128, 32, 14, 14, 32, 3, 3, 1, 1)),
        ("conv3x3s2-16-28", "conv 3x3/2 16->32ch 28x28", new ConvSpec(128, 16, 28, 28, 32, 3, 3, 2, 1)),
        ("conv1x1-24-144", "conv 1x1 24->144ch 14x14", new ConvSpec(128, 24, 14, 14, 144, 1, 1)),
    ];

    static IEnumerable<(string Id, string Name, ConvSpec Spec)> ConvSet(bool quick) =>
        s_tiny ? [("conv3x3-4-8", "conv 3x3 4ch 8x8", new ConvSpec(2, 4, 8, 8, 4, 3, 3, 1, 1))] : quick ? s_convs.Take(3) : s_convs;

    static IEnumerable<Case> Convolutions(IBackend be, bool quick, double secs)
    {
        foreach (var (id, name, s) in ConvSet(quick))
        {
            using var x = be.Allocate((int)s.InputSize); using var w = be.Allocate((int)s.WeightSize); using var y = be.Allocate((int)s.OutputSize);
            using var dx = be.Allocate((int)s.InputSize); using var dw = be.Allocate((int)s.WeightSize);
            be.InitNormal(x, (int)s.InputSize, 1, 0, 1); be.InitNormal(w, (int)s.WeightSize, 2, 0, 0.1f); be.InitNormal(y, (int)s.OutputSize, 3, 0, 1);
            double bytes = 4.0 * (s.InputSize + s.WeightSize + s.OutputSize);
            string shape = $"[{s.N},{s.C},{s.H},{s.W}] -> [{s.N},{s.K},{s.OutH},{s.OutW}] groups {s.Groups}";
            foreach (var (pass, run) in new (string, Action)[]
                     {
                         ("forward", () => be.Conv2d(s, x, w, y)),
                         ("input grad", () => be.Conv2dBackwardInput(s, y, w, dx, false)),
                         ("weight grad", () => be.Conv2dBackwardWeight(s, x, y, dw, false)),
                     })
            {
                var t = BenchCommand.Time(be, run, secs);
                AnsiConsole.MarkupLine($"{name} {pass}: {t.Median:F3} ms");
                yield return new Case($"{id}-{pass.Replace(' ', '-')}", "conv", $"{name} {pass}", shape, s.Flops, bytes, t);
            }
        }
    }

    static IEnumerable<Case> Losses(IBackend be, double secs)
    {
        int b = s_lossRows, k = s_lossCols, n = b * k;
        using var zs = be.Allocate(n); using var zt = be.Allocate(n); using var grad = be.Allocate(n); using var loss = be.Allocate(b);
        using var labels = be.AllocateInt(b);
        be.InitNormal(zs, n, 1, 0, 3); be.InitNormal(zt, n, 2, 0, 3);
        var rng = new Random(3); labels.Upload(Enumerable.Range(0, b).Select(_ => rng.Next(k)).ToArray());
        var kd = BenchCommand.Time(be, () => be.KdLoss(zs, zt, labels, loss, grad, b, k, new KdConfig(4f, 1f, 0f), 1f / b), secs);
        var ls = BenchCommand.Time(be, () => be.LabelSmoothingCrossEntropy(zs, labels, loss, grad, b, k, 0.1f, 1f / b), secs);
        AnsiConsole.MarkupLine($"kd: {kd.Median:F3} ms, ls-ce: {ls.Median:F3} ms");
        yield return new Case($"kd-loss-{b}x{k}", "loss", "kd fwd+bwd (T=4, beta=1)", $"{b}x{k}", 10.0 * n, 3 * 4.0 * n, kd);
        yield return new Case($"ls-ce-{b}x{k}", "loss", "ls-ce fwd+bwd (alpha=0.1)", $"{b}x{k}", 6.0 * n, 2 * 4.0 * n, ls);
    }

    static void AddPeers(IBackend be, List<Case> cases, double secs, bool quick)
    {
        string threads = $"--threads {be.Threads}";
        var gemms = cases.Where(c => c.Group == "gemm").ToList();
        foreach (var j in BenchCommand.RunPeer(be, "gemm_torch.py", $"{threads} --shapes {string.Join(',', gemms.Select(c => c.Shape))} --min-time {secs.ToString(Inv)}"))
        {
            s_torchVersion ??= j.GetProperty("torch").GetString();
            string shape = $"{j.GetProperty("m")}x{j.GetProperty("n")}x{j.GetProperty("k")}";
            var c = gemms.First(g => g.Shape == shape);
            c.Peer = (j.GetProperty("median_ms").GetDouble(), j.GetProperty("p20_ms").GetDouble(), j.GetProperty("p80_ms").GetDouble());
        }
        var convs = ConvSet(quick).ToList();
        string specs = string.Join(';', convs.Select(c => string.Join(',', c.Spec.N, c.Spec.C, c.Spec.H, c.Spec.W, c.Spec.K, c.Spec.R, c.Spec.S, c.Spec.Stride, c.Spec.Pad, c.Spec.Groups)));
        foreach (var j in BenchCommand.RunPeer(be, "conv_torch.py", $"{threads} --specs \"{specs}\" --min-time {secs.ToString(Inv)}"))
        {
            var conv = convs[Array.IndexOf(specs.Split(';'), j.GetProperty("spec").GetString())];
            string id = $"{conv.Id}-{j.GetProperty("pass").GetString()!.Replace(' ', '-')}";
            cases.First(c => c.Id == id).Peer = (j.GetProperty("median_ms").GetDouble(), j.GetProperty("p20_ms").GetDouble(), j.GetProperty("p80_ms").GetDouble());
        }
        foreach (var j in BenchCommand.RunPeer(be, "losses_torch.py", $"{threads} --rows {s_lossRows} --cols {s_lossCols} --min-time {secs.ToString(Inv)}"))
        {
            var c = cases.FirstOrDefault(c => c.Group == "loss" && c.Name == j.GetProperty("kernel").GetString());
            if (c != null) c.Peer = (j.GetProperty("median_ms").GetDouble(), j.GetProperty("p20_ms").GetDouble(), j.GetProperty("p80_ms").GetDouble());
        }
    }

    /// <summary>A folder name for the machine: device, processor and threads, e.g. cpu-amd-epyc-9b45-2t.</summary>
    static string MachineSlug(IBackend be)
    {
        string model = be is CpuBackend ? CpuInfo.ModelName : be.DeviceDescription;
        var sb = new StringBuilder(be.Name + "-");
        foreach (char ch in model.ToLowerInvariant()) sb.Append(char.IsAsciiLetterOrDigit(ch) ? ch : '-');
        string slug = string.Join('-', sb.ToString().Split('-', StringSplitOptions.RemoveEmptyEntries));
        return $"{slug}-{be.Threads}t";
    }

    static JsonObject MachineJson(IBackend be, string command, double peak, double bandwidth) => new()
    {
        ["machine"] = new JsonObject
        {
            ["device"] = be.ToString(), ["processor"] = CpuInfo.ModelName, ["logical_cores"] = Environment.ProcessorCount, ["threads"] = be.Threads,
            ["os"] = System.Runtime.InteropServices.RuntimeInformation.OSDescription,
            // The GPU, its CUDA driver and architecture, where the backend runs on one.
            ["gpu"] = be is LsKd.Kernels.Gpu.IlgpuBackend { Accelerator: ILGPU.Runtime.Cuda.CudaAccelerator cuda }
                ? new JsonObject
                {
                    ["name"] = cuda.Name, ["driver"] = cuda.DriverVersion.ToString(), ["compute_capability"] = cuda.Architecture.ToString(),
                    ["multiprocessors"] = cuda.NumMultiprocessors, ["memory_mib"] = cuda.MemorySize / (1024 * 1024),
                }
                : null,
        },
        ["versions"] = new JsonObject
        {
            ["lskd"] = typeof(BenchReport).Assembly.GetName().Version?.ToString(), [".NET"] = Environment.Version.ToString(),
            ["ILGPU"] = typeof(ILGPU.Context).Assembly.GetName().Version?.ToString(),
        },
        ["command"] = command,
        ["date"] = DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm 'UTC'", Inv),
        ["fma_peak_gflops"] = peak, ["copy_bandwidth_gbs"] = bandwidth,
    };

    static string Summary(IBackend be, string machine, string command, double peak, double bandwidth, List<Case> cases, string torch, string? peerNote)
    {
        var sb = new StringBuilder();
        sb.AppendLine($"# Benchmark report: {machine}").AppendLine();
        sb.AppendLine($"- Device: {be} on {CpuInfo.ModelName}, {Environment.ProcessorCount} logical cores, {be.Threads} thread(s)");
        sb.AppendLine($"- Date: {DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm 'UTC'", Inv)}; command: `{command}`");
        sb.AppendLine($"- Versions: .NET {Environment.Version}, ILGPU {typeof(ILGPU.Context).Assembly.GetName().Version}, peer PyTorch {torch}{(peerNote != null ? $" ({peerNote})" : "")}");
        sb.AppendLine($"- Measured ceilings in this run: FMA peak {F(peak, 0)} GFLOP/s, copy bandwidth {F(bandwidth, 1)} GB/s").AppendLine();
        sb.AppendLine("Times are medians of synchronised runs after warm-up (p20-p80 beside them); GFLOP/s from the nominal flop count,");
        sb.AppendLine("GB/s from the minimum memory traffic; speed-up = peer median / LsKd median (above 1: LsKd is faster).").AppendLine();
        sb.AppendLine("![roofline](roofline.png)").AppendLine();
        foreach (var group in cases.GroupBy(c => c.Group))
        {
            sb.AppendLine($"## {group.Key switch { "gemm" => "GEMM", "conv" => "Convolutions (batch 128)", _ => $"Fused losses (B = {s_lossRows}, K = {s_lossCols})" }}").AppendLine();
            sb.AppendLine("| case | LsKd ms (p20-p80) | GFLOP/s | of peak | GB/s | of copy | PyTorch ms (p20-p80) | PyTorch GFLOP/s | speed-up |");
            sb.AppendLine("|---|---|---|---|---|---|---|---|---|");
            foreach (var c in group)
            {
                string peer = c.Peer is { } p ? $"{F(p.Median, 3)} ({F(p.P20, 3)}-{F(p.P80, 3)}) | {F(c.PeerGflops!.Value, 1)} | {F(p.Median / c.Time.Median, 2)}x" : "- | - | -";
                sb.AppendLine($"| {c.Name} | {F(c.Time.Median, 3)} ({F(c.Time.P20, 3)}-{F(c.Time.P80, 3)}) | {F(c.Gflops, 1)} | {F(100 * c.Gflops / peak, 0)} % | {F(c.GBs, 1)} | {F(100 * c.GBs / bandwidth, 0)} % | {peer} |");
            }
            sb.AppendLine();
        }
        return sb.ToString();
    }

    static string F(double v, int digits) => v.ToString("F" + digits, Inv);
}
