using System.CommandLine;
using LsKd.Autograd;
using LsKd.Kernels;
using LsKd.Kernels.Cpu;
using LsKd.Nets;
using Spectre.Console;

namespace LsKd.Experiments.Commands;

/// <summary>`lskd bench train`: whole training steps (forward, label-smoothing CE, backward, SGD with momentum)
/// of the study's models at a batch size, in images per second, optionally beside PyTorch running the same
/// architectures (bench/peers/train_torch.py) in the same run.</summary>
internal static class TrainBench
{
    public static Command Create(Func<Option<bool>> peerOption)
    {
        var device = CommonOptions.Device(); var threads = CommonOptions.Threads(); var peer = peerOption();
        var models = new Option<string>("--models") { Description = "comma-separated model names", DefaultValueFactory = _ => "resnet20,resnet8,mobilenetv2" };
        var batch = new Option<int>("--batch") { Description = "images per step", DefaultValueFactory = _ => 128 };
        var steps = new Option<int>("--steps") { Description = "timed steps per model (after the warm-up steps)", DefaultValueFactory = _ => 6 };
        var warmup = new Option<int>("--warmup") { Description = "untimed steps first (buffer pool, kernel compilation, the JIT's tier-1 code)", DefaultValueFactory = _ => 5 };
        var rounds = new Option<int>("--rounds") { Description = "alternate PyTorch and LsKd this many times and report medians (the machine's noise is large)", DefaultValueFactory = _ => 1 };
        var profile = new Option<bool>("--profile") { Description = "after timing, run the steps again with per-op timing and print where each model's step goes" };
        var conv = CommonOptions.ConvAlgorithm(); var tf32 = CommonOptions.Tf32();
        var perTensor = new Option<bool>("--per-tensor-optimizer") { Description = "step and zero each parameter tensor on its own (the launch count before the fused optimiser)" };
        var denormals = new Option<string>("--denormals") { Description = "CPU subnormal handling: flush (FTZ+DAZ, the default, as the peer runs) or ieee (gradual underflow, to measure what flushing saves)", DefaultValueFactory = _ => "flush" };
        var jsonl = ResultLog.Option();
        var cmd = new Command("train", "Training-step throughput (img/s) of the study's models, with FLOP counts and ops (GPU: kernel launches) per step.") { device, threads, models, batch, steps, warmup, rounds, peer, profile, conv, tf32, perTensor, denormals, jsonl };
        cmd.SetAction(pr =>
        {
            var names = pr.GetValue(models)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            foreach (var n in names)
                if (!Nets.Models.Names.Contains(n)) throw new UsageException($"--models: unknown model '{n}'; valid models: {string.Join(", ", Nets.Models.Names)}");
            int b = pr.GetValue(batch), s = pr.GetValue(steps), r = pr.GetValue(rounds);
            if (b < 2) throw new UsageException($"--batch must be at least 2 (batch norm needs it), got {b}");
            if (s < 1) throw new UsageException($"--steps must be at least 1, got {s}");
            if (r < 1) throw new UsageException($"--rounds must be at least 1, got {r}");
            int w = pr.GetValue(warmup);
            if (w < 0) throw new UsageException($"--warmup must be at least 0, got {w}");
            var mode = pr.GetValue(denormals) switch
            {
                "flush" => DenormalMode.Flush,
                "ieee" => DenormalMode.Ieee,
                var other => throw new UsageException($"--denormals must be 'flush' or 'ieee', got '{other}'"),
            };
            using var be = CommonOptions.CreateBackend(pr.GetValue(device)!, pr.GetValue(threads), pr.GetValue(conv), null, pr.GetValue(tf32));
            if (be is CpuBackend cpu) cpu.Denormals = mode;
            else if (mode != DenormalMode.Flush) throw new UsageException("--denormals chooses the CPU backend's mode; on the GPU the fp32 mode is fixed by the PTX ILGPU emits");
            bool fuse = !pr.GetValue(perTensor);
            var log = ResultLog.Open(pr.GetValue(jsonl), "train", be);
            AnsiConsole.MarkupLine($"training steps at batch {b} on [bold]{Markup.Escape(be.ToString()!)}[/], {r} round(s)");
            // The FMA peak in the same run, so that "share of peak" compares like with like on a machine whose
            // clock and neighbours change from hour to hour.
            double? peak = be is CpuBackend cpuBe ? CpuPeak.FmaGflops(be.Threads, cpuBe.SimdWidth == "Vector512") : null;
            if (peak is { } p0) AnsiConsole.MarkupLine($"FMA peak measured now: {p0:F0} GFLOP/s ({be.Threads} thread(s))");
            bool withPeer = pr.GetValue(peer);
            var ours = names.ToDictionary(n => n, _ => new List<TrainRate>());
            var theirs = names.ToDictionary(n => n, _ => new List<double>());
            for (int round = 0; round < r; round++)
            {
                // PyTorch first, then LsKd, in every round: both see the same stretch of the machine's load.
                if (withPeer)
                    foreach (var j in BenchCommand.RunPeer(be, "train_torch.py", $"--threads {be.Threads} --batch {b} --steps {s} --models {string.Join(',', names)}"))
                        theirs[j.GetProperty("model").GetString()!].Add(j.GetProperty("img_per_s").GetDouble());
                foreach (var name in names) ours[name].Add(Measure(be, name, b, s, fuseOptimizer: fuse, warmup: w));
            }
            var table = new Table().AddColumn("model").AddColumn("parameters").AddColumn("fwd MFLOP/img").AddColumn("step ms (median)")
                .AddColumn("img/s").AddColumn("GFLOP/s (3x fwd)");
            if (peak is not null) table.AddColumn("of FMA peak");
            table.AddColumn("ops/step");
            if (withPeer) table.AddColumn("PyTorch img/s").AddColumn("ratio").AddColumn("per-round ratios");
            foreach (var name in names)
            {
                var mine = ours[name];
                double rate = Median(mine.Select(x => x.ImagesPerSecond)), stepMs = Median(mine.Select(x => x.StepMs));
                var first = mine[0];
                double gflops = 3 * first.ForwardFlops * rate / 1e9;
                string share = peak is { } p1 ? $"{100 * gflops / p1:F0} %" : "";
                var row = new List<string> { name, $"{first.Parameters:N0}", $"{first.ForwardFlops / 1e6:F1}", $"{stepMs:F1}", $"{rate:F1}", $"{gflops:F1}" };
                if (peak is not null) row.Add(share);
                row.Add($"{first.OpsPerStep:F0}{(first.Fused ? "" : " (per-tensor optimiser)")}");
                double? peerMedian = withPeer && theirs[name].Count > 0 ? Median(theirs[name]) : null;
                log?.Add($"{name} training step, batch {b}", "img/s", rate, peerMedian, note: $"{stepMs:F2} ms per step, {first.OpsPerStep:F0} ops per step" +
                    (peak is { } p2 ? $", {gflops:F1} GFLOP/s (3x fwd) = {share} of the {p2:F0} GFLOP/s FMA peak measured in this run" : ""));
                if (peerMedian is { } peerRate)
                {
                    row.Add($"{peerRate:F1}"); row.Add($"{rate / peerRate:F2}x");
                    row.Add(string.Join(" ", mine.Zip(theirs[name], (m, t) => $"{m.ImagesPerSecond / t:F2}")));
                }
                table.AddRow(row.ToArray());
            }
            AnsiConsole.Write(table);
            AnsiConsole.MarkupLine("step = forward, label-smoothing CE (alpha 0.1), backward, SGD (momentum 0.9, weight decay 5e-4); synthetic 1x28x28 inputs.");
            if (pr.GetValue(profile))
                foreach (var name in names)
                {
                    OpProfiler.Reset();
                    OpProfiler.Enabled = true;
                    TrainRate rate;
                    try { rate = Measure(be, name, b, s, profiledSteps: true, warmup: w); }
                    finally { OpProfiler.Enabled = false; }
                    var ops = OpProfiler.Snapshot();
                    double total = rate.StepMs * s, inOps = ops.Sum(o => o.Milliseconds);
                    var t = new Table().Title($"{name}: {rate.StepMs:F1} ms per step (profiled run)").AddColumn("op").AddColumn("calls/step").AddColumn("ms/step").AddColumn("share");
                    foreach (var (op, ms, calls) in ops)
                        t.AddRow(Markup.Escape(op), $"{calls / (double)s:F0}", $"{ms / s:F2}", $"{ms / total:P1}");
                    t.AddRow("[italic]outside backend ops (autograd, allocation, framework)[/]", "", $"{(total - inOps) / s:F2}", $"{(total - inOps) / total:P1}");
                    AnsiConsole.Write(t);
                }
            return 0;
        });
        return cmd;
    }

    static double Median(IEnumerable<double> values)
    {
        var v = values.Order().ToList();
        return v.Count % 2 == 1 ? v[v.Count / 2] : (v[v.Count / 2 - 1] + v[v.Count / 2]) / 2;
    }

    /// <summary>OpsPerStep: backend ops dispatched per step (on the GPU, kernel launches); Fused: one optimiser kernel
    /// over all parameters.</summary>
    public readonly record struct TrainRate(long Parameters, long ForwardFlops, double StepMs, double ImagesPerSecond, double OpsPerStep, bool Fused);

    /// <summary>With profiledSteps, only the timed steps run with the op profiler on (the caller enables it).</summary>
    public static TrainRate Measure(IBackend be, string name, int batch, int steps, bool profiledSteps = false, bool fuseOptimizer = true, int warmup = 5)
    {
        bool profilerWasOn = OpProfiler.Enabled;
        OpProfiler.Enabled = false;   // model creation and warm-up are not part of a step
        var model = Nets.Models.Create(name, be, seed: 1);
        long flops = model.ForwardFlops(be, [1, 28, 28]);
        var x = Tensor.Create(be, [batch, 1, 28, 28]);
        Init.Normal(x, 5, 0f, 1f);
        using var labels = be.AllocateInt(batch);
        var rng = new Random(6);
        labels.Upload(Enumerable.Range(0, batch).Select(_ => rng.Next(10)).ToArray());
        using var opt = new Sgd(model.Parameters(), new SgdConfig(0.05f, 0.9f, 5e-4f), fuseOptimizer);
        model.Train();
        void Step()
        {
            opt.ZeroGrad();
            var loss = Ops.LabelSmoothingCrossEntropy(model.Forward(x), labels, 0.1f);
            Tape.Backward(loss);
            opt.Step();
            Tape.Current.Reset();
        }
        // Warm-up: buffer pool, packing buffers, and the JIT promoting hot kernels to optimised tier-1 code.
        for (int i = 0; i < warmup; i++) Step();
        OpProfiler.Enabled = profilerWasOn && profiledSteps;
        var times = new List<double>();
        long dispatches0 = (be as BackendBase)?.Dispatches ?? 0;
        for (int i = 0; i < steps; i++)
        {
            long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
            Step();
            be.Synchronize();
            times.Add(System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
        }
        double opsPerStep = ((be as BackendBase)?.Dispatches - dispatches0 ?? 0) / (double)steps;
        double sum = times.Sum();
        times.Sort();
        double median = profiledSteps ? sum / times.Count : times[times.Count / 2];   // the profile's shares need the mean
        x.Buffer.Dispose();
        return new TrainRate(model.ParameterCount, flops, median, batch / (median / 1e3), opsPerStep, opt.Fused);
    }
}
