using System.Diagnostics;
using LsKd.Autograd;
using LsKd.Kernels;
using LsKd.Nets;

namespace LsKd.Tests;

/// <summary>The encoder-decoder Transformer: incremental decoding against the full forward, greedy and beam search,
/// learning to copy and reverse digit strings, the ILGPU emulator against the CPU, checkpoints and bad input.</summary>
[TestFixture]
public class TransformerTests
{
    static TransformerConfig Tiny(int vocab = 13) => new()
    {
        SourceVocab = vocab, TargetVocab = vocab, ModelDim = 16, Heads = 2, EncoderLayers = 2, DecoderLayers = 2, FeedForward = 32,
        Dropout = 0f, MaxLength = 32,
    };

    static int[] Digits(Random rng, int length) => Enumerable.Range(0, length).Select(_ => 3 + rng.Next(10)).ToArray();

    [TestCase("sinusoidal")]
    [TestCase("learned")]
    public void CachedIncrementalDecoderGivesTheFullForwardLogitsStepByStep(string positions)
    {
        var be = Backends.Get("cpu-v512-2t");
        var model = new Transformer(be, Tiny() with { Positions = positions, TieTargetEmbedding = positions == "sinusoidal" }, 3);
        model.Eval();
        var rng = new Random(4);
        var sources = new[] { Digits(rng, 5), Digits(rng, 3) };   // the second is padded
        var targets = new[] { Digits(rng, 6), Digits(rng, 6) };
        var batch = Seq2SeqBatch.From(sources, targets);
        float[] full;
        using (Tape.NoGrad()) full = Seq2Seq.Logits(model, batch).ToArray();
        Tape.Current.Reset();
        int v = model.Config.TargetVocab, lt = batch.TargetLength;
        using (Tape.NoGrad())
        {
            var (memory, _) = model.Encode(batch.Source, batch.Size, batch.SourceLength);
            using var state = model.StartDecoding(memory, Transformer.PaddingMask(batch.Source), batch.Size, batch.SourceLength, lt);
            Tape.Current.Reset();
            for (int t = 0; t < lt; t++)
            {
                var step = state.Step([batch.TargetIn[t], batch.TargetIn[lt + t]]);
                for (int r = 0; r < 2; r++)
                    for (int j = 0; j < v; j++)
                        Assert.That(step[r * v + j], Is.EqualTo(full[(r * lt + t) * v + j]).Within(1e-4), $"row {r}, step {t}, token {j}");
            }
        }
    }

    [Test]
    public void BeamOfOneEqualsGreedy()
    {
        var be = Backends.Get("cpu-v512-2t");
        var model = new Transformer(be, Tiny(), 11);
        var rng = new Random(12);
        var sources = Enumerable.Range(0, 6).Select(i => Digits(rng, 2 + i)).ToList();
        var greedy = Translator.Translate(model, sources, beam: 1, a: 1f, b: 3);
        // Beam search with one hypothesis through its own code path, on the same decoder state type.
        var beam1 = BeamThroughSearch(model, sources, 1);
        Assert.That(beam1.Select(x => string.Join(",", x)), Is.EqualTo(greedy.Select(x => string.Join(",", x))));
        Assert.That(greedy.Sum(g => g.Length), Is.GreaterThan(0), "an untrained model still emits tokens");
    }

    /// <summary>Runs <see cref="Decoding.Beam"/> (not the greedy shortcut) with the given width.</summary>
    static int[][] BeamThroughSearch(Transformer model, List<int[]> sources, int width)
    {
        int n = sources.Count, ls = sources.Max(s => s.Length) + 1;
        var ids = new int[n * width * ls];
        for (int s = 0; s < n; s++)
            for (int k = 0; k < width; k++) { sources[s].CopyTo(ids, (s * width + k) * ls); ids[(s * width + k) * ls + sources[s].Length] = TransformerConfig.EosId; }
        var limits = Translator.LengthLimits(sources, 1f, 3, model.Config.MaxLength);
        model.Eval();
        using (Tape.NoGrad())
        {
            var (memory, _) = model.Encode(ids, n * width, ls);
            using var state = model.StartDecoding(memory, Transformer.PaddingMask(ids), n * width, ls, limits.Max() + 2);
            Tape.Current.Reset();
            return Decoding.Beam(new StateAdapter(state), model.Config.TargetVocab, n, width, limits);
        }
    }

    sealed class StateAdapter(Transformer.DecoderState s) : IIncrementalDecoder
    {
        public float[] Step(ReadOnlySpan<int> tokens) => s.Step(tokens);
        public void Reorder(ReadOnlySpan<int> origins) => s.Reorder(origins);
    }

    /// <summary>Next-token probabilities that depend on the history: after BOS, token 3 (0.6) beats token 4 (0.4), but
    /// 3 is followed by a flat choice (best 0.3) while 4 is followed by a sure EOS path.</summary>
    sealed class TableDecoder(int rows) : IIncrementalDecoder
    {
        const int V = 6;
        List<int>[] _history = Enumerable.Range(0, rows).Select(_ => new List<int>()).ToArray();

        public float[] Step(ReadOnlySpan<int> tokens)
        {
            var logits = new float[rows * V];
            for (int r = 0; r < rows; r++)
            {
                _history[r].Add(tokens[r]);
                var h = _history[r];
                double[] p = h.Count switch
                {
                    1 => [0, 0, 0.0, 0.6, 0.4, 0.0],                                   // after BOS
                    2 when h[1] == 3 => [0, 0, 0.25, 0.25, 0.25, 0.25],                 // flat after 3
                    2 when h[1] == 4 => [0, 0, 0.0, 0.0, 0.0, 1.0],                     // 4 -> 5 surely
                    _ => [0, 0, 1.0, 0, 0, 0],                                          // then EOS
                };
                for (int j = 0; j < V; j++) logits[r * V + j] = p[j] > 0 ? (float)Math.Log(p[j]) : -1e9f;
            }
            return logits;
        }

        public void Reorder(ReadOnlySpan<int> origins)
        {
            var old = _history;
            _history = new List<int>[rows];
            for (int r = 0; r < rows; r++) _history[r] = [.. old[origins[r]]];
        }
    }

    [Test]
    public void BeamOfTwoFindsTheMoreLikelySequenceGreedyMisses()
    {
        var greedy = Decoding.Greedy(new TableDecoder(1), 6, [5]);
        var beam = Decoding.Beam(new TableDecoder(2), 6, 1, 2, [5], lengthPenalty: 0f);
        // Greedy: 3 (0.6), then a tie at 0.25 resolved to the lowest id, EOS: probability 0.6 * 0.25 = 0.15.
        Assert.That(greedy[0], Is.EqualTo(new[] { 3 }));
        // Beam 2 keeps 4 (0.4) alive, which continues with 5 (1.0) and EOS (1.0): probability 0.4.
        Assert.That(beam[0], Is.EqualTo(new[] { 4, 5 }));
    }

    [Test]
    public void MinimumLengthHoldsBackEndOfSentence()
    {
        // The table ends every hypothesis after two tokens; a minimum of four forces four tokens, greedy and beam.
        Assert.That(Decoding.Greedy(new TableDecoder(1), 6, [4], [4])[0], Has.Length.EqualTo(4));
        Assert.That(Decoding.Greedy(new TableDecoder(1), 6, [4])[0], Has.Length.LessThan(4));
        Assert.That(Decoding.Beam(new TableDecoder(2), 6, 1, 2, [4], 0f, [4])[0], Has.Length.EqualTo(4));
    }

    /// <summary>Trains a tiny Transformer on random digit strings; exact match by greedy decoding of held-out strings.</summary>
    static (double ExactMatch, double Seconds) TrainToy(string task, string backendName, int steps, TransformerConfig config, int evalCount)
    {
        var be = Backends.Get(backendName);
        var model = new Transformer(be, config, 21);
        using var opt = new AdamW(model.Parameters(), new AdamWConfig(3e-3f, 0.9f, 0.98f, 1e-9f, 0f));
        var rng = new Random(task == "copy" ? 31 : 32);
        int[] Target(int[] s) => task == "copy" ? s : s.Reverse().ToArray();
        var sw = Stopwatch.StartNew();
        model.Train();
        for (int step = 1; step <= steps; step++)
        {
            var sources = Enumerable.Range(0, 64).Select(_ => Digits(rng, 3 + rng.Next(6))).ToList();
            var batch = Seq2SeqBatch.From(sources, sources.Select(Target).ToList());
            opt.LearningRate = LearningRateSchedules.WarmupCosine(step, 50, steps, 3e-3f, 1e-4f);
            float loss = Seq2Seq.TrainStep(model, opt, () => Seq2Seq.LabelSmoothingLoss(model, batch, 0f));
            Assert.That(float.IsFinite(loss), $"step {step}: loss {loss}");
        }
        double seconds = sw.Elapsed.TotalSeconds;
        var test = Enumerable.Range(0, evalCount).Select(_ => Digits(rng, 3 + rng.Next(6))).ToList();
        var output = Translator.Translate(model, test, beam: 1, a: 1f, b: 2);
        int exact = test.Where((s, i) => output[i].SequenceEqual(Target(s))).Count();
        return (100.0 * exact / test.Count, seconds);
    }

    static TransformerConfig ToyConfig => new()
    {
        SourceVocab = 13, TargetVocab = 13, ModelDim = 64, Heads = 4, EncoderLayers = 2, DecoderLayers = 2, FeedForward = 128,
        Dropout = 0f, MaxLength = 16,
    };

    [TestCase("copy")]
    [TestCase("reverse")]
    public void LearnsToCopyAndReverseDigitStrings(string task)
    {
        var (exact, seconds) = TrainToy(task, "cpu-v512-2t", 400, ToyConfig, 300);
        TestContext.Out.WriteLine($"{task}: {exact:F1} % exact match after 400 steps of 64 strings, {seconds:F1} s of training");
        Assert.That(exact, Is.GreaterThanOrEqualTo(99.0), $"{task}: exact match {exact:F1} %");
    }

    [Test]
    public void TrainsOnTheIlgpuEmulatorLikeOnTheCpu()
    {
        // The same seeds on both backends: the losses of the first steps must agree (fp32 rounding apart).
        var config = Tiny() with { ModelDim = 8, FeedForward = 8, EncoderLayers = 1, DecoderLayers = 1 };
        float[] Losses(string backend)
        {
            var be = Backends.Get(backend);
            var model = new Transformer(be, config, 5);
            using var opt = new AdamW(model.Parameters(), new AdamWConfig(1e-2f, 0.9f, 0.98f, 1e-9f, 0f));
            var rng = new Random(6);
            var losses = new float[3];
            for (int step = 0; step < losses.Length; step++)
            {
                var sources = Enumerable.Range(0, 2).Select(_ => Digits(rng, 2 + rng.Next(2))).ToList();
                var batch = Seq2SeqBatch.From(sources, sources);
                losses[step] = Seq2Seq.TrainStep(model, opt, () => Seq2Seq.LabelSmoothingLoss(model, batch, 0.1f));
            }
            return losses;
        }
        var cpu = Losses("cpu-v512-2t");
        var emulator = Losses("ilgpu-cpu-g64");
        Assert.That(emulator, Is.EqualTo(cpu).Within(2e-4), $"cpu {string.Join(", ", cpu)} vs emulator {string.Join(", ", emulator)}");
        Assert.That(cpu[^1], Is.LessThan(cpu[0]), "the loss falls");
    }

    [Test]
    public void CheckpointRoundTripsTheModelAndItsConfiguration()
    {
        var be = Backends.Get("cpu-v512-2t");
        var model = new Transformer(be, Tiny() with { Positions = "learned", TieTargetEmbedding = false }, 8);
        string path = Path.Combine(Path.GetTempPath(), $"lskd-transformer-{Guid.NewGuid():N}.safetensors");
        try
        {
            Checkpoint.Save(model, path);
            var loaded = Transformer.Load(path, be);
            Assert.That(loaded.Config, Is.EqualTo(model.Config));
            var batch = Seq2SeqBatch.From([[3, 4, 5]], [[6, 7]]);
            model.Eval();
            float[] a, b;
            using (Tape.NoGrad()) { a = Seq2Seq.Logits(model, batch).ToArray(); b = Seq2Seq.Logits(loaded, batch).ToArray(); }
            Tape.Current.Reset();
            Assert.That(b, Is.EqualTo(a));
        }
        finally { File.Delete(path); }
    }

    [Test]
    public void BadInputGivesClearErrors()
    {
        var be = Backends.Get("cpu-v512-2t");
        var e = Assert.Throws<ArgumentException>(() => new Transformer(be, Tiny() with { ModelDim = 18, Heads = 4 }, 1));
        Assert.That(e!.Message, Does.Contain("heads 4 does not divide d_model 18"));
        var model = new Transformer(be, Tiny(), 1);
        e = Assert.Throws<ArgumentException>(() => Seq2Seq.Logits(model, Seq2SeqBatch.From([Enumerable.Repeat(3, 40).ToArray()], [[3]])));
        Assert.That(e!.Message, Does.Contain("sequence length 41 exceeds the model's maximum length 32"));
        e = Assert.Throws<ArgumentException>(() => Seq2Seq.Logits(model, Seq2SeqBatch.From([[3, 99]], [[3]])));
        Assert.That(e!.Message, Does.Contain("token id 99").And.Contain("outside the vocabulary of 13"));
        Tape.Current.Reset();
        // A key mask shorter than batch x key length is refused by the kernel's checks, naming the mask.
        var spec = AttentionSpec.Packed(2, 2, 3, 4, 4);
        using var q = be.Allocate((int)spec.QExtent); using var k = be.Allocate((int)spec.KExtent); using var o = be.Allocate((int)spec.OExtent);
        using var lse = be.Allocate(spec.LseLength); using var mask = be.AllocateInt(5);
        e = Assert.Throws<ArgumentException>(() => be.Attention(spec, q, k, k, mask, o, lse));
        Assert.That(e!.Message, Does.Contain("key mask [batch 2, key length 4]"));
    }
}
