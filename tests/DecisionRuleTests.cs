using LsKd.Experiments.Analysis;
using LsKd.Experiments.Study;

namespace LsKd.Tests;

/// <summary>The one decision rule of both studies: paired by seed, teacher variance required, Holm's correction for
/// "can" claims, the same words and marks in the image and the translation reports, and advice that follows it.</summary>
[TestFixture]
public class DecisionRuleTests
{
    static readonly StudentArch Arch = new("resnet8", 0.5f);
    static readonly StudyConfig Standard = StudyConfig.Preset("standard");

    static RunRecord Run(RunKind kind, float alpha, float teacherAlpha, float? t, int seed, double top1)
    {
        var m = new ClassMetrics(top1, 99, new double[10], 100);
        return new RunRecord
        {
            Id = $"{kind}-{alpha}-{teacherAlpha}-{t}-{seed}", Kind = kind, Model = kind == RunKind.Teacher ? "resnet8" : Arch.Model, Width = kind == RunKind.Teacher ? 1f : Arch.Width,
            Alpha = alpha, TeacherAlpha = teacherAlpha, Temperature = t, Seed = seed, Status = RunStatus.Finished,
            Epochs = [new EpochMetrics(1, 0.1, 1, m, m, 1)], Device = "cpu", Software = [], Settings = new TrainSettings(),
        };
    }

    static RunRecord Student(float teacherAlpha, float t, int seed, double top1) => Run(RunKind.Student, 0f, teacherAlpha, t, seed, top1);

    /// <summary>Every student cell of the standard grid from a function of (alpha, T, seed).</summary>
    static List<RunRecord> Grid(StudyConfig config, Func<float, float, int, double> top1) =>
        (from a in config.Alphas from t in config.Temperatures from s in config.Seeds select Student(a, t, s, top1(a, t, s))).ToList();

    [Test]
    public void TheNormalDistributionMatchesMathNet()
    {
        for (double x = -7; x <= 7; x += 0.25)
            Assert.That(Normal.Cdf(x), Is.EqualTo(MathNet.Numerics.Distributions.Normal.CDF(0, 1, x)).Within(1e-10), $"Phi({x})");
        foreach (double p in new[] { 0.001, 0.025, 0.5, 0.9772, 0.9924, 0.9999 })
            Assert.That(Normal.Quantile(p), Is.EqualTo(MathNet.Numerics.Distributions.Normal.InvCDF(0, 1, p)).Within(1e-8), $"Phi^-1({p})");
    }

    [Test]
    public void SameSeedsArePairedOthersAreWelch()
    {
        var a = new Dictionary<int, double> { [1] = 90.0, [2] = 91.0, [3] = 92.5 };
        var b = new Dictionary<int, double> { [1] = 89.5, [2] = 90.2, [3] = 92.0 };
        var paired = SeedComparison.BySeed("x", a, b, +1);
        double[] diffs = [0.5, 0.8, 0.5];
        double sd = Math.Sqrt(diffs.Sum(d => (d - diffs.Average()) * (d - diffs.Average())) / 2);
        Assert.That(paired.Paired, Is.True);
        Assert.That(paired.StandardError, Is.EqualTo(sd / Math.Sqrt(3)).Within(1e-12));
        Assert.That(paired.Outcome, Is.EqualTo(Outcome.Reproduced), "a small, consistent per-seed gain is significant when paired");
        var welch = SeedComparison.BySeed("x", a, new Dictionary<int, double> { [4] = 89.5, [5] = 90.2, [6] = 92.0 }, +1);
        Assert.That(welch.Paired, Is.False);
        Assert.That(welch.Outcome, Is.EqualTo(Outcome.WithinMargin), "the same numbers from unrelated seeds are not");
    }

    [Test]
    public void OneChanceWinOfThreeDoesNotPassC5AfterHolm()
    {
        // Without LS: T = 2 beats T = 1 by per-seed gains 0.1, 0.5, 0.9 (z = 2.17: beyond 2 SE on its own), T = 3 and
        // T = 64 are level with T = 1. Three tries: the first must clear 2.43 SE.
        double[] base1 = [89.0, 89.4, 88.8];
        double[] gain2 = [0.1, 0.5, 0.9], gain3 = [-0.5, 0.1, 0.4], gain64 = [0.5, -0.5, 0];
        var runs = Grid(Standard, (a, t, s) => a > 0 ? 88 + 0.1 * s : base1[s - 1] + (t == 2 ? gain2 : t == 3 ? gain3 : t == 64 ? gain64 : [0, 0, 0])[s - 1]);
        var c5 = AccuracyClaims.C5(Standard, runs);
        var t2 = c5.Comparisons.Single(c => c.Label.Contains("T = 2 vs"));
        Assert.That((t2 with { Multiplier = SeedComparison.Margin }).Outcome, Is.EqualTo(Outcome.Reproduced), "alone, the T = 2 gain passes 2 SE");
        Assert.That(t2.Multiplier, Is.EqualTo(Normal.Quantile(1 - 2 * (1 - Normal.Cdf(2)) / 6)).Within(1e-9));
        Assert.That(t2.Multiplier, Is.EqualTo(2.428).Within(0.001));
        Assert.That(t2.Outcome, Is.EqualTo(Outcome.WithinMargin));
        Assert.That(c5.Outcome, Is.EqualTo(Outcome.WithinMargin), "one lucky comparison of three does not make the claim");
        Assert.That(t2.ToString(), Does.Contain("2.43 SE (Holm, 3 comparisons)"));
        // A real effect still passes: per-seed gains of 2 points with a small spread.
        var real = Grid(Standard, (a, t, s) => a > 0 ? 88 : base1[s - 1] + (t == 3 ? 2 + 0.1 * s : 0.05 * s));
        Assert.That(AccuracyClaims.C5(Standard, real).Outcome, Is.EqualTo(Outcome.Reproduced));
    }

    [Test]
    public void HolmStopsAtTheFirstFailure()
    {
        // z = 10, 2.15, 2.2: ranked 10, 2.2, 2.15 with margins 2.43, 2.28, 2.00. The second (2.2) fails, so the third
        // keeps its margin and fails too, although 2.15 clears 2 SE. A = [m + 1, m, m - 1] has SE 1 / sqrt 3, so m = z / sqrt 3.
        var cs = new[] { 10.0, 2.15, 2.2 }.Select(z => z / Math.Sqrt(3)).Select(m => new SeedComparison("c", [m + 1, m, m - 1], [], +1, AgainstZero: true)).ToList();
        Assert.That(cs.Select(c => c.Z), Is.EqualTo(new[] { 10.0, 2.15, 2.2 }).Within(1e-9));
        Assert.That(cs.Select(c => c.Outcome), Is.All.EqualTo(Outcome.Reproduced), "each alone clears 2 SE");
        var holm = Verdicts.Holm(cs);
        Assert.That(holm.Select(c => c.Outcome), Is.EqualTo(new[] { Outcome.Reproduced, Outcome.WithinMargin, Outcome.WithinMargin }));
        Assert.That(holm[0].Multiplier, Is.EqualTo(2.428).Within(0.001));
        Assert.That(holm[2].Multiplier, Is.EqualTo(Normal.Quantile(1 - 2 * (1 - Normal.Cdf(2)) / 4)).Within(1e-9));
        Assert.That(holm[1].Multiplier, Is.EqualTo(holm[2].Multiplier), "the failed margin carries over");
    }

    [Test]
    public void ASharedTeacherStudyIsNeverSignificant()
    {
        var shared = Standard with { ShareTeacher = true };
        // Large, consistent effects everywhere: C1, C2 and C5 would all be decided with teachers per seed.
        var runs = Grid(shared, (a, t, s) => (a > 0 ? 92 - Array.IndexOf(shared.Temperatures, t) : 88 + (t == 2 ? 1 : 0)) + 0.05 * s);
        foreach (var claim in new[] { AccuracyClaims.C1(shared, runs), AccuracyClaims.C2(shared, runs), AccuracyClaims.C5(shared, runs) })
        {
            Assert.That(claim.Outcome, Is.EqualTo(Outcome.SharedTeacher), claim.Id);
            Assert.That(Verdicts.Text(claim.Outcome), Does.StartWith("inconclusive"));
            Assert.That(claim.Comparisons.Any(c => c.Statistic == Outcome.Reproduced), claim.Id + ": the students' spread alone would say reproduced");
            Assert.That(claim.Comparisons[0].ToString(), Does.Contain("by the students' spread alone: reproduced"));
        }
        Assert.That(AccuracyClaims.C1(Standard, runs).Outcome, Is.EqualTo(Outcome.Reproduced), "the same numbers with a teacher per seed decide");
        // The table mark follows: ~, not ✓.
        var cell = AccuracyClaims.Compare(shared, "", AccuracyClaims.SeedAccuracies(runs, Arch, 0.1f, 1f), AccuracyClaims.SeedAccuracies(runs, Arch, 0f, 1f), +1);
        Assert.That(Verdicts.Mark(cell), Is.EqualTo(" ~"));
        // The translation claims likewise.
        var tc = TranslationConfig.Preset("standard") with { ShareTeacher = true, Temperatures = [1f, 64f] };
        var records = Translation(tc, (a, t, s) => (a > 0 ? 20 - t / 8 : 15) + 0.05 * s);
        Assert.That(TranslationClaims.Decide(tc, records).Select(c => c.Outcome), Is.All.EqualTo(Outcome.SharedTeacher));
        Assert.That(TranslationClaims.Decide(tc with { ShareTeacher = false }, records)[0].Outcome, Is.EqualTo(Outcome.Reproduced));
    }

    static List<TranslationRecord> Translation(TranslationConfig config, Func<float, float, int, double> bleu) =>
        (from a in config.Alphas from t in config.Temperatures from s in config.Seeds
         select new TranslationRecord($"student-a{a}-T{t}-s{s}", "student", a, t, 0f, s, new TranslationScores(bleu(a, t, s), 40), new TranslationScores(bleu(a, t, s), 40), 1, 1, "x")).ToList();

    [Test]
    public void BothReportsGiveTheSameWordOnTheSameNumbers()
    {
        var image = Standard;
        var text = TranslationConfig.Preset("standard") with { Temperatures = image.Temperatures, Seeds = image.Seeds, Alphas = image.Alphas };
        // Per seed (1, 2, 3): the smoothed teacher's student at T = 1 against the unsmoothed one's, three cases.
        var cases = new (double[] Ls, double[] Plain, Outcome Expected)[]
        {
            ([20.5, 21.0, 20.9], [20.0, 20.4, 20.5], Outcome.Reproduced),     // consistently better
            ([20.0, 21.0, 20.0], [20.5, 20.4, 20.6], Outcome.WithinMargin),  // equal within the margin: no longer "at least as good"
            ([19.0, 19.5, 19.2], [20.0, 20.4, 20.5], Outcome.Contradicted),   // worse
        };
        foreach (var (ls, plain, expected) in cases)
        {
            double Value(float a, float t, int s) => t == 1f ? (a > 0 ? ls : plain)[s - 1] : 10 + s;
            var c1 = AccuracyClaims.C1(image, Grid(image, Value));
            var m1 = TranslationClaims.Decide(text, Translation(text, Value))[0];
            Assert.That(c1.Outcome, Is.EqualTo(expected));
            Assert.That(m1.Outcome, Is.EqualTo(c1.Outcome), "M1 and C1 on the same numbers");
            string Tail(SeedComparison c) => c.ToString()[c.Label.Length..];
            Assert.That(Tail(m1.Comparisons[0]), Is.EqualTo(Tail(c1.Comparisons[0])), "the same statistic, the same words");
            var imageMark = Verdicts.Mark(AccuracyClaims.Compare(image, "", AccuracyClaims.SeedAccuracies(Grid(image, Value), Arch, 0.1f, 1f), AccuracyClaims.SeedAccuracies(Grid(image, Value), Arch, 0f, 1f), +1));
            var textMark = Verdicts.Mark(TranslationClaims.Compare(text, "", ls.Select((v, i) => (i + 1, v)).ToDictionary(x => x.Item1, x => x.v), plain.Select((v, i) => (i + 1, v)).ToDictionary(x => x.Item1, x => x.v), +1));
            Assert.That(textMark, Is.EqualTo(imageMark));
            Assert.That(imageMark, Is.EqualTo(expected switch { Outcome.Reproduced => " ✓", Outcome.Contradicted => " ✗", _ => " ~" }));
        }
    }

    [Test]
    public void C4HoldsTheTemperature64PairOfTable16()
    {
        var runs = Grid(Standard, (a, t, s) => (a > 0 && t == 64 ? 87 : 89) + 0.1 * s);
        var c4 = AccuracyClaims.C4(Standard, runs, []);
        var pair = c4.Comparisons.Single();
        Assert.That(pair.Label, Does.Contain("T = 64"));
        Assert.That(pair.Direction, Is.EqualTo(-1), "the paper: the LS teacher's student is worse at T = 64");
        Assert.That(c4.Outcome, Is.EqualTo(Outcome.Reproduced));
        Assert.That(AccuracyClaims.C4(Standard with { Temperatures = [1f, 3f] }, runs, []).Outcome, Is.EqualTo(Outcome.NotMeasurable), "no T = 64 in the study, no pair");
    }

    static TeacherAssessment Teacher(double alphaFromGap) => new(1000, 10, 99, 0.9, 5, alphaFromGap, alphaFromGap, [(1f, 0.5), (3f, 1.5)]);

    static StudyEvidence Evidence(Func<float, int, double> top1, bool shared = false) => new("s", [0f, 0.1f],
        (from a in new[] { 0f, 0.1f } from t in new[] { 1f, 2f, 3f, 64f } from s in new[] { 1, 2, 3 } select new StudentResult(a, t, s, a > 0 ? top1(t, s) : 88)).ToList(), shared);

    [Test]
    public void AdviceFollowsTheStudysStatistics()
    {
        // The LS teacher's students: T = 3 has the best mean by 0.1 point, within the noise of T = 1 and 2.
        double[] noise = [0.4, -0.5, 0.2];
        var tied = Evidence((t, s) => (t == 3 ? 89.1 : t == 64 ? 85 : 89) + noise[s - 1] * (t == 2 ? -1 : 1) + (t == 1 ? 0.3 * (s - 2) : 0));
        var advice = Advisor.Recommend(Teacher(0.1), tied);
        Assert.That(advice.Temperature, Is.EqualTo(1f), "a smoothed teacher, T = 1 among the tied candidates, not the argmax T = 3");
        Assert.That(string.Join(" ", advice.Reasons), Does.Contain("cannot separate").And.Contain("T = 1, 2, 3"));
        // A clear winner is recommended as it is: T = 2 beats every other T by 2 points, seed by seed.
        var clear = Evidence((t, s) => (t == 2 ? 91 : 89) + 0.1 * s + (t == 2 ? 0.05 * s : 0));
        Assert.That(Advisor.Recommend(Teacher(0.1), clear).Temperature, Is.EqualTo(2f));
        Assert.That(string.Join(" ", Advisor.Recommend(Teacher(0.1), clear).Reasons), Does.Contain("holds by the verdict's rule"));
        // Shared teachers decide nothing: the paper's choice among all of them.
        var sharedAdvice = Advisor.Recommend(Teacher(0.1), Evidence((t, s) => (t == 2 ? 91 : 89) + 0.1 * s, shared: true));
        Assert.That(sharedAdvice.Temperature, Is.EqualTo(1f));
        Assert.That(string.Join(" ", sharedAdvice.Reasons), Does.Contain("share one teacher per alpha"));
    }
}
