using System.CommandLine;
using LsKd.Kernels;
using LsKd.Kernels.Cpu;
using LsKd.Kernels.Gpu;
using Spectre.Console;

namespace LsKd.Experiments.Commands;

/// <summary>`lskd bench layers`: forward and backward of each layer kind at the shapes the study's models use
/// at batch 128, with FLOP counts and GFLOP/s for the convolutions.</summary>
internal static class LayerBench
{
    public static Command Create()
    {
        var device = CommonOptions.Device(); var threads = CommonOptions.Threads();
        var batch = new Option<int>("--batch") { Description = "images per batch", DefaultValueFactory = _ => 128 };
        var minTime = new Option<double>("--min-time") { Description = "seconds of timed runs per case", DefaultValueFactory = _ => 0.5 };
        var conv = CommonOptions.ConvAlgorithm();
        var every = new Option<bool>("--all-algorithms") { Description = "time every convolution algorithm that supports each shape and pass (the default one marked *); on a GPU: direct and implicit GEMM on each GEMM kernel" };
        var tf32 = CommonOptions.Tf32();
        var only = new Option<string?>("--layers") { Description = "only the layers whose name contains this text (e.g. depthwise)" };
        var jsonl = ResultLog.Option();
        var cmd = new Command("layers", "Per-layer forward and backward times at the models' shapes.") { device, threads, batch, minTime, conv, every, only, tf32, jsonl };
        cmd.SetAction(pr =>
        {
            int n = pr.GetValue(batch);
            if (n < 2) throw new UsageException($"--batch must be at least 2, got {n}");
            double secs = pr.GetValue(minTime);
            using var be = CommonOptions.CreateBackend(pr.GetValue(device)!, pr.GetValue(threads), pr.GetValue(conv), null, pr.GetValue(tf32));
            var log = ResultLog.Open(pr.GetValue(jsonl), "layers", be);
            AnsiConsole.MarkupLine($"layers at batch {n} on [bold]{Markup.Escape(be.ToString()!)}[/]");
            var table = new Table().AddColumn("layer").AddColumn("shape").AddColumn("pass").AddColumn("algorithm").AddColumn("median ms").AddColumn("GFLOP/s");
            var cpu = be as CpuBackend;
            var gpu = be as IlgpuBackend;
            bool all = pr.GetValue(every);
            string? filter = pr.GetValue(only);
            bool Wanted(string layer) => filter == null || layer.Contains(filter, StringComparison.OrdinalIgnoreCase);
            // (label, setting) per pass: the backend's choice, or every supported algorithm with the choice starred.
            IEnumerable<(string Label, Action Apply)> Algorithms(ConvSpec s, ConvPass pass)
            {
                if (gpu != null)
                {
                    if (!all) { yield return (gpu.ConvKernelName(s, pass), () => { }); yield break; }
                    var (conv0, gemm0) = (gpu.ForcedConvKernel, gpu.ForcedGemmKernel);
                    gpu.ForcedConvKernel = GpuConvKernel.Auto; gpu.ForcedGemmKernel = GpuGemmKernel.Auto;
                    string chosen = gpu.ConvKernelName(s, pass);
                    (gpu.ForcedConvKernel, gpu.ForcedGemmKernel) = (conv0, gemm0);
                    yield return ("direct" + (chosen == "direct" ? " *" : ""), () => gpu.ForcedConvKernel = GpuConvKernel.Direct);
                    if (s.IsDepthwise) yield break;
                    foreach (var k in new[] { GpuGemmKernel.Simt64, GpuGemmKernel.Simt128, GpuGemmKernel.Tf32 })
                    {
                        if (!gpu.Supports(k) || (k == GpuGemmKernel.Tf32 && !gpu.AllowTf32)) continue;
                        string label = "implicit-gemm " + IlgpuBackend.KernelName(k);
                        yield return (label + (label == chosen ? " *" : ""), () => { gpu.ForcedConvKernel = GpuConvKernel.ImplicitGemm; gpu.ForcedGemmKernel = k; });
                    }
                    yield break;
                }
                if (cpu == null) { yield return ("direct", () => { }); yield break; }
                var previous = cpu.ForcedConvAlgorithm;
                cpu.ForcedConvAlgorithm = null;
                var plan = cpu.ConvPlan(s, pass);
                cpu.ForcedConvAlgorithm = previous;
                if (!all) { yield return (ConvPlanner.Name(previous is { } f && ConvPlanner.Supports(f, s, pass) ? f : plan), () => { }); yield break; }
                foreach (var a in ConvPlanner.All)
                    if (ConvPlanner.Supports(a, s, pass)) yield return (ConvPlanner.Name(a) + (a == plan ? " *" : ""), () => cpu.ForcedConvAlgorithm = a);
            }
            var convs = new (string Name, ConvSpec Spec)[]
            {
                ("conv 3x3 stem", new ConvSpec(n, 1, 28, 28, 16, 3, 3, 1, 1)),
                ("conv 3x3 stage 1", new ConvSpec(n, 16, 28, 28, 16, 3, 3, 1, 1)),
                ("conv 3x3 stage 2", new ConvSpec(n, 32, 14, 14, 32, 3, 3, 1, 1)),
                ("conv 3x3 stage 3", new ConvSpec(n, 64, 7, 7, 64, 3, 3, 1, 1)),
                ("conv 3x3 stride 2", new ConvSpec(n, 16, 28, 28, 32, 3, 3, 2, 1)),
                ("conv 3x3 stride 2, 32 ch", new ConvSpec(n, 32, 14, 14, 64, 3, 3, 2, 1)),
                ("conv 1x1 stride 2 shortcut", new ConvSpec(n, 16, 28, 28, 32, 1, 1, 2, 0)),
                ("conv 1x1 stride 2 shortcut 7x7", new ConvSpec(n, 32, 14, 14, 64, 1, 1, 2, 0)),
                ("conv 1x1 expand", new ConvSpec(n, 24, 14, 14, 144, 1, 1)),
                ("conv 1x1 expand 28x28", new ConvSpec(n, 16, 28, 28, 96, 1, 1)),
                ("conv 1x1 expand 7x7", new ConvSpec(n, 64, 7, 7, 384, 1, 1)),
                ("conv 1x1 project 7x7", new ConvSpec(n, 384, 7, 7, 96, 1, 1)),
                ("depthwise 3x3", new ConvSpec(n, 144, 14, 14, 144, 3, 3, 1, 1, 144)),
                ("depthwise 3x3 stride 2", new ConvSpec(n, 144, 14, 14, 144, 3, 3, 2, 1, 144)),
                ("depthwise 3x3 7x7", new ConvSpec(n, 384, 7, 7, 384, 3, 3, 1, 1, 384)),
                ("depthwise 3x3 stride 2 28x28", new ConvSpec(n, 96, 28, 28, 96, 3, 3, 2, 1, 96)),
            };
            foreach (var (name, s) in convs)
            {
                if (!Wanted(name)) continue;
                using var x = be.Allocate((int)s.InputSize); using var w = be.Allocate((int)s.WeightSize); using var y = be.Allocate((int)s.OutputSize);
                using var dx = be.Allocate((int)s.InputSize); using var dw = be.Allocate((int)s.WeightSize);
                be.InitNormal(x, (int)s.InputSize, 1, 0, 1); be.InitNormal(w, (int)s.WeightSize, 2, 0, 0.1f); be.InitNormal(y, (int)s.OutputSize, 3, 0, 1);
                string shape = $"[{s.N},{s.C},{s.H},{s.W}] -> [{s.N},{s.K},{s.OutH},{s.OutW}]";
                var forced = cpu?.ForcedConvAlgorithm;
                var (forcedConv, forcedGemm) = gpu != null ? (gpu.ForcedConvKernel, gpu.ForcedGemmKernel) : default;
                foreach (var pass in Enum.GetValues<ConvPass>())
                    foreach (var (label, apply) in Algorithms(s, pass))
                    {
                        apply();
                        Action run = pass switch
                        {
                            ConvPass.Forward => () => be.Conv2d(s, x, w, y),
                            ConvPass.InputGrad => () => be.Conv2dBackwardInput(s, y, w, dx, false),
                            _ => () => be.Conv2dBackwardWeight(s, x, y, dw, false),
                        };
                        string passName = pass switch { ConvPass.Forward => "forward", ConvPass.InputGrad => "input grad", _ => "weight grad" };
                        Add(log, table, name, shape, passName, label, BenchCommand.Time(be, run, secs), s.Flops);
                    }
                if (cpu != null) cpu.ForcedConvAlgorithm = forced;
                if (gpu != null) (gpu.ForcedConvKernel, gpu.ForcedGemmKernel) = (forcedConv, forcedGemm);
            }
            if (Wanted("batch norm") || Wanted("pool") || Wanted("relu") || Wanted("dropout") || Wanted("fill"))
            {
                var s = new BatchNormSpec(n, 16, 28 * 28);
                using var x = be.Allocate((int)s.Size); using var y = be.Allocate((int)s.Size); using var dx = be.Allocate((int)s.Size);
                using var g = be.Allocate(s.C); using var b = be.Allocate(s.C); using var m = be.Allocate(s.C); using var v = be.Allocate(s.C);
                using var rm = be.Allocate(s.C); using var rv = be.Allocate(s.C); using var dg = be.Allocate(s.C); using var db = be.Allocate(s.C);
                be.InitNormal(x, (int)s.Size, 1, 0, 1); be.Fill(g, 0, s.C, 1); be.Fill(b, 0, s.C, 0); be.Fill(rm, 0, s.C, 0); be.Fill(rv, 0, s.C, 1);
                string shape = $"[{n},16,28,28]";
                Add(log, table, "batch norm (train)", shape, "forward", "-", BenchCommand.Time(be, () => be.BatchNorm(s, x, g, b, y, m, v, rm, rv, true), secs), 0);
                Add(log, table, "batch norm (train)", shape, "backward", "-", BenchCommand.Time(be, () => be.BatchNormBackward(s, x, y, g, m, v, dx, dg, db, true, false), secs), 0);
                Add(log, table, "relu", shape, "forward", "-", BenchCommand.Time(be, () => be.Unary(UnaryOp.Relu, x, y, (int)s.Size), secs), 0);
                Add(log, table, "relu", shape, "backward", "-", BenchCommand.Time(be, () => be.UnaryBackward(UnaryOp.Relu, x, y, dx, (int)s.Size), secs), 0);
                var p = new PoolSpec(PoolOp.Max, n, 16, 28, 28, 2, 2);
                using var py = be.Allocate((int)p.OutputSize); using var arg = be.AllocateInt((int)p.OutputSize);
                Add(log, table, "max pool 2x2", shape, "forward", "-", BenchCommand.Time(be, () => be.Pool2d(p, x, py, arg), secs), 0);
                Add(log, table, "max pool 2x2", shape, "backward", "-", BenchCommand.Time(be, () => be.Pool2dBackward(p, py, arg, dx, false), secs), 0);
                using var gap = be.Allocate(n * 16);
                Add(log, table, "global avg pool", shape, "forward", "-", BenchCommand.Time(be, () => be.Reduce(ReduceOp.Mean, x, gap, n * 16, 28 * 28, 1), secs), 0);
                Add(log, table, "dropout p=0.2", shape, "forward", "-", BenchCommand.Time(be, () => be.Dropout(x, y, (int)s.Size, 0.2f, 9), secs), 0);
                Add(log, table, "fill (zero a gradient)", shape, "forward", "-", BenchCommand.Time(be, () => be.Fill(dx, 0, (int)s.Size, 0f), secs), 0);
                Add(log, table, "fill (zero a gradient)", "[16,16,3,3]", "forward", "-", BenchCommand.Time(be, () => be.Fill(dx, 0, 16 * 16 * 9, 0f), secs), 0);
            }
            AnsiConsole.Write(table);
            AnsiConsole.MarkupLine("GFLOP/s counts 2 x multiply-adds of the forward convolution for every pass (each backward pass has the same count).");
            return 0;
        });
        return cmd;
    }

    static void Add(ResultLog? log, Table table, string name, string shape, string pass, string algorithm, BenchCommand.Timing t, long flops)
    {
        log?.Add($"{name} {shape} {pass} [{algorithm}]", "ms", t.Median, higherIsBetter: false,
            note: flops > 0 ? $"{flops / (t.Median * 1e-3) / 1e9:F1} GFLOP/s" : null);
        table.AddRow(Markup.Escape(name), Markup.Escape(shape), pass, algorithm, $"{t.Median:F3}", flops > 0 ? $"{flops / (t.Median * 1e-3) / 1e9:F1}" : "-");
    }
}
