using System.Globalization;
using System.Text;

namespace LsKd.Experiments.Analysis;

/// <summary>How one comparison or one claim came out.</summary>
public enum Outcome
{
    /// <summary>The difference lies beyond twice its standard error in the paper's direction.</summary>
    Reproduced,
    /// <summary>The difference lies beyond twice its standard error against the paper's direction.</summary>
    Contradicted,
    /// <summary>Within twice the standard error: equal within the margin.</summary>
    WithinMargin,
    /// <summary>Fewer than three seeds on a side: not decided, the numbers are shown.</summary>
    NotEnoughSeeds,
    /// <summary>The runs the comparison needs are missing.</summary>
    NotMeasurable,
}

/// <summary>
/// One comparison over seeds (GUIDE section 3): the mean difference d = mean(A) - mean(B) against twice its Welch
/// standard error SE = sqrt(s_A^2 / n_A + s_B^2 / n_B), in the direction the paper states (+1: A above B,
/// -1: A below B). With B empty, A is compared with zero (SE = s_A / sqrt(n_A)). Fewer than three values on a side
/// decide nothing.
/// </summary>
public sealed record SeedComparison(string Label, IReadOnlyList<double> A, IReadOnlyList<double> B, int Direction, bool AgainstZero = false)
{
    public const int MinSeeds = 3;
    static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public double MeanA => A.Count > 0 ? A.Average() : double.NaN;
    public double MeanB => AgainstZero ? 0 : B.Count > 0 ? B.Average() : double.NaN;
    public double Difference => MeanA - MeanB;

    public double StandardError => Math.Sqrt(Variance(A) / A.Count + (AgainstZero ? 0 : Variance(B) / B.Count));

    static double Variance(IReadOnlyList<double> v)
    {
        if (v.Count < 2) return double.NaN;
        double m = v.Average();
        return v.Sum(x => (x - m) * (x - m)) / (v.Count - 1);
    }

    public Outcome Outcome
    {
        get
        {
            if (A.Count == 0 || (!AgainstZero && B.Count == 0) || A.Concat(B).Any(x => !double.IsFinite(x))) return Outcome.NotMeasurable;
            if (A.Count < MinSeeds || (!AgainstZero && B.Count < MinSeeds)) return Outcome.NotEnoughSeeds;
            double d = Direction * Difference, margin = 2 * StandardError;
            return d > margin ? Outcome.Reproduced : d < -margin ? Outcome.Contradicted : Outcome.WithinMargin;
        }
    }

    public override string ToString()
    {
        string n = AgainstZero ? $"n = {A.Count}" : $"n = {A.Count}, {B.Count}";
        string values = AgainstZero ? $"mean {F(MeanA)}" : $"{F(MeanA)} vs {F(MeanB)}";
        string se = double.IsFinite(StandardError) ? $", 2 SE {F(2 * StandardError)}" : "";
        return $"{Label}: {values}, d = {(Difference >= 0 ? "+" : "")}{F(Difference)}{se} ({n}) — {Verdicts.Text(Outcome)}";
    }

    static string F(double v) => double.IsFinite(v) ? v.ToString("F2", Inv) : "n/a";
}

/// <summary>A claim of the paper and the comparisons that decide it.</summary>
public sealed record ClaimResult(string Id, string Statement, Outcome Outcome, IReadOnlyList<SeedComparison> Comparisons, IReadOnlyList<string> Notes);

/// <summary>How comparisons combine into a claim's outcome.</summary>
public static class Verdicts
{
    /// <summary>Every comparison must hold: reproduced only if all are, contradicted if any is, not enough seeds
    /// if any lacks them, else within the margin.</summary>
    public static Outcome All(IReadOnlyList<SeedComparison> cs)
    {
        var measurable = cs.Where(c => c.Outcome != Outcome.NotMeasurable).ToList();
        if (measurable.Count == 0) return Outcome.NotMeasurable;
        if (measurable.Any(c => c.Outcome == Outcome.NotEnoughSeeds)) return Outcome.NotEnoughSeeds;
        if (measurable.Any(c => c.Outcome == Outcome.Contradicted)) return Outcome.Contradicted;
        return measurable.All(c => c.Outcome == Outcome.Reproduced) ? Outcome.Reproduced : Outcome.WithinMargin;
    }

    /// <summary>A "can" claim: reproduced if any comparison is, contradicted only if all are.</summary>
    public static Outcome Any(IReadOnlyList<SeedComparison> cs)
    {
        var measurable = cs.Where(c => c.Outcome != Outcome.NotMeasurable).ToList();
        if (measurable.Count == 0) return Outcome.NotMeasurable;
        if (measurable.Any(c => c.Outcome == Outcome.NotEnoughSeeds)) return Outcome.NotEnoughSeeds;
        if (measurable.Any(c => c.Outcome == Outcome.Reproduced)) return Outcome.Reproduced;
        return measurable.All(c => c.Outcome == Outcome.Contradicted) ? Outcome.Contradicted : Outcome.WithinMargin;
    }

    public static string Text(Outcome o) => o switch
    {
        Outcome.Reproduced => "reproduced",
        Outcome.Contradicted => "not reproduced (significantly the other way)",
        Outcome.WithinMargin => "inconclusive (equal within 2 SE)",
        Outcome.NotEnoughSeeds => $"not enough seeds (fewer than {SeedComparison.MinSeeds} per group)",
        _ => "not measurable (the runs it needs are missing)",
    };

    public static string Markdown(IEnumerable<ClaimResult> claims, string scale)
    {
        var sb = new StringBuilder();
        sb.AppendLine("## Verdict");
        sb.AppendLine();
        sb.AppendLine(scale);
        sb.AppendLine();
        sb.AppendLine("Each claim is decided from seed statistics: the mean difference d of two groups of runs (over seeds) against twice its " +
                      "Welch standard error, in the direction the paper states. With fewer than three seeds a claim is not decided; its numbers are shown.");
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
