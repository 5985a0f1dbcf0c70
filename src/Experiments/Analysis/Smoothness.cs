namespace LsKd.Experiments.Analysis;

/// <summary>How smooth a teacher's targets are: average entropy of softmax(z / T) (computed in float64 from
/// log-softmax), the temperature at which one teacher matches another's entropy, average soft outputs per
/// class (Figure 2) and the Appendix D count of negligible classes.</summary>
public static class Smoothness
{
    /// <summary>Mean over rows of -sum p log p, p = softmax(z / T); logits are [rows, classes].</summary>
    public static double AverageEntropy(float[] logits, int classes, double temperature)
    {
        int rows = logits.Length / classes;
        double total = 0;
        var z = new double[classes];
        for (int r = 0; r < rows; r++)
        {
            double max = double.NegativeInfinity;
            for (int k = 0; k < classes; k++) { z[k] = logits[r * classes + k] / temperature; max = Math.Max(max, z[k]); }
            double sum = 0;
            for (int k = 0; k < classes; k++) sum += Math.Exp(z[k] - max);
            double logSum = max + Math.Log(sum), h = 0;
            for (int k = 0; k < classes; k++) { double logP = z[k] - logSum; h -= Math.Exp(logP) * logP; }
            total += h;
        }
        return rows == 0 ? double.NaN : total / rows;
    }

    /// <summary>The temperature T' at which the teacher with these logits has the target average entropy, by
    /// bisection on log T (entropy rises monotonically with T) until the entropies agree to 1e-9; null when the
    /// target lies outside the entropies reachable for T in [1e-3, 1e4].</summary>
    public static double? MatchTemperature(float[] logits, int classes, double targetEntropy)
    {
        double lo = Math.Log(1e-3), hi = Math.Log(1e4);
        double hLo = AverageEntropy(logits, classes, Math.Exp(lo)), hHi = AverageEntropy(logits, classes, Math.Exp(hi));
        if (!(targetEntropy >= hLo && targetEntropy <= hHi)) return null;
        for (int it = 0; it < 200; it++)
        {
            double mid = 0.5 * (lo + hi), h = AverageEntropy(logits, classes, Math.Exp(mid));
            if (Math.Abs(h - targetEntropy) <= 1e-9) return Math.Exp(mid);
            if (h < targetEntropy) lo = mid; else hi = mid;
            if (hi - lo < 1e-15) break;
        }
        return Math.Exp(0.5 * (lo + hi));
    }

    /// <summary>avg[c, k] = mean of softmax(z / T)[k] over the rows labelled c ([classes, classes], NaN rows for absent classes).</summary>
    public static double[] AverageSoftTargets(float[] logits, int[] labels, int classes, double temperature)
    {
        var sums = new double[classes * classes];
        var counts = new int[classes];
        var p = new double[classes];
        for (int r = 0; r < labels.Length; r++)
        {
            double max = double.NegativeInfinity;
            for (int k = 0; k < classes; k++) max = Math.Max(max, logits[r * classes + k] / temperature);
            double sum = 0;
            for (int k = 0; k < classes; k++) { p[k] = Math.Exp(logits[r * classes + k] / temperature - max); sum += p[k]; }
            for (int k = 0; k < classes; k++) sums[labels[r] * classes + k] += p[k] / sum;
            counts[labels[r]]++;
        }
        for (int c = 0; c < classes; c++)
            for (int k = 0; k < classes; k++) sums[c * classes + k] = counts[c] > 0 ? sums[c * classes + k] / counts[c] : double.NaN;
        return sums;
    }

    /// <summary>Appendix D: in the average soft output of a class, the number of classes whose probability is at
    /// least 100 times smaller than the second largest (they stay negligible under temperature scaling).</summary>
    public static int NegligibleClasses(ReadOnlySpan<double> averageOutput)
    {
        var sorted = averageOutput.ToArray().OrderByDescending(v => v).ToArray();
        if (sorted.Length < 2) return 0;
        double second = sorted[1];
        int count = 0;
        foreach (double v in averageOutput) if (v * 100 <= second) count++;
        return count;
    }
}

/// <summary>A smoothed teacher at T and the unsmoothed teacher at the temperature T' with the same average
/// target entropy on the analysis training images (paper Tables 13-16).</summary>
public sealed record MatchedPair(int Seed, float TeacherAlpha, float Temperature, double Entropy, float MatchedTemperature, double MatchedEntropy);

public static class Matching
{
    /// <summary>For each smoothed teacher and each T, the T' of the unsmoothed teacher (T' rounded to float, the
    /// precision distillation uses, and its entropy recomputed at that T'). Pairs with no reachable T' are skipped.</summary>
    public static List<MatchedPair> Compute(int seed, float[] plainLogits, IReadOnlyDictionary<float, float[]> smoothedLogits, int classes, IEnumerable<float> temperatures)
    {
        var pairs = new List<MatchedPair>();
        foreach (var (alpha, logits) in smoothedLogits.OrderBy(kv => kv.Key))
            foreach (float t in temperatures)
            {
                double target = Smoothness.AverageEntropy(logits, classes, t);
                if (Smoothness.MatchTemperature(plainLogits, classes, target) is not { } matched) continue;
                float tf = (float)matched;
                pairs.Add(new MatchedPair(seed, alpha, t, target, tf, Smoothness.AverageEntropy(plainLogits, classes, tf)));
            }
        return pairs;
    }
}
