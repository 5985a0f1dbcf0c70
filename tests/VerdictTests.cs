using LsKd.Experiments.Analysis;
using LsKd.Experiments.Data;

namespace LsKd.Tests;

/// <summary>The verdict's rules on synthetic numbers (every outcome reachable, directions checked), and the
/// analysis definitions on cases that a wrong implementation fails.</summary>
[TestFixture]
public class VerdictTests
{
    static SeedComparison C(double[] a, double[] b, int direction) => new("case", a, b, direction);

    [Test]
    public void WelchStandardErrorAndEveryOutcome()
    {
        var c = C([1, 2, 3], [2, 4, 6], +1);
        Assert.That(c.Difference, Is.EqualTo(-2).Within(1e-12));
        Assert.That(c.StandardError, Is.EqualTo(Math.Sqrt(1.0 / 3 + 4.0 / 3)).Within(1e-12), "s1^2 = 1, s2^2 = 4, n = 3 each");

        Assert.That(C([80, 81, 82], [70, 71, 72], +1).Outcome, Is.EqualTo(Outcome.Reproduced));
        Assert.That(C([80, 81, 82], [70, 71, 72], -1).Outcome, Is.EqualTo(Outcome.Contradicted), "the paper's direction decides");
        Assert.That(C([80, 82, 78], [79, 81, 80], +1).Outcome, Is.EqualTo(Outcome.WithinMargin));
        Assert.That(C([80, 81], [70, 71, 72], +1).Outcome, Is.EqualTo(Outcome.NotEnoughSeeds), "two seeds decide nothing, however large d");
        Assert.That(C([], [70, 71, 72], +1).Outcome, Is.EqualTo(Outcome.NotMeasurable));
        Assert.That(C([80, double.NaN, 81], [70, 71, 72], +1).Outcome, Is.EqualTo(Outcome.NotMeasurable));
        // d just above and just below 2 SE.
        var edge = C([1, 2, 3], [0, 0, 0], +1);   // d = 2, SE = 1/sqrt(3)
        Assert.That(edge.Outcome, Is.EqualTo(Outcome.Reproduced));
        Assert.That(C([0.1, 1.1, 2.1], [0, 0, 0], +1).Outcome, Is.EqualTo(Outcome.WithinMargin), "d = 1.1 < 2 SE = 1.155");
        // One-sample comparisons against zero (eta).
        Assert.That(new SeedComparison("eta S1", [-3, -4, -3.5], [], -1, AgainstZero: true).Outcome, Is.EqualTo(Outcome.Reproduced));
        Assert.That(new SeedComparison("eta S1", [-3, -4, -3.5], [], +1, AgainstZero: true).Outcome, Is.EqualTo(Outcome.Contradicted));
        Assert.That(new SeedComparison("eta S1", [-3, 4, -0.5], [], -1, AgainstZero: true).Outcome, Is.EqualTo(Outcome.WithinMargin));
    }

    [Test]
    public void ClaimsCombineTheirComparisons()
    {
        SeedComparison R = C([2, 2.1, 2.2], [0, 0.1, 0.2], +1), X = C([0, 0.1, 0.2], [2, 2.1, 2.2], +1), W = C([1, 2, 3], [2, 1, 3], +1),
                       S = C([1, 2], [0, 1], +1), M = C([], [], +1);
        Assert.That(Verdicts.All([R, R]), Is.EqualTo(Outcome.Reproduced));
        Assert.That(Verdicts.All([R, W]), Is.EqualTo(Outcome.WithinMargin));
        Assert.That(Verdicts.All([R, X]), Is.EqualTo(Outcome.Contradicted));
        Assert.That(Verdicts.All([R, S]), Is.EqualTo(Outcome.NotEnoughSeeds));
        Assert.That(Verdicts.All([M, R]), Is.EqualTo(Outcome.Reproduced), "missing cells are skipped");
        Assert.That(Verdicts.All([M]), Is.EqualTo(Outcome.NotMeasurable));
        Assert.That(Verdicts.Any([X, R]), Is.EqualTo(Outcome.Reproduced), "a 'can' claim needs one case");
        Assert.That(Verdicts.Any([X, X]), Is.EqualTo(Outcome.Contradicted));
        Assert.That(Verdicts.Any([X, W]), Is.EqualTo(Outcome.WithinMargin));
        string md = Verdicts.Markdown([new ClaimResult("C1", "claim", Outcome.NotEnoughSeeds, [S], ["note"])], "Scale: tiny.");
        Assert.That(md, Does.Contain("Scale: tiny.").And.Contain("**not enough seeds").And.Contain("case: 1.50 vs 0.50, d = +1.00").And.Contain("note"));
        Assert.That(md, Does.Contain("What this study can decide: nothing yet."), "a study that decides no claim says so plainly");
        string decided = Verdicts.Markdown([new ClaimResult("C1", "claim", Outcome.NotEnoughSeeds, [S], []), new ClaimResult("C2", "claim", Outcome.Reproduced, [R], [])], "Scale: tiny.");
        Assert.That(decided, Does.Not.Contain("nothing yet"));
    }

    [Test]
    public void EtaNormalisesByEachTemperaturesOwnRadiusOverASubsetOfClasses()
    {
        // Target 0 of 5 classes; S1 = {1}, S2 = {2, 3}; class 4 is in neither (the middle band) and must not count in R.
        var d1 = new double[25]; var d2 = new double[25];
        d1[1] = 2; d1[2] = 4; d1[3] = 4; d1[4] = 100;   // R(T1) = 10
        d2[1] = 3; d2[2] = 8; d2[3] = 9; d2[4] = 1;     // R(T2) = 20: everything moved apart, S1 relatively closer
        var sets = new ClassSets(0, [1], [2, 3]);
        double s1 = 100.0 * ((3.0 / 20 - 2.0 / 10) / (2.0 / 10));
        double s2 = 100.0 / 2 * ((8.0 / 20 - 4.0 / 10) / (4.0 / 10) + (9.0 / 20 - 4.0 / 10) / (4.0 / 10));
        Assert.That(Diffusion.Eta(d1, d2, 5, sets, true), Is.EqualTo(s1).Within(1e-12));
        Assert.That(Diffusion.Eta(d1, d2, 5, sets, false), Is.EqualTo(s2).Within(1e-12));
    }

    [Test]
    public void FlatteningTheCentroidDistancesGivesPositiveEtaOnS1()
    {
        // At T2 every other class sits at the same distance: the similar classes moved away relatively (eta S1 > 0),
        // the dissimilar ones came closer (eta S2 < 0).
        int k = 10, target = 6;
        var sets = ClassSets.FromHierarchy(DatasetInfo.Load("fashion-mnist"), target);
        var d1 = new double[k * k]; var d2 = new double[k * k];
        foreach (int c in sets.S1) d1[target * k + c] = 1;
        foreach (int c in sets.S2) d1[target * k + c] = 5;
        for (int c = 0; c < k; c++) if (c != target) d2[target * k + c] = 3;
        Assert.That(Diffusion.Eta(d1, d2, k, sets, true), Is.GreaterThan(0));
        Assert.That(Diffusion.Eta(d1, d2, k, sets, false), Is.LessThan(0));
    }

    [Test]
    public void ProjectedPairwiseDistancesLiveInTheTemplateSpan()
    {
        // With D + 1 = K the K templates span the whole augmented space: projecting changes no distance. With a
        // wider D the projection can only shrink them.
        var be = Backends.Get("cpu-v512-2t");
        var rng = new Random(3);
        foreach (int dim in new[] { 4, 12 })
        {
            int k = 5, n = 60;
            var w = Enumerable.Range(0, k * dim).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
            var b = Enumerable.Range(0, k).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
            var f = Enumerable.Range(0, n * dim).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
            var y = Enumerable.Range(0, n).Select(i => i % k).ToArray();
            var proj = new Projection(be, w, b, dim, Enumerable.Range(0, k).ToArray());
            var d = ClassDistances.Compute(be, f, y, dim, k, 8, proj);
            for (int c = 0; c < k * k; c++)
                if (dim + 1 == k) Assert.That(d.Pairwise[c], Is.EqualTo(d.PairwiseUnprojected[c]).Within(1e-4), $"cell {c}");
                else Assert.That(d.Pairwise[c], Is.LessThanOrEqualTo(d.PairwiseUnprojected[c] + 1e-5), $"cell {c}");
            if (dim + 1 != k) Assert.That(d.Pairwise.Sum(), Is.LessThan(d.PairwiseUnprojected.Sum() * 0.99), "a real projection");
        }
    }

    [Test]
    public void FeatureDistanceSetsLeaveAMiddleBand()
    {
        int k = 10, target = 0;
        var d = new double[k * k];
        for (int c = 1; c < k; c++) d[target * k + c] = c;   // class c at distance c
        var sets = ClassSets.FromDistances(d, k, target, 3);
        Assert.That(sets.S1, Is.EqualTo(new[] { 1, 2, 3 }));
        Assert.That(sets.S2, Is.EqualTo(new[] { 5, 6, 7, 8, 9 }), "the farthest classes; class 4 is the middle band");
    }

    [Test]
    public void ProjectionCoordinatesAreTheTripleLogitsInTheQrBasis()
    {
        // Algorithm 1: y = Q^T [f; 1] with Q from the three classes' [w_k; b_k]. Then the triple's logits are
        // (Q^T A)^T y exactly, and A's columns lie in span(Q). Distinct biases make a basis built with another
        // class's bias (the official code's bug) fail both checks.
        var be = Backends.Get("cpu-v512-2t");
        int dim = 6, classes = 5;
        var rng = new Random(5);
        var w = Enumerable.Range(0, classes * dim).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var b = new float[] { 3f, -2f, 0.5f, 7f, -4f };
        int[] triple = [3, 0, 4];
        var proj = new Projection(be, w, b, dim, triple);
        var q = proj.Basis.Select(v => (double)v).ToArray();   // (dim + 1) x 3
        var a = new double[(dim + 1) * 3];
        for (int j = 0; j < 3; j++) { for (int i = 0; i < dim; i++) a[i * 3 + j] = w[triple[j] * dim + i]; a[dim * 3 + j] = b[triple[j]]; }
        var r = new double[9];   // Q^T A
        for (int x = 0; x < 3; x++) for (int y = 0; y < 3; y++) for (int i = 0; i <= dim; i++) r[x * 3 + y] += q[i * 3 + x] * a[i * 3 + y];
        for (int i = 0; i <= dim; i++)
            for (int j = 0; j < 3; j++)
            {
                double back = 0; for (int x = 0; x < 3; x++) back += q[i * 3 + x] * r[x * 3 + j];
                Assert.That(back, Is.EqualTo(a[i * 3 + j]).Within(1e-4), "A lies in span(Q)");
            }
        var features = Enumerable.Range(0, 4 * dim).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
        var coords = proj.Project(features, [0, 1, 2, 3]);
        for (int s = 0; s < 4; s++)
            for (int j = 0; j < 3; j++)
            {
                double logit = b[triple[j]]; for (int i = 0; i < dim; i++) logit += (double)w[triple[j] * dim + i] * features[s * dim + i];
                double fromCoords = 0; for (int x = 0; x < 3; x++) fromCoords += r[x * 3 + j] * coords[s * 3 + x];
                Assert.That(fromCoords, Is.EqualTo(logit).Within(1e-3 + 1e-4 * Math.Abs(logit)), $"sample {s}, class {triple[j]}");
            }
    }

    [Test]
    public void AnalysisEntropyAgreesWithTheBackendsEntropyKernel()
    {
        // The kernel has PyTorch goldens (GoldenLossTests); the analysis computes in float64 on the host.
        var be = Backends.Get("cpu-v512-2t");
        int rows = 257, k = 10;
        var rng = new Random(9);
        var logits = Enumerable.Range(0, rows * k).Select(_ => (float)(rng.NextDouble() * 16 - 8)).ToArray();
        using var z = be.Allocate(rows * k); z.Upload(logits);
        using var h = be.Allocate(rows);
        foreach (float t in new[] { 0.5f, 1f, 3f, 64f })
        {
            be.Entropy(z, h, rows, k, t);
            double kernel = h.ToArray().Average(v => (double)v);
            Assert.That(Smoothness.AverageEntropy(logits, k, t), Is.EqualTo(kernel).Within(1e-5 + 1e-5 * kernel), $"T = {t}");
        }
    }
}

/// <summary>The accuracy claims on synthetic run records: each claim's direction is the paper's.</summary>
[TestFixture]
public class AccuracyClaimTests
{
    static readonly LsKd.Experiments.Study.StudentArch Arch = new("resnet8", 0.5f);
    static readonly LsKd.Experiments.Study.StudyConfig Config = LsKd.Experiments.Study.StudyConfig.Preset("standard");

    static LsKd.Experiments.Study.RunRecord Student(float teacherAlpha, float t, int seed, double top1, LsKd.Experiments.Study.RunKind kind = LsKd.Experiments.Study.RunKind.Student)
    {
        var m = new LsKd.Experiments.Study.ClassMetrics(top1, 99, new double[10], 100);
        return new LsKd.Experiments.Study.RunRecord
        {
            Id = $"{kind}-{teacherAlpha}-{t}-{seed}", Kind = kind, Model = Arch.Model, Width = Arch.Width, TeacherAlpha = teacherAlpha, Temperature = t,
            Seed = seed, Status = LsKd.Experiments.Study.RunStatus.Finished, Epochs = [new LsKd.Experiments.Study.EpochMetrics(1, 0.1, 1, m, m, 1)],
            Device = "cpu", Software = [], Settings = new LsKd.Experiments.Study.TrainSettings(),
        };
    }

    /// <summary>Accuracy per (alpha, T) as a function, three seeds with a small spread.</summary>
    static List<LsKd.Experiments.Study.RunRecord> Sweep(Func<float, float, double> accuracy) =>
        (from a in Config.Alphas from t in Config.Temperatures from seed in new[] { 1, 2, 3 }
         select Student(a, t, seed, accuracy(a, t) + 0.1 * (seed - 2))).ToList();

    [Test]
    public void C1FollowsThePapersDirection()
    {
        Assert.That(LsKd.Experiments.Study.AccuracyClaims.C1(Config, Sweep((a, t) => a > 0 ? 90 : 88)).Outcome, Is.EqualTo(Outcome.Reproduced));
        Assert.That(LsKd.Experiments.Study.AccuracyClaims.C1(Config, Sweep((a, t) => a > 0 ? 88 : 90)).Outcome, Is.EqualTo(Outcome.Contradicted));
        Assert.That(LsKd.Experiments.Study.AccuracyClaims.C1(Config, Sweep((a, t) => 89)).Outcome, Is.EqualTo(Outcome.WithinMargin));
        var twoSeeds = Sweep((a, t) => a > 0 ? 90 : 80).Where(r => r.Seed < 3).ToList();
        Assert.That(LsKd.Experiments.Study.AccuracyClaims.C1(Config, twoSeeds).Outcome, Is.EqualTo(Outcome.NotEnoughSeeds));
    }

    [Test]
    public void C2NeedsAFallAtEveryStepAndReportsTheInteraction()
    {
        // LS: 90, 89, 88, 87 along T = 1, 2, 3, 64; without LS flat.
        var falling = Sweep((a, t) => a > 0 ? 90 - Config.Temperatures.ToList().IndexOf(t) : 89);
        var c2 = LsKd.Experiments.Study.AccuracyClaims.C2(Config, falling);
        Assert.That(c2.Outcome, Is.EqualTo(Outcome.Reproduced));
        Assert.That(c2.Notes.Single(), Does.Contain("reproduced"), "the LS drop exceeds the flat alpha-0 drop");
        var rising = Sweep((a, t) => a > 0 ? 90 + Config.Temperatures.ToList().IndexOf(t) : 89);
        Assert.That(LsKd.Experiments.Study.AccuracyClaims.C2(Config, rising).Outcome, Is.EqualTo(Outcome.Contradicted));
        var flatAtTheEnd = Sweep((a, t) => a > 0 ? (t < 3 ? 90 - t : 87) : 89);   // 89, 88, 87, 87: the last step does not fall
        Assert.That(LsKd.Experiments.Study.AccuracyClaims.C2(Config, flatAtTheEnd).Outcome, Is.EqualTo(Outcome.WithinMargin));
    }

    [Test]
    public void C4ExpectsTheLsStudentBetterAtLowTAndWorseFromThree()
    {
        var matched = new List<MatchedPair>();
        var runs = Sweep((a, t) => a > 0 && t == 64 ? 87 : 89);   // Table 16: at T = 64 the LS teacher's student is worse
        foreach (int seed in new[] { 1, 2, 3 })
        {
            matched.Add(new MatchedPair(seed, 0.1f, 1f, 0.5, 1.7f, 0.5));
            matched.Add(new MatchedPair(seed, 0.1f, 3f, 1.5, 4.2f, 1.5));
            runs.Add(Student(0f, 1.7f, seed, 88 + 0.1 * seed, LsKd.Experiments.Study.RunKind.Matched));   // LS at T = 1 (89) is better
            runs.Add(Student(0f, 4.2f, seed, 90 + 0.1 * seed, LsKd.Experiments.Study.RunKind.Matched));   // LS at T = 3 (89) is worse
        }
        var c4 = LsKd.Experiments.Study.AccuracyClaims.C4(Config, runs, matched);
        Assert.That(c4.Comparisons.Select(c => c.Direction), Is.EqualTo(new[] { +1, -1, -1 }), "T = 1 and T = 3 matched, then the T = 64 pair");
        Assert.That(c4.Outcome, Is.EqualTo(Outcome.Reproduced));
    }

    [Test]
    public void C5IsReproducedWhenAnyHigherTemperatureHelpsWithoutLs()
    {
        Assert.That(LsKd.Experiments.Study.AccuracyClaims.C5(Config, Sweep((a, t) => a == 0 && t == 3 ? 91 : 89)).Outcome, Is.EqualTo(Outcome.Reproduced));
        Assert.That(LsKd.Experiments.Study.AccuracyClaims.C5(Config, Sweep((a, t) => a == 0 && t > 1 ? 85 : 89)).Outcome, Is.EqualTo(Outcome.Contradicted));
    }
}
