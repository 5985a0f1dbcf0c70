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

/// <summary>A finished student of a study: its teacher's alpha, its temperature, its seed and its test top-1 (%).</summary>
public readonly record struct StudentResult(float TeacherAlpha, float Temperature, int Seed, double TestTop1);

/// <summary>What a finished study says about temperatures: its name, its teachers' alphas, its students, and whether
/// its seeds shared one teacher per alpha (then its comparisons decide nothing).</summary>
public sealed record StudyEvidence(string Name, IReadOnlyList<float> TeacherAlphas, IReadOnlyList<StudentResult> Students, bool TeacherShared = false);

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
            var byT = study.Students.Where(r => r.TeacherAlpha == nearest).GroupBy(r => r.Temperature)
                .Select(g => (T: g.Key, Seeds: g.GroupBy(r => r.Seed).ToDictionary(x => x.Key, x => x.First().TestTop1))).OrderBy(x => x.T).ToList();
            if (byT.Count > 0)
            {
                reasons.Add($"In study '{study.Name}', the teacher closest in smoothing was trained with alpha = {F(nearest)}; its students' mean test top-1 by T: " +
                            string.Join(", ", byT.Select(x => $"T = {F(x.T)}: {x.Seeds.Values.Average().ToString("F2", Inv)}% ({x.Seeds.Count} seed(s))")) + ".");
                var best = byT.OrderByDescending(x => x.Seeds.Values.Average()).First();
                // The verdict's rule (paired by seed, 2 SE, Holm over the comparisons with the other candidates): the best
                // mean is recommended only if it beats every other T; else the candidates it does not beat are tied.
                var against = byT.Where(x => x.T != best.T).Select(x => (x.T, C: SeedComparison.BySeed($"T = {F(best.T)} vs T = {F(x.T)}", best.Seeds, x.Seeds, +1, study.TeacherShared))).ToList();
                var corrected = Verdicts.Holm(against.Select(x => x.C).ToList());
                var tied = against.Where((x, i) => corrected[i].Outcome != Outcome.Reproduced).Select(x => x.T).Append(best.T).Order().ToList();
                if (tied.Count == 1)
                {
                    reasons.Add($"T = {F(best.T)} gave the best students there, and its lead over every other T holds by the verdict's rule: " +
                                string.Join("; ", corrected) + ".");
                    return new Advice(best.T, reasons);
                }
                string why = study.TeacherShared ? "its seeds share one teacher per alpha, so no difference between its students holds teacher variance"
                    : byT.Any(x => x.Seeds.Count < SeedComparison.MinSeeds) ? $"it has fewer than {SeedComparison.MinSeeds} seeds at some T"
                    : "the differences lie within the margin";
                reasons.Add($"The study cannot separate T = {string.Join(", ", tied.Select(F))} ({why}): " + string.Join("; ", corrected) + ".");
                // Among the tied, the paper's finding decides: a smoothed teacher distils best at T = 1 (the lowest tied T);
                // without LS the study's best mean.
                float chosen = a.IsSmoothed ? tied[0] : best.T;
                reasons.Add(a.IsSmoothed
                    ? $"Among them the paper's finding decides: with an LS-trained teacher, distil at the lowest temperature, here T = {F(chosen)} (a higher T diffuses the student's representations; see below)."
                    : $"Among them, T = {F(chosen)} had the best mean; the study does not show it is better than the others.");
                if (a.IsSmoothed)
                    reasons.Add("The paper's finding (Chandrasegaran et al.): with an LS-trained teacher, KD at higher temperatures diffuses the student's penultimate " +
                                "representations systematically, which undoes the tight clusters LS gave the teacher, and such students lose accuracy.");
                return new Advice(chosen, reasons);
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
