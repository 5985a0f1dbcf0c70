using System.Globalization;

namespace LsKd.Experiments.Analysis;

/// <summary>How smoothed a teacher looks from its outputs on training images.</summary>
/// <remarks>A teacher trained with label smoothing alpha is pulled towards p(true) = 1 - alpha (K - 1) / K and equal
/// logits for the other classes, i.e. a logit gap g = ln((1 - alpha + alpha / K) / (alpha / K)). Inverting the two
/// gives two estimates of the effective alpha: from the mean true-class probability and from the median gap between
/// the true logit and the mean of the others.</remarks>
public sealed record TeacherAssessment(int Images, int Classes, double Accuracy, double MeanTrueProbability, double MedianLogitGap,
    double AlphaFromConfidence, double AlphaFromGap, IReadOnlyList<(float T, double Entropy)> Entropies)
{
    /// <summary>The estimate the advice uses: the logit-gap one (confidence also falls when a teacher is merely weak).</summary>
    public double EffectiveAlpha => AlphaFromGap;
    public bool IsSmoothed => EffectiveAlpha >= Advisor.SmoothedThreshold;
}

public sealed record Advice(float Temperature, IReadOnlyList<string> Reasons);

/// <summary>A finished student of a study: its teacher's alpha, its temperature and its test top-1 (%).</summary>
public readonly record struct StudentResult(float TeacherAlpha, float Temperature, double TestTop1);

/// <summary>What a finished study says about temperatures: its name, its teachers' alphas and its students.</summary>
public sealed record StudyEvidence(string Name, IReadOnlyList<float> TeacherAlphas, IReadOnlyList<StudentResult> Students);

public static class Advisor
{
    /// <summary>Effective alpha from which a teacher counts as smoothed (a third of the usual 0.1 setting).</summary>
    public const double SmoothedThreshold = 0.03;
    static readonly CultureInfo Inv = CultureInfo.InvariantCulture;
    static string F(float v) => v.ToString("0.###", Inv);

    public static TeacherAssessment Assess(SetOutputs outputs, IReadOnlyList<float> temperatures)
    {
        int k = outputs.Classes, n = outputs.Count;
        double trueProb = 0; int correct = 0;
        var gaps = new double[n];
        for (int i = 0; i < n; i++)
        {
            var z = outputs.Logits.AsSpan(i * k, k);
            int y = outputs.Labels[i];
            double max = double.NegativeInfinity; int arg = 0;
            for (int j = 0; j < k; j++) if (z[j] > max) { max = z[j]; arg = j; }
            double sum = 0, others = 0;
            for (int j = 0; j < k; j++) { sum += Math.Exp(z[j] - max); if (j != y) others += z[j]; }
            trueProb += Math.Exp(z[y] - max) / sum;
            if (arg == y) correct++;
            gaps[i] = z[y] - others / (k - 1);
        }
        trueProb /= n;
        Array.Sort(gaps);
        double gap = gaps[n / 2];
        double alphaConf = Math.Clamp((1 - trueProb) * k / (k - 1), 0, 1);
        double alphaGap = Math.Clamp(k / (Math.Exp(Math.Min(gap, 700)) + k - 1), 0, 1);
        var entropies = temperatures.Select(t => (t, Smoothness.AverageEntropy(outputs.Logits, k, t))).ToList();
        return new TeacherAssessment(n, k, 100.0 * correct / n, trueProb, gap, alphaConf, alphaGap, entropies);
    }

    /// <summary>A temperature and the reasons for it: from a finished study when one is given (the temperature whose
    /// students were best for the study's teacher closest in smoothing), else from the paper's findings.</summary>
    public static Advice Recommend(TeacherAssessment a, StudyEvidence? study = null)
    {
        var reasons = new List<string>();
        string alphaText = $"effective label smoothing alpha ≈ {a.EffectiveAlpha.ToString("F3", Inv)} from the logit gap ({a.MedianLogitGap.ToString("F2", Inv)}), " +
                           $"≈ {a.AlphaFromConfidence.ToString("F3", Inv)} from the mean true-class probability ({a.MeanTrueProbability.ToString("F3", Inv)})";
        reasons.Add((a.IsSmoothed ? $"The teacher looks smoothed: {alphaText}." : $"The teacher does not look smoothed: {alphaText}.") +
                    $" (LsKd's estimate, inverting the LS optimum; smoothed from {SmoothedThreshold.ToString("0.###", Inv)}, a heuristic threshold.)");
        if (a.Accuracy < 60)
            reasons.Add($"Caution: the teacher fits only {a.Accuracy.ToString("F1", Inv)}% of these training images; an under-trained teacher also has small logit gaps, so this estimate is an upper bound.");
        double h1 = a.Entropies.FirstOrDefault(e => e.T == 1f).Entropy, ceiling = Math.Log(a.Classes);

        if (study != null && study.TeacherAlphas.Count > 0)
        {
            float nearest = study.TeacherAlphas.OrderBy(x => Math.Abs(x - a.EffectiveAlpha)).First();
            var byT = study.Students.Where(r => r.TeacherAlpha == nearest)
                .GroupBy(r => r.Temperature).Select(g => (T: g.Key, Acc: g.Average(r => r.TestTop1), Count: g.Count())).OrderByDescending(x => x.Acc).ToList();
            if (byT.Count > 0)
            {
                reasons.Add($"In study '{study.Name}', the teacher closest in smoothing was trained with alpha = {F(nearest)}; its students' mean test top-1 by T: " +
                            string.Join(", ", byT.OrderBy(x => x.T).Select(x => $"T = {F(x.T)}: {x.Acc.ToString("F2", Inv)}% ({x.Count} run(s))")) + ".");
                reasons.Add($"T = {F(byT[0].T)} gave the best students there.");
                return new Advice(byT[0].T, reasons);
            }
            reasons.Add($"Study '{study.Name}' has no finished students of an alpha = {F(nearest)} teacher; falling back on the paper's findings.");
        }
        if (a.IsSmoothed)
        {
            reasons.Add($"Its targets are already soft at T = 1 (average entropy {h1.ToString("F3", Inv)} of a possible {ceiling.ToString("F3", Inv)}).");
            reasons.Add("The paper's finding (Chandrasegaran et al.): with an LS-trained teacher, KD at higher temperatures diffuses the student's penultimate " +
                        "representations systematically (towards semantically similar classes, eta < 0 on them, away from dissimilar ones), which undoes the " +
                        "tight clusters LS gave the teacher, and such students lose accuracy; at T = 1 the LS teacher's students were as good or better. " +
                        "The paper also observes that distillation at a higher T diffuses representations without LS; it is the combination that it warns against.");
            return new Advice(1f, reasons);
        }
        // Unsmoothed: LsKd's heuristic, the smallest listed T at which the targets carry a quarter of the maximal entropy.
        var pick = a.Entropies.Where(e => e.T >= 1f).OrderBy(e => e.T).FirstOrDefault(e => e.Entropy >= 0.25 * ceiling);
        float t = pick == default ? a.Entropies.Max(e => e.T) : pick.T;
        reasons.Add($"LsKd's heuristic (not the paper's): the smallest listed T at which the teacher's average target entropy reaches a quarter of the ceiling " +
                    $"ln {a.Classes} = {ceiling.ToString("F3", Inv)}. Its targets are nearly one-hot at T = 1 (average entropy {h1.ToString("F3", Inv)}); at T = {F(t)} they reach " +
                    $"{a.Entropies.First(e => e.T == t).Entropy.ToString("F3", Inv)}, so the student sees the teacher's class similarities.");
        reasons.Add("The paper's finding: without LS, a higher T can help the student (its Tables 5 and 9, as in Hinton et al.); the paper gives no rule for which T.");
        return new Advice(t, reasons);
    }
}
