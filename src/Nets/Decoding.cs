using LsKd.Autograd;

namespace LsKd.Nets;

/// <summary>A model that decodes one token per row at a time (a Transformer's <see cref="Transformer.DecoderState"/>,
/// or a hand-made table in tests).</summary>
public interface IIncrementalDecoder
{
    /// <summary>Next-token logits [rows, vocabulary] after feeding each row's newest token.</summary>
    float[] Step(ReadOnlySpan<int> tokens);
    /// <summary>Row r continues the old row origins[r] from now on.</summary>
    void Reorder(ReadOnlySpan<int> origins);
}

/// <summary>Batched greedy and beam-search decoding. A hypothesis ends at EOS or at its sentence's length limit
/// a * |source| + b (the EOS is not part of the returned tokens).</summary>
public static class Decoding
{
    /// <summary>Picks the most likely token of every row at each step (the lowest id on ties). EOS is not allowed before
    /// a row has <paramref name="minLengths"/> tokens (fairseq's --min-len; benchmarks use it to decode a fixed length).</summary>
    public static int[][] Greedy(IIncrementalDecoder decoder, int vocabulary, int[] maxLengths, int[]? minLengths = null)
    {
        int rows = maxLengths.Length;
        var output = Enumerable.Range(0, rows).Select(_ => new List<int>()).ToArray();
        var done = new bool[rows];
        var tokens = Enumerable.Repeat(TransformerConfig.BosId, rows).ToArray();
        int steps = maxLengths.Max();
        for (int t = 0; t < steps && done.Contains(false); t++)
        {
            var logits = decoder.Step(tokens);
            for (int r = 0; r < rows; r++)
            {
                if (done[r]) { tokens[r] = TransformerConfig.PadId; continue; }
                var row = logits.AsSpan(r * vocabulary, vocabulary);
                if (minLengths != null && output[r].Count < minLengths[r]) row[TransformerConfig.EosId] = float.NegativeInfinity;
                int best = ArgMax(row);
                if (best == TransformerConfig.EosId || output[r].Count >= maxLengths[r]) { done[r] = true; tokens[r] = TransformerConfig.PadId; continue; }
                output[r].Add(best);
                tokens[r] = best;
            }
        }
        return output.Select(o => o.ToArray()).ToArray();
    }

    static int ArgMax(ReadOnlySpan<float> row)
    {
        int best = 0;
        for (int j = 1; j < row.Length; j++) if (row[j] > row[best]) best = j;
        return best;
    }

    /// <summary>Beam search over <paramref name="sentences"/> sentences whose rows are laid out sentence-major, beam rows
    /// each. Scores are sums of log-probabilities; finished hypotheses are ranked by score / length^lengthPenalty
    /// (length counts the EOS). A sentence stops when it has <paramref name="beam"/> finished hypotheses or reaches
    /// its length limit, where its live hypotheses are finished as they are.</summary>
    public static int[][] Beam(IIncrementalDecoder decoder, int vocabulary, int sentences, int beam, int[] maxLengths, float lengthPenalty = 1f, int[]? minLengths = null)
    {
        if (beam < 1) throw new ArgumentOutOfRangeException(nameof(beam), beam, "beam width must be at least 1");
        if (maxLengths.Length != sentences) throw new ArgumentException($"expected {sentences} length limits, got {maxLengths.Length}");
        int rows = sentences * beam;
        var hyps = new List<int>[rows];
        var scores = new double[rows];
        for (int r = 0; r < rows; r++) { hyps[r] = []; scores[r] = r % beam == 0 ? 0 : double.NegativeInfinity; }   // one live start per sentence
        var finished = Enumerable.Range(0, sentences).Select(_ => new List<(double Score, int[] Tokens)>()).ToArray();
        var closed = new bool[sentences];
        var tokens = Enumerable.Repeat(TransformerConfig.BosId, rows).ToArray();
        var logProbs = new double[vocabulary];
        int steps = maxLengths.Max() + 1;   // the last step only closes the hypotheses at their limit
        for (int t = 0; t < steps && closed.Contains(false); t++)
        {
            var logits = decoder.Step(tokens);
            var origins = new int[rows];
            var nextTokens = new int[rows];
            var nextScores = new double[rows];
            var nextHyps = new List<int>[rows];
            for (int s = 0; s < sentences; s++)
            {
                int first = s * beam;
                if (closed[s])
                {
                    for (int k = 0; k < beam; k++) { origins[first + k] = first + k; nextTokens[first + k] = TransformerConfig.PadId; nextScores[first + k] = double.NegativeInfinity; nextHyps[first + k] = []; }
                    continue;
                }
                if (t >= maxLengths[s])
                {
                    // At the length limit every live hypothesis ends here, with the probability of EOS.
                    for (int k = 0; k < beam; k++)
                    {
                        int r = first + k;
                        if (double.IsNegativeInfinity(scores[r])) continue;
                        LogSoftmax(logits.AsSpan(r * vocabulary, vocabulary), logProbs);
                        finished[s].Add(((scores[r] + logProbs[TransformerConfig.EosId]) / Math.Pow(hyps[r].Count + 1, lengthPenalty), [.. hyps[r]]));
                    }
                    closed[s] = true;
                    for (int k = 0; k < beam; k++) { origins[first + k] = first + k; nextTokens[first + k] = TransformerConfig.PadId; nextScores[first + k] = double.NegativeInfinity; nextHyps[first + k] = []; }
                    continue;
                }
                // Every (live row, token) continuation, best first; ties go to the lower row, then the lower token id.
                var candidates = new List<(double Score, int Row, int Token)>();
                for (int k = 0; k < beam; k++)
                {
                    int r = first + k;
                    if (double.IsNegativeInfinity(scores[r])) continue;
                    LogSoftmax(logits.AsSpan(r * vocabulary, vocabulary), logProbs);
                    if (minLengths != null && hyps[r].Count < minLengths[s]) logProbs[TransformerConfig.EosId] = double.NegativeInfinity;
                    for (int v = 0; v < vocabulary; v++) candidates.Add((scores[r] + logProbs[v], r, v));
                }
                candidates.Sort((x, y) => y.Score != x.Score ? y.Score.CompareTo(x.Score) : x.Row != y.Row ? x.Row.CompareTo(y.Row) : x.Token.CompareTo(y.Token));
                int kept = 0;
                foreach (var (score, row, token) in candidates)
                {
                    if (kept == beam || finished[s].Count >= beam) break;
                    if (token == TransformerConfig.EosId)
                    {
                        finished[s].Add((score / Math.Pow(hyps[row].Count + 1, lengthPenalty), [.. hyps[row]]));
                        continue;
                    }
                    origins[first + kept] = row;
                    nextTokens[first + kept] = token;
                    nextScores[first + kept] = score;
                    nextHyps[first + kept] = [.. hyps[row], token];
                    kept++;
                }
                for (int k = kept; k < beam; k++) { origins[first + k] = first; nextTokens[first + k] = TransformerConfig.PadId; nextScores[first + k] = double.NegativeInfinity; nextHyps[first + k] = []; }
                if (finished[s].Count >= beam || kept == 0) closed[s] = true;
            }
            decoder.Reorder(origins);
            tokens = nextTokens; scores = nextScores; hyps = nextHyps;
        }
        return finished.Select(f => f.Count == 0 ? [] : f.OrderByDescending(x => x.Score).First().Tokens).ToArray();
    }

    static void LogSoftmax(ReadOnlySpan<float> z, double[] output)
    {
        double max = double.NegativeInfinity;
        foreach (var v in z) max = Math.Max(max, v);
        double sum = 0;
        foreach (var v in z) sum += Math.Exp(v - max);
        double lse = max + Math.Log(sum);
        for (int i = 0; i < z.Length; i++) output[i] = z[i] - lse;
    }
}

/// <summary>Decoding with a Transformer: pads the sources, encodes them once, and runs greedy or beam search.</summary>
public static class Translator
{
    /// <summary>Maximum output length a * |source| + b, capped by the model's maximum length.</summary>
    public static int[] LengthLimits(IReadOnlyList<int[]> sources, float a, int b, int maxLength) =>
        sources.Select(s => Math.Clamp((int)(a * s.Length) + b, 1, maxLength - 1)).ToArray();

    /// <summary>Decodes every source; with <paramref name="fullLength"/> EOS is held back until the length limit, so
    /// every hypothesis has exactly a |source| + b tokens (fixed-length decoding, for benchmarks).</summary>
    public static int[][] Translate(Transformer model, IReadOnlyList<int[]> sources, int beam = 1, float lengthPenalty = 1f, float a = 1.2f, int b = 10, bool fullLength = false)
    {
        if (sources.Count == 0) return [];
        int n = sources.Count, ls = sources.Max(s => s.Length) + 1;   // + EOS
        if (ls > model.Config.MaxLength) throw new ArgumentException($"source of {ls - 1} tokens (+ EOS) exceeds the model's maximum length {model.Config.MaxLength}");
        var limits = LengthLimits(sources, a, b, model.Config.MaxLength);
        int rows = n * beam;
        // Each sentence's source, padded, repeated for each of its beam rows.
        var ids = new int[rows * ls];
        for (int s = 0; s < n; s++)
            for (int k = 0; k < beam; k++)
            {
                var row = ids.AsSpan((s * beam + k) * ls, ls);
                sources[s].CopyTo(row);
                row[sources[s].Length] = TransformerConfig.EosId;
            }
        model.Eval();
        var tape = Tape.Current;
        int[][] result;
        using (Tape.NoGrad())
        {
            var (memory, _) = model.Encode(ids, rows, ls);
            using var state = model.StartDecoding(memory, Transformer.PaddingMask(ids), rows, ls, limits.Max() + 1);   // beam search steps once more, at the limit
            tape.Reset();
            var minimum = fullLength ? limits : null;
            result = beam == 1
                ? Decoding.Greedy(new StateDecoder(state), model.Config.TargetVocab, limits, minimum)
                : Decoding.Beam(new StateDecoder(state), model.Config.TargetVocab, n, beam, limits, lengthPenalty, minimum);
        }
        tape.Reset();
        return result;
    }

    sealed class StateDecoder(Transformer.DecoderState state) : IIncrementalDecoder
    {
        public float[] Step(ReadOnlySpan<int> tokens) => state.Step(tokens);
        public void Reorder(ReadOnlySpan<int> origins) => state.Reorder(origins);
    }
}
