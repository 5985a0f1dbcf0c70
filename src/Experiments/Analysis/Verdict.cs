using System.Globalization;
using System.Text;

namespace LsKd.Experiments.Analysis;

/// <summary>How one comparison or one claim came out. Every report words them the same way (<see cref="Verdicts.Text"/>):
/// reproduced, inconclusive, or not reproduced (significantly the other way).</summary>
public enum Outcome
{
    /// <summary>The difference lies beyond its margin (2 SE, wider after Holm's correction) in the paper's direction.</summary>
    Reproduced,
    /// <summary>The difference lies beyond its margin against the paper's direction.</summary>
    Contradicted,
    /// <summary>Within the margin: inconclusive.</summary>
    WithinMargin,
    /// <summary>The seeds share one teacher per alpha, so the spread holds the students' variance only: whatever d
    /// is, the comparison is between two checkpoints, not between two ways of training a teacher. Inconclusive.</summary>
    SharedTeacher,
    /// <summary>Fewer than three seeds on a side: not decided, the numbers are shown.</summary>
    NotEnoughSeeds,
    /// <summary>The runs the comparison needs are missing.</summary>
    NotMeasurable,
}

/// <summary>
/// One comparison over seeds (GUIDE section 3), the single decision rule of the image and the translation studies.
/// d = mean(A) - mean(B) is held against <see cref="Multiplier"/> (2 unless Holm's correction widened it) times its
/// standard error, in the direction the paper states (+1: A above B, -1: A below B). The standard error is paired
/// (SE = s_diff / sqrt(n), the per-seed differences A_i - B_i) when both sides hold the same seeds, since runs of one
/// seed share their teacher's seed (or their teacher) and their own initialisation; else Welch's
/// SE = sqrt(s_A^2 / n_A + s_B^2 / n_B). With B empty and <see cref="AgainstZero"/>, A is compared with zero.
/// Fewer than three values on a side decide nothing; a comparison of students whose seeds share one teacher
/// (<see cref="TeacherShared"/>) decides nothing stronger than inconclusive.
/// </summary>
public sealed record SeedComparison(string Label, IReadOnlyList<double> A, IReadOnlyList<double> B, int Direction, bool AgainstZero = false)
{
    public const int MinSeeds = 3;
    /// <summary>The margin of a single comparison, in standard errors.</summary>
    public const double Margin = 2.0;
    static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>A[i] and B[i] come from the same seed: the standard error is that of the per-seed differences.</summary>
    public bool Paired { get; init; }
    /// <summary>The students of every seed read one teacher per alpha: teacher variance is not in the spread.</summary>
    public bool TeacherShared { get; init; }
    /// <summary>The margin in standard errors (2, or Holm's for this comparison's rank in its family).</summary>
    public double Multiplier { get; init; } = Margin;
    /// <summary>Set by <see cref="Verdicts.Holm"/>: the size of the family this comparison was corrected in.</summary>
    public int Family { get; init; } = 1;

    /// <summary>The comparison of two groups keyed by seed: paired when both hold the same seeds, else Welch.</summary>
    public static SeedComparison BySeed(string label, IReadOnlyDictionary<int, double> a, IReadOnlyDictionary<int, double> b, int direction, bool teacherShared = false)
    {
        bool paired = a.Count > 0 && a.Count == b.Count && a.Keys.All(b.ContainsKey);
        return new SeedComparison(label, a.OrderBy(kv => kv.Key).Select(kv => kv.Value).ToList(), b.OrderBy(kv => kv.Key).Select(kv => kv.Value).ToList(), direction)
            { Paired = paired, TeacherShared = teacherShared };
    }

    public double MeanA => A.Count > 0 ? A.Average() : double.NaN;
    public double MeanB => AgainstZero ? 0 : B.Count > 0 ? B.Average() : double.NaN;
    public double Difference => MeanA - MeanB;

    public double StandardError => Paired
        ? Math.Sqrt(Variance(A.Zip(B, (x, y) => x - y).ToList()) / A.Count)
        : Math.Sqrt(Variance(A) / A.Count + (AgainstZero ? 0 : Variance(B) / B.Count));

    /// <summary>d / SE in the paper's direction (positive: the paper's way).</summary>
    public double Z => Direction * Difference / StandardError;

    static double Variance(IReadOnlyList<double> v)
    {
        if (v.Count < 2) return double.NaN;
        double m = v.Average();
        return v.Sum(x => (x - m) * (x - m)) / (v.Count - 1);
    }

    /// <summary>Where d lies against its margin, before the shared-teacher cap: Reproduced, Contradicted or WithinMargin
    /// (or NotEnoughSeeds / NotMeasurable).</summary>
    public Outcome Statistic
    {
        get
        {
            if (A.Count == 0 || (!AgainstZero && B.Count == 0) || A.Concat(B).Any(x => !double.IsFinite(x))) return Outcome.NotMeasurable;
            if (A.Count < MinSeeds || (!AgainstZero && B.Count < MinSeeds)) return Outcome.NotEnoughSeeds;
            double d = Direction * Difference, margin = Multiplier * StandardError;
            return d > margin ? Outcome.Reproduced : d < -margin ? Outcome.Contradicted : Outcome.WithinMargin;
        }
    }

    public Outcome Outcome => TeacherShared && Statistic is Outcome.Reproduced or Outcome.Contradicted or Outcome.WithinMargin ? Outcome.SharedTeacher : Statistic;

    public override string ToString()
    {
        string n = AgainstZero ? $"n = {A.Count}" : Paired ? $"n = {A.Count} paired by seed" : $"n = {A.Count}, {B.Count}";
        string values = AgainstZero ? $"mean {F(MeanA)}" : $"{F(MeanA)} vs {F(MeanB)}";
        string k = Multiplier == Margin ? "2 SE" : $"{Multiplier.ToString("F2", Inv)} SE (Holm, {Family} comparisons)";
        string se = double.IsFinite(StandardError) ? $", {k} {F(Multiplier * StandardError)}" : "";
        string word = Outcome == Outcome.SharedTeacher ? $"{Verdicts.Text(Outcome)}; by the students' spread alone: {Verdicts.Text(Statistic)}" : Verdicts.Text(Outcome);
        return $"{Label}: {values}, d = {(Difference >= 0 ? "+" : "")}{F(Difference)}{se} ({n}) — {word}";
    }

    static string F(double v) => double.IsFinite(v) ? v.ToString("F2", Inv) : "n/a";
}

/// <summary>A claim of the paper and the comparisons that decide it.</summary>
public sealed record ClaimResult(string Id, string Statement, Outcome Outcome, IReadOnlyList<SeedComparison> Comparisons, IReadOnlyList<string> Notes);

/// <summary>How comparisons combine into a claim's outcome, the same for every claim of both studies.</summary>
public static class Verdicts
{
    /// <summary>Every comparison must hold (an intersection of tests: no correction needed): reproduced only if all are,
    /// contradicted if any is, not enough seeds if any lacks them, inconclusive otherwise.</summary>
    public static Outcome All(IReadOnlyList<SeedComparison> cs)
    {
        var measurable = cs.Where(c => c.Outcome != Outcome.NotMeasurable).ToList();
        if (measurable.Count == 0) return Outcome.NotMeasurable;
        if (measurable.Any(c => c.Outcome == Outcome.NotEnoughSeeds)) return Outcome.NotEnoughSeeds;
        if (measurable.Any(c => c.Outcome == Outcome.Contradicted)) return Outcome.Contradicted;
        if (measurable.All(c => c.Outcome == Outcome.Reproduced)) return Outcome.Reproduced;
        return measurable.Any(c => c.Outcome == Outcome.SharedTeacher) ? Outcome.SharedTeacher : Outcome.WithinMargin;
    }

    /// <summary>A "can" claim, which passes on any one of several comparisons: the comparisons are first corrected
    /// for the number of tries (<see cref="Holm"/>), then the claim is reproduced if any is, contradicted only if all are.</summary>
    public static Outcome Any(IReadOnlyList<SeedComparison> cs)
    {
        var measurable = Holm(cs).Where(c => c.Outcome != Outcome.NotMeasurable).ToList();
        if (measurable.Count == 0) return Outcome.NotMeasurable;
        if (measurable.Any(c => c.Outcome == Outcome.NotEnoughSeeds)) return Outcome.NotEnoughSeeds;
        if (measurable.Any(c => c.Outcome == Outcome.Reproduced)) return Outcome.Reproduced;
        if (measurable.All(c => c.Outcome == Outcome.Contradicted)) return Outcome.Contradicted;
        return measurable.Any(c => c.Outcome == Outcome.SharedTeacher) ? Outcome.SharedTeacher : Outcome.WithinMargin;
    }

    /// <summary>
    /// Holm's step-down correction of a family of m comparisons, on the 2-SE rule's own scale: 2 SE is the two-sided
    /// normal test at level a = 2 (1 - Phi(2)) = 0.0455, so the comparison of rank i (0 = largest |d| / SE) gets the
    /// margin Phi^-1(1 - a / (2 (m - i))) SE, 2.43 for the first of three; once one fails, every later one keeps the
    /// failed margin and fails too. Comparisons that cannot be decided (missing runs, too few seeds) are not counted.
    /// </summary>
    public static List<SeedComparison> Holm(IReadOnlyList<SeedComparison> cs)
    {
        var result = cs.ToList();
        var ranked = Enumerable.Range(0, cs.Count).Where(i => cs[i].Statistic is Outcome.Reproduced or Outcome.Contradicted or Outcome.WithinMargin)
            .OrderByDescending(i => Math.Abs(cs[i].Z)).ToList();
        int m = ranked.Count;
        double level = 2 * (1 - Normal.Cdf(SeedComparison.Margin)), k = 0;
        bool failed = false;
        for (int r = 0; r < m; r++)
        {
            int i = ranked[r];
            if (!failed) k = Normal.Quantile(1 - level / (2.0 * (m - r)));
            result[i] = cs[i] with { Multiplier = k, Family = m };
            failed |= !(Math.Abs(cs[i].Z) > k);   // a NaN z (no spread, no difference) fails too
        }
        return result;
    }

    public static string Text(Outcome o) => o switch
    {
        Outcome.Reproduced => "reproduced",
        Outcome.Contradicted => "not reproduced (significantly the other way)",
        Outcome.WithinMargin => "inconclusive (within the margin)",
        Outcome.SharedTeacher => "inconclusive (one teacher per alpha shared by the seeds: the spread excludes teacher variance)",
        Outcome.NotEnoughSeeds => $"not enough seeds (fewer than {SeedComparison.MinSeeds} per group)",
        _ => "not measurable (the runs it needs are missing)",
    };

    /// <summary>The mark of a table cell (a smoothed teacher's students against the unsmoothed teacher's at one T), by
    /// the same rule: ✓ significantly better, ✗ significantly worse, ~ inconclusive, nothing where it cannot be decided.</summary>
    public static string Mark(SeedComparison c) => c.Outcome switch
    {
        Outcome.Reproduced => " ✓",
        Outcome.Contradicted => " ✗",
        Outcome.WithinMargin or Outcome.SharedTeacher => " ~",
        _ => "",
    };

    /// <summary>The legend of <see cref="Mark"/> for a report.</summary>
    public const string MarkLegend = "✓: the smoothed teacher's students beat the unsmoothed teacher's at this T beyond 2 SE (compatible); ✗: they are worse beyond 2 SE; " +
                                     "~: inconclusive (within 2 SE, or the seeds share one teacher per alpha); no mark: fewer than three seeds, nothing decided.";

    public static string Markdown(IEnumerable<ClaimResult> claims, string scale)
    {
        var sb = new StringBuilder();
        sb.AppendLine("## Verdict");
        sb.AppendLine();
        sb.AppendLine(scale);
        sb.AppendLine();
        sb.AppendLine("Each claim is decided from seed statistics: the mean difference d of two groups of runs (over seeds) against twice its " +
                      "standard error, in the direction the paper states; groups of the same seeds are compared seed by seed (paired), others with " +
                      "Welch's standard error. A claim that passes on any one of several comparisons must clear Holm's wider margins. Students whose " +
                      "seeds share one teacher per alpha decide nothing stronger than inconclusive. With fewer than three seeds a claim is not decided; " +
                      "its numbers are shown.");
        sb.AppendLine();
        var list = claims.ToList();
        if (list.Count > 0 && list.All(c => c.Outcome is Outcome.NotEnoughSeeds or Outcome.NotMeasurable))
        {
            sb.AppendLine("**What this study can decide: nothing yet.** Each difference comes from runs of too few seeds to have a spread to " +
                          "test against, and the effects the paper reports are small (C1 on ImageNet: +0.07 points), so the tables show which " +
                          "way each comparison went here, not whether it would go that way again. Run three or more seeds (`--preset standard`, " +
                          "or `seeds` in a configuration) for a verdict.");
            sb.AppendLine();
        }
        foreach (var c in list)
        {
            sb.AppendLine($"- {c.Id}. {c.Statement} — **{Text(c.Outcome)}**.");
            foreach (var cmp in c.Comparisons) sb.AppendLine($"  - {cmp}");
            foreach (var n in c.Notes) sb.AppendLine($"  - {n}");
        }
        return sb.ToString();
    }
}

/// <summary>The standard normal distribution, for Holm's margins (no statistics package in the product; the tests check
/// it against MathNet).</summary>
public static class Normal
{
    /// <summary>Phi(x) = (1 + erf(x / sqrt 2)) / 2, erf by its Maclaurin series for |x| &lt;= 5 (absolute error about
    /// 1e-13: the terms peak near e^12.5); beyond, the tail's asymptotic series phi(x) / x (1 - 1/x^2 + 3/x^4 - 15/x^6)
    /// (absolute error below 1e-10).</summary>
    public static double Cdf(double x)
    {
        if (Math.Abs(x) > 5)
        {
            double a = Math.Abs(x), x2 = a * a;
            double tail = Math.Exp(-x2 / 2) / (a * Math.Sqrt(2 * Math.PI)) * (1 - 1 / x2 + 3 / (x2 * x2) - 15 / (x2 * x2 * x2));
            return x > 0 ? 1 - tail : tail;
        }
        double z = x / Math.Sqrt(2), term = z, sum = z;   // term_n = (-1)^n z^(2n+1) / n!
        for (int n = 1; n < 200 && Math.Abs(term) > 1e-17 * Math.Abs(sum); n++)
        {
            term *= -z * z / n;
            sum += term / (2 * n + 1);
        }
        return Math.Clamp(0.5 + sum / Math.Sqrt(Math.PI), 0, 1);
    }

    /// <summary>Phi^-1(p) by bisection on <see cref="Cdf"/> to 1e-12 (called a handful of times per report).</summary>
    public static double Quantile(double p)
    {
        if (!(p > 0 && p < 1)) throw new ArgumentOutOfRangeException(nameof(p), p, "must lie strictly between 0 and 1");
        double lo = -8, hi = 8;
        while (hi - lo > 1e-12) { double mid = 0.5 * (lo + hi); if (Cdf(mid) < p) lo = mid; else hi = mid; }
        return 0.5 * (lo + hi);
    }
}
