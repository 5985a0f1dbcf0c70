using System.CommandLine;
using System.Diagnostics;
using LsKd.Autograd;
using LsKd.Kernels;
using LsKd.Kernels.Cpu;
using LsKd.Nets;
using Spectre.Console;

namespace LsKd.Experiments.Commands;

/// <summary>`lskd bench attention` and `lskd bench transformer`: the fused attention kernel (forward + backward) and
/// whole Transformer training steps and decoding, optionally beside PyTorch on the same machine in the same run
/// (bench/peers/attention_torch.py, transformer_torch.py).</summary>
internal static class SequenceBench
{
    const string DefaultAttentionCases = "causal:32:4:64:64:32,padded:32:4:64:64:32,causal:8:8:256:256:64,padded:8:8:256:256:64";

    public static Command Attention(Func<Option<bool>> peerOption)
    {
        var device = CommonOptions.Device(); var threads = CommonOptions.Threads(); var peer = peerOption();
        var cases = new Option<string>("--cases") { Description = "comma-separated kind:B:H:Lq:Lk:d (kind = causal self-attention, or padded: key padding)", DefaultValueFactory = _ => DefaultAttentionCases };
        var minTime = new Option<double>("--min-time") { Description = "seconds of timed runs per case", DefaultValueFactory = _ => 1.0 };
        var rounds = new Option<int>("--rounds") { Description = "alternate PyTorch and LsKd this many times and report medians (the machine's noise is large)", DefaultValueFactory = _ => 1 };
        var cmd = new Command("attention", "Fused attention forward + backward, GFLOP/s against the FMA peak, beside PyTorch's composed attention.") { device, threads, cases, peer, minTime, rounds };
        cmd.SetAction(pr =>
        {
            var parsed = pr.GetValue(cases)!.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(ParseCase).ToList();
            using var be = CommonOptions.CreateBackend(pr.GetValue(device)!, pr.GetValue(threads));
            double secs = pr.GetValue(minTime);
            double? peak = be is CpuBackend ? CpuPeak.FmaGflops(be.Threads) : null;
            AnsiConsole.MarkupLine($"attention forward + backward on [bold]{Markup.Escape(be.ToString()!)}[/]{(peak is { } p ? $", FMA peak {p:F0} GFLOP/s" : "")}");
            int nRounds = pr.GetValue(rounds);
            if (nRounds < 1) throw new UsageException($"--rounds must be at least 1, got {nRounds}");
            bool withPeer = pr.GetValue(peer);
            var ours = parsed.ToDictionary(c => c.Text, _ => new List<BenchCommand.Timing>());
            var theirs = parsed.ToDictionary(c => c.Text, _ => new List<double>());
            for (int round = 0; round < nRounds; round++)
            {
                // PyTorch first, then LsKd, in every round: both see the same stretch of the machine's load.
                if (withPeer)
                    foreach (var j in BenchCommand.RunPeer(be, "attention_torch.py", $"--threads {be.Threads} --cases {pr.GetValue(cases)} --min-time {secs}"))
                        theirs[j.GetProperty("case").GetString()!].Add(j.GetProperty("median_ms").GetDouble());
                foreach (var c in parsed) ours[c.Text].Add(TimeCase(be, c.Spec, c.Mask, secs));
            }
            var table = new Table().AddColumn("case").AddColumn("median ms").AddColumn("p20-p80 ms").AddColumn("GFLOP/s");
            if (peak != null) table.AddColumn("of FMA peak");
            if (withPeer) table.AddColumn("PyTorch ms").AddColumn("speed-up");
            if (withPeer && nRounds > 1) table.AddColumn("per-round speed-ups");
            foreach (var (text, spec, mask) in parsed)
            {
                var t = ours[text].OrderBy(x => x.Median).ElementAt(ours[text].Count / 2);
                // Useful work: 4 B H d per visible (query, key) pair forward (two products), 8 backward (four).
                double flops = 12.0 * spec.Heads * spec.HeadDim * VisiblePairs(spec, mask);   // pairs are counted over the batch
                double gflops = flops / (t.Median * 1e-3) / 1e9;
                var row = new List<string> { text, $"{t.Median:F3}", $"{t.P20:F3}-{t.P80:F3}", $"{gflops:F1}" };
                if (peak is { } pk) row.Add($"{100 * gflops / pk:F0} %");
                if (withPeer && theirs[text].Count > 0)
                {
                    double pm = theirs[text].OrderBy(x => x).ElementAt(theirs[text].Count / 2);
                    row.Add($"{pm:F3}"); row.Add($"{pm / t.Median:F2}x");
                    if (nRounds > 1) row.Add(string.Join(" ", ours[text].Zip(theirs[text], (o, p) => $"{p / o.Median:F2}")));
                }
                table.AddRow(row.ToArray());
            }
            AnsiConsole.Write(table);
            return 0;
        });
        return cmd;
    }

    static BenchCommand.Timing TimeCase(IBackend be, AttentionSpec spec, int[]? mask, double secs)
    {
        using var q = be.Allocate((int)spec.QExtent); using var k = be.Allocate((int)spec.KExtent); using var v = be.Allocate((int)spec.VExtent);
        using var o = be.Allocate((int)spec.OExtent); using var dO = be.Allocate((int)spec.OExtent); using var lse = be.Allocate(spec.LseLength);
        using var dq = be.Allocate((int)spec.QExtent); using var dk = be.Allocate((int)spec.KExtent); using var dv = be.Allocate((int)spec.VExtent);
        be.InitNormal(q, q.Length, 1, 0, 1); be.InitNormal(k, k.Length, 2, 0, 1); be.InitNormal(v, v.Length, 3, 0, 1); be.InitNormal(dO, dO.Length, 4, 0, 1);
        using var maskBuf = mask == null ? null : be.AllocateInt(mask.Length);
        maskBuf?.Upload(mask);
        return BenchCommand.Time(be, () =>
        {
            be.Attention(spec, q, k, v, maskBuf, o, lse);
            be.AttentionBackward(spec, q, k, v, maskBuf, o, lse, dO, dq, dk, dv);
        }, secs);
    }

    /// <summary>kind:B:H:Lq:Lk:d; padded cases give batch row i the first Lk - (7 i mod (Lk / 2)) keys, as the peer does.</summary>
    static (string Text, AttentionSpec Spec, int[]? Mask) ParseCase(string text)
    {
        var p = text.Split(':');
        if (p.Length != 6 || p[0] is not ("causal" or "padded") || !p.Skip(1).All(x => int.TryParse(x, out int v) && v > 0))
            throw new UsageException($"--cases: '{text}' is not kind:B:H:Lq:Lk:d with kind causal or padded and positive sizes");
        int b = int.Parse(p[1]), h = int.Parse(p[2]), lq = int.Parse(p[3]), lk = int.Parse(p[4]), d = int.Parse(p[5]);
        var spec = AttentionSpec.Packed(b, h, lq, lk, d, causal: p[0] == "causal");
        int[]? mask = null;
        if (p[0] == "padded")
        {
            mask = new int[b * lk];
            for (int i = 0; i < b; i++)
            {
                int n = lk - (i * 7) % Math.Max(1, lk / 2);
                for (int j = 0; j < n; j++) mask[i * lk + j] = 1;
            }
        }
        return (text, spec, mask);
    }

    static long VisiblePairs(in AttentionSpec s, int[]? mask)
    {
        long pairs = 0;
        for (int b = 0; b < s.Batch; b++)
            for (int i = 0; i < s.QueryLength; i++)
                for (int j = 0; j < s.KeyLimit(i); j++)
                    if (mask == null || mask[b * s.KeyLength + j] != 0) pairs++;
        return pairs;
    }

    public static Command Transformer(Func<Option<bool>> peerOption)
    {
        var device = CommonOptions.Device(); var threads = CommonOptions.Threads(); var peer = peerOption();
        var vocab = new Option<int>("--vocab") { Description = "source and target vocabulary", DefaultValueFactory = _ => 200 };
        var dModel = new Option<int>("--d-model") { Description = "model width", DefaultValueFactory = _ => 256 };
        var heads = new Option<int>("--heads") { Description = "attention heads", DefaultValueFactory = _ => 4 };
        var layers = new Option<int>("--layers") { Description = "encoder and decoder layers (each)", DefaultValueFactory = _ => 3 };
        var ffn = new Option<int>("--ffn") { Description = "feed-forward width", DefaultValueFactory = _ => 1024 };
        var batch = new Option<int>("--batch") { Description = "sentence pairs per step (pair i: source 20 + 37i mod 41 tokens, target 20 + 53i mod 41)", DefaultValueFactory = _ => 100 };
        var steps = new Option<int>("--steps") { Description = "timed training steps (after 2 warm-up steps)", DefaultValueFactory = _ => 5 };
        var sentences = new Option<int>("--decode-sentences") { Description = "sentences decoded (greedy and beam 5)", DefaultValueFactory = _ => 16 };
        var cmd = new Command("transformer", "Transformer training-step throughput (target tokens/s) and decoding speed (sentences/s), beside PyTorch.")
            { device, threads, vocab, dModel, heads, layers, ffn, batch, steps, sentences, peer };
        cmd.SetAction(pr =>
        {
            int v = pr.GetValue(vocab), d = pr.GetValue(dModel), h = pr.GetValue(heads), l = pr.GetValue(layers), f = pr.GetValue(ffn), b = pr.GetValue(batch), n = pr.GetValue(steps), ns = pr.GetValue(sentences);
            if (v < 4 || d < 1 || h < 1 || l < 1 || f < 1 || b < 1 || n < 1 || ns < 1) throw new UsageException("--vocab must be >= 4 and the other sizes >= 1");
            var config = new TransformerConfig { SourceVocab = v, TargetVocab = v, ModelDim = d, Heads = h, EncoderLayers = l, DecoderLayers = l, FeedForward = f, MaxLength = 256 };
            try { config.Validate("--d-model/--heads"); } catch (ArgumentException e) { throw new UsageException(e.Message); }
            using var be = CommonOptions.CreateBackend(pr.GetValue(device)!, pr.GetValue(threads));
            AnsiConsole.MarkupLine($"Transformer d_model {d}, {h} heads, {l}+{l} layers, FFN {f}, vocabulary {v}, {b} pairs a step on [bold]{Markup.Escape(be.ToString()!)}[/]");
            List<System.Text.Json.JsonElement>? peerRows = pr.GetValue(peer)
                ? BenchCommand.RunPeer(be, "transformer_torch.py", $"--threads {be.Threads} --vocab {v} --d-model {d} --heads {h} --layers {l} --ffn {f} --batch {b} --steps {n} --decode-sentences {ns}")
                : null;
            var rng = new Random(0);
            var sources = Enumerable.Range(0, b).Select(i => Enumerable.Range(0, 20 + 37 * i % 41).Select(_ => 3 + rng.Next(v - 3)).ToArray()).ToList();
            var targets = Enumerable.Range(0, b).Select(i => Enumerable.Range(0, 20 + 53 * i % 41).Select(_ => 3 + rng.Next(v - 3)).ToArray()).ToList();
            var data = Seq2SeqBatch.From(sources, targets);
            var model = new Nets.Transformer(be, config, 1);
            using var opt = new AdamW(model.Parameters(), new AdamWConfig(5e-4f, 0.9f, 0.98f, 1e-9f, 0f));
            model.Train();
            float Step() => Seq2Seq.TrainStep(model, opt, () => Seq2Seq.LabelSmoothingLoss(model, data, 0.1f), clip: 1f);
            for (int i = 0; i < 2; i++) Step();
            be.Synchronize();
            var times = new List<double>();
            for (int i = 0; i < n; i++) { var sw = Stopwatch.StartNew(); Step(); be.Synchronize(); times.Add(sw.Elapsed.TotalSeconds); }
            times.Sort();
            double stepSeconds = times[times.Count / 2], tokensPerSecond = data.RealTargetTokens / stepSeconds;

            var decodeSources = sources.Take(ns).ToList();
            double DecodeSeconds(int beam)
            {
                var sw = Stopwatch.StartNew();
                Translator.Translate(model, decodeSources, beam: beam, a: 1.2f, b: 10, fullLength: true);
                return sw.Elapsed.TotalSeconds;
            }
            DecodeSeconds(1);   // warm-up
            double greedy = ns / DecodeSeconds(1), beam5 = ns / DecodeSeconds(5);

            var table = new Table().AddColumn("measure").AddColumn("LsKd");
            if (peerRows != null) table.AddColumn("PyTorch").AddColumn("ratio");
            var peerTrain = peerRows?.FirstOrDefault(r => r.GetProperty("kind").GetString() == "train");
            var peerGreedy = peerRows?.FirstOrDefault(r => r.GetProperty("kind").GetString() == "greedy");
            void Row(string what, string ours, double? mine = null, double? theirs = null, string? theirText = null)
            {
                var row = new List<string> { what, ours };
                if (peerRows != null) { row.Add(theirText ?? (theirs is { } t ? $"{t:N1}" : "")); row.Add(mine is { } m && theirs is { } p && p > 0 ? $"{m / p:F2}x" : ""); }
                table.AddRow(row.ToArray());
            }
            Row("parameters", $"{model.ParameterCount:N0}", theirText: peerTrain is { } pt ? $"{pt.GetProperty("parameters").GetInt64():N0}" : null);
            Row("target tokens a step", $"{data.RealTargetTokens:N0}", theirText: peerTrain is { } pt2 ? $"{pt2.GetProperty("target_tokens").GetInt32():N0}" : null);
            Row("training step ms (median)", $"{stepSeconds * 1e3:F0}", theirText: peerTrain is { } pt3 ? $"{pt3.GetProperty("step_ms").GetDouble():F0}" : null);
            Row("training target tokens/s", $"{tokensPerSecond:N0}", tokensPerSecond, peerTrain?.GetProperty("tokens_per_s").GetDouble());
            Row("greedy decoding sentences/s", $"{greedy:F2}", greedy, peerGreedy?.GetProperty("sentences_per_s").GetDouble());
            Row("beam 5 decoding sentences/s", $"{beam5:F2}", beam5, peerGreedy?.GetProperty("sentences_per_s").GetDouble());
            AnsiConsole.Write(table);
            AnsiConsole.MarkupLine("Decoding runs to the length limit 1.2 |source| + 10 (EOS held back: the untrained models would stop at random places)" +
                (peerRows != null ? "; PyTorch decodes greedily, re-running the whole prefix each step (its modules have no key/value cache)." : "."));
            return 0;
        });
        return cmd;
    }
}
