using System.CommandLine;
using LsKd.Autograd;
using LsKd.Kernels;
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
        var steps = new Option<int>("--steps") { Description = "timed steps per model (after 5 warm-up steps)", DefaultValueFactory = _ => 6 };
        var cmd = new Command("train", "Training-step throughput (img/s) of the study's models, with FLOP counts.") { device, threads, models, batch, steps, peer };
        cmd.SetAction(pr =>
        {
            var names = pr.GetValue(models)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            foreach (var n in names)
                if (!Nets.Models.Names.Contains(n)) throw new UsageException($"--models: unknown model '{n}'; valid models: {string.Join(", ", Nets.Models.Names)}");
            int b = pr.GetValue(batch), s = pr.GetValue(steps);
            if (b < 2) throw new UsageException($"--batch must be at least 2 (batch norm needs it), got {b}");
            if (s < 1) throw new UsageException($"--steps must be at least 1, got {s}");
            using var be = CommonOptions.CreateBackend(pr.GetValue(device)!, pr.GetValue(threads));
            AnsiConsole.MarkupLine($"training steps at batch {b} on [bold]{Markup.Escape(be.ToString()!)}[/]");
            Dictionary<string, double>? peerRate = null;
            if (pr.GetValue(peer))
                peerRate = BenchCommand.RunPeer("train_torch.py", $"--threads {be.Threads} --batch {b} --steps {s} --models {string.Join(',', names)}")
                    .ToDictionary(j => j.GetProperty("model").GetString()!, j => j.GetProperty("img_per_s").GetDouble());
            var table = new Table().AddColumn("model").AddColumn("parameters").AddColumn("fwd MFLOP/img").AddColumn("step ms (median)")
                .AddColumn("img/s").AddColumn("GFLOP/s (3x fwd)");
            if (peerRate != null) table.AddColumn("PyTorch img/s").AddColumn("ratio");
            foreach (var name in names)
            {
                var r = Measure(be, name, b, s);
                var row = new List<string> { name, $"{r.Parameters:N0}", $"{r.ForwardFlops / 1e6:F1}", $"{r.StepMs:F1}", $"{r.ImagesPerSecond:F1}",
                    $"{3 * r.ForwardFlops * r.ImagesPerSecond / 1e9:F1}" };
                if (peerRate != null && peerRate.TryGetValue(name, out var pr2)) { row.Add($"{pr2:F1}"); row.Add($"{r.ImagesPerSecond / pr2:F2}x"); }
                table.AddRow(row.ToArray());
            }
            AnsiConsole.Write(table);
            AnsiConsole.MarkupLine("step = forward, label-smoothing CE (alpha 0.1), backward, SGD (momentum 0.9, weight decay 5e-4); synthetic 1x28x28 inputs.");
            return 0;
        });
        return cmd;
    }

    public readonly record struct TrainRate(long Parameters, long ForwardFlops, double StepMs, double ImagesPerSecond);

    public static TrainRate Measure(IBackend be, string name, int batch, int steps)
    {
        var model = Nets.Models.Create(name, be, seed: 1);
        long flops = model.ForwardFlops(be, [1, 28, 28]);
        var x = Tensor.Create(be, [batch, 1, 28, 28]);
        Init.Normal(x, 5, 0f, 1f);
        using var labels = be.AllocateInt(batch);
        var rng = new Random(6);
        labels.Upload(Enumerable.Range(0, batch).Select(_ => rng.Next(10)).ToArray());
        using var opt = new Sgd(model.Parameters(), new SgdConfig(0.05f, 0.9f, 5e-4f));
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
        for (int i = 0; i < 5; i++) Step();
        var times = new List<double>();
        for (int i = 0; i < steps; i++)
        {
            long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
            Step();
            be.Synchronize();
            times.Add(System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
        }
        times.Sort();
        double median = times[times.Count / 2];
        x.Buffer.Dispose();
        return new TrainRate(model.ParameterCount, flops, median, batch / (median / 1e3));
    }
}
