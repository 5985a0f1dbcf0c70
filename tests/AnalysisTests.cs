using LsKd.Experiments.Analysis;
using LsKd.Experiments.Data;
using LsKd.Experiments.Study;
using SkiaSharp;

namespace LsKd.Tests;

/// <summary>The analyses: the diffusion index on clusters whose movement is known, entropy and the matched-temperature
/// solver, the Appendix D count, figures as valid PNGs with every panel drawn, the advisor on smoothed and unsmoothed
/// teachers, and `analyze` on a whole (smoke) study.</summary>
[TestFixture, NonParallelizable]
public class AnalysisTests
{
    static readonly DatasetInfo Info = DatasetInfo.Load("fashion-mnist");

    /// <summary>Ten classes on a circle, each hierarchy group on a contiguous arc (as similar classes are close in a
    /// trained network); the target's samples move by `move` of the way towards the mean of its similar classes.</summary>
    static (float[] Features, int[] Labels) Clusters(int target, double move, int perClass = 30, int dim = 5)
    {
        int[] order = [0, 2, 4, 6, 5, 7, 9, 1, 3, 8];
        double[] Centre(int c)
        {
            int p = Array.IndexOf(order, c);
            var x = new double[dim];
            x[0] = 10 * Math.Cos(2 * Math.PI * p / 10); x[1] = 10 * Math.Sin(2 * Math.PI * p / 10); x[2 + c % (dim - 2)] = 1;
            return x;
        }
        var similar = Info.SimilarTo(target);
        var goal = new double[dim];
        foreach (int k in similar) { var ck = Centre(k); for (int j = 0; j < dim; j++) goal[j] += ck[j] / similar.Length; }
        var rng = new Random(3);
        var f = new List<float>(); var y = new List<int>();
        for (int c = 0; c < 10; c++)
        {
            var centre = Centre(c);
            for (int i = 0; i < perClass; i++)
            {
                for (int j = 0; j < dim; j++)
                    f.Add((float)(centre[j] + rng.NextDouble() - 0.5 + (c == target ? move * (goal[j] - centre[j]) : 0)));
                y.Add(c);
            }
        }
        return (f.ToArray(), y.ToArray());
    }

    [Test]
    public void EtaIsNegativeOnTheSetTheTargetMovesTowards()
    {
        var be = Backends.Get("cpu-v512-2t");
        foreach (int target in new[] { 6, 7 })      // Shirt (S1: T-shirt/top, Pullover, Coat), Sneaker (S1: Sandal, Ankle boot)
        {
            var sets = ClassSets.FromHierarchy(Info, target);
            Assert.That(sets.S1, Is.EquivalentTo(Info.SimilarTo(target)));
            var (f1, y1) = Clusters(target, move: 0);
            var (f2, y2) = Clusters(target, move: 0.3);
            var d1 = ClassDistances.Compute(be, f1, y1, 5, 10, 20);
            var d2 = ClassDistances.Compute(be, f2, y2, 5, 10, 20);
            foreach (bool pairwise in new[] { false, true })
            {
                double s1 = Diffusion.Eta(d1.Get(pairwise), d2.Get(pairwise), 10, sets, similar: true);
                double s2 = Diffusion.Eta(d1.Get(pairwise), d2.Get(pairwise), 10, sets, similar: false);
                Assert.That(s1, Is.LessThan(0), $"target {target}, pairwise={pairwise}: eta on S1");
                Assert.That(s2, Is.GreaterThan(0), $"target {target}, pairwise={pairwise}: eta on S2");
            }
            // Moving away from the similar classes flips both signs.
            var (f3, y3) = Clusters(target, move: -0.3);
            var d3 = ClassDistances.Compute(be, f3, y3, 5, 10, 20);
            Assert.That(Diffusion.Eta(d1.Centroid, d3.Centroid, 10, sets, true), Is.GreaterThan(0));
            Assert.That(Diffusion.Eta(d1.Centroid, d3.Centroid, 10, sets, false), Is.LessThan(0));
            Assert.That(Diffusion.Eta(d1.Centroid, d1.Centroid, 10, sets, true), Is.EqualTo(0).Within(1e-12), "no movement, no diffusion");
        }
    }

    [Test]
    public void EtaMatchesEquationOneByHand()
    {
        // Target 0, S1 = {1}, S2 = {2}: distances (2, 6) at T1 and (1, 7) at T2; R = 8 both times.
        var d1 = new double[9]; var d2 = new double[9];
        d1[1] = 2; d1[2] = 6; d2[1] = 1; d2[2] = 7;
        var sets = new ClassSets(0, [1], [2]);
        Assert.That(Diffusion.Eta(d1, d2, 3, sets, true), Is.EqualTo(100.0 * (1.0 / 8 - 2.0 / 8) / (2.0 / 8)).Within(1e-12));   // -50 %
        Assert.That(Diffusion.Eta(d1, d2, 3, sets, false), Is.EqualTo(100.0 * (7.0 / 8 - 6.0 / 8) / (6.0 / 8)).Within(1e-12));
    }

    [Test]
    public void FeatureDistanceSetsAndAgreement()
    {
        var d = new double[16];
        void Set(int a, int b, double v) { d[a * 4 + b] = v; d[b * 4 + a] = v; }
        Set(0, 1, 1); Set(0, 2, 3); Set(0, 3, 2); Set(1, 2, 5); Set(1, 3, 5); Set(2, 3, 5);
        var f = ClassSets.FromDistances(d, 4, 0, 2);
        Assert.That(f.S1, Is.EqualTo(new[] { 1, 3 }));
        Assert.That(f.S2, Is.EqualTo(new[] { 2 }));
        var (a1, a2) = new ClassSets(0, [1, 2], [3]).Agreement(f);
        Assert.That((a1, a2), Is.EqualTo((0.5, 0.0)));
    }

    static float[] RandomLogits(int rows, int k, double scale, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, rows * k).Select(_ => (float)(scale * (rng.NextDouble() * 2 - 1))).ToArray();
    }

    [Test]
    public void EntropyRisesWithTemperatureTowardsLnK()
    {
        var z = RandomLogits(200, 10, 8, 1);
        double previous = 0;
        foreach (double t in new[] { 0.5, 1, 2, 4, 16, 64, 1e4 })
        {
            double h = Smoothness.AverageEntropy(z, 10, t);
            Assert.That(h, Is.GreaterThan(previous), $"T = {t}");
            Assert.That(h, Is.LessThanOrEqualTo(Math.Log(10) + 1e-12));
            previous = h;
        }
        Assert.That(previous, Is.EqualTo(Math.Log(10)).Within(1e-6));
        // One-hot-like logits have entropy near 0 at T = 1.
        var sharp = new float[10]; sharp[3] = 100;
        Assert.That(Smoothness.AverageEntropy(sharp, 10, 1), Is.LessThan(1e-30));
    }

    [Test]
    public void MatchedTemperaturesGiveEqualEntropiesToOneInAMillion()
    {
        var plain = RandomLogits(300, 10, 12, 2);     // sharper: the unsmoothed teacher
        var smooth = RandomLogits(300, 10, 4, 3);
        var pairs = Matching.Compute(1, plain, new Dictionary<float, float[]> { [0.1f] = smooth }, 10, [1f, 3f, 64f]);
        Assert.That(pairs, Has.Count.EqualTo(3));
        foreach (var p in pairs)
        {
            Assert.That(p.MatchedEntropy, Is.EqualTo(p.Entropy).Within(1e-6), $"T = {p.Temperature} -> T' = {p.MatchedTemperature}");
            Assert.That(p.MatchedTemperature, Is.GreaterThan(p.Temperature), "the sharper teacher needs a higher T");
        }
        // A target entropy above ln K cannot be matched.
        Assert.That(Smoothness.MatchTemperature(plain, 10, Math.Log(10) + 0.1), Is.Null);
    }

    [Test]
    public void NegligibleClassesCountsThoseHundredTimesBelowTheSecondLargest()
    {
        double[] p = [0.7, 0.2, 0.09, 0.002, 0.001, 0.007];
        Assert.That(Smoothness.NegligibleClasses(p), Is.EqualTo(2));   // 0.002 and 0.001 <= 0.2 / 100
    }

    [Test]
    public void FigureIsAValidPngWithEveryPanelDrawn()
    {
        string path = Path.Combine(Path.GetTempPath(), $"lskd-figure-{Guid.NewGuid():N}.png");
        try
        {
            var panels = new ScottPlot.Plot?[2, 3];
            for (int r = 0; r < 2; r++)
                for (int c = 0; c < 3; c++)
                    panels[r, c] = ((r + c) % 3) switch
                    {
                        0 => Figures.Scatter($"scatter {r},{c}", [("a", [0.0, 1, 2], [1.0, 0, 2]), ("b", [3.0, 4], [3.0, 1])], "x", "y"),
                        1 => Figures.Bars($"bars {r},{c}", ["one", "two", "three"], [0.5, 0.3, 0.2], "p"),
                        _ => Figures.Heatmap($"heatmap {r},{c}", new double[,] { { 1, 2 }, { 3, double.NaN } }, ["r0", "r1"], ["c0", "c1"], "x", "y"),
                    };
            var rects = Figures.SaveGrid(path, "test figure", panels, 300, 250);
            AssertPng(path, 900, Figures.TitleHeight + 500, rects);
            Assert.That(rects, Has.Count.EqualTo(6));
        }
        finally { File.Delete(path); }
    }

    /// <summary>A decodable PNG of the expected size whose every panel holds enough non-white pixels.</summary>
    internal static void AssertPng(string path, int width, int height, IReadOnlyList<PanelRect> panels)
    {
        var bytes = File.ReadAllBytes(path);
        Assert.That(bytes.AsSpan(0, 8).ToArray(), Is.EqualTo(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }), $"{path}: PNG signature");
        using var bitmap = SKBitmap.Decode(bytes);
        Assert.That(bitmap, Is.Not.Null, $"{path}: decodes");
        Assert.That((bitmap.Width, bitmap.Height), Is.EqualTo((width, height)), $"{path}: size");
        foreach (var p in panels)
        {
            int ink = 0;
            for (int y = p.Y; y < p.Y + p.Height; y += 2)
                for (int x = p.X; x < p.X + p.Width; x += 2)
                {
                    var c = bitmap.GetPixel(x, y);
                    if (c.Red < 200 || c.Green < 200 || c.Blue < 200) ink++;
                }
            Assert.That(ink, Is.GreaterThan(200), $"{path}: panel at ({p.X}, {p.Y}) is blank");
        }
    }

    [Test]
    public void AdviseReportsMoreSmoothingForAnLsTeacher()
    {
        var be = Backends.Get("cpu-v512-2t");
        var (train, test, info) = FashionMnist.Load(SyntheticData.Dir);
        train = train.Take(1000);
        var assessments = new Dictionary<float, TeacherAssessment>();
        foreach (float alpha in new[] { 0f, 0.1f })
        {
            var settings = new TrainSettings { Model = "mlp", Width = 0.5f, Epochs = 8, Batch = 50, Lr = 0.05f };
            var spec = new RunSpec($"teacher-{alpha}", RunKind.Teacher, settings, new RunLoss.LabelSmoothing(alpha), 1, null);
            var model = LsKd.Nets.Models.Create("mlp", be, 7, 0.5f);
            var trainer = new Trainer(be, train, train.Take(100), test.Take(100), augment: false, -info.Mean / info.Std);
            Assert.That(trainer.Run(spec, model, null).Status, Is.EqualTo(RunStatus.Finished));
            assessments[alpha] = Advisor.Assess(SetOutputs.Compute(be, model, train), [1f, 2f, 4f, 64f]);
        }
        TestContext.Out.WriteLine($"alpha 0: {assessments[0f]}\nalpha 0.1: {assessments[0.1f]}");
        Assert.That(assessments[0.1f].EffectiveAlpha, Is.GreaterThan(assessments[0f].EffectiveAlpha), "logit-gap estimate");
        Assert.That(assessments[0.1f].AlphaFromConfidence, Is.GreaterThan(assessments[0f].AlphaFromConfidence), "confidence estimate");
        Assert.That(assessments[0.1f].EffectiveAlpha, Is.InRange(0.03, 0.3), "the LS teacher's estimate is near its alpha");
        Assert.That(assessments[0.1f].IsSmoothed && !assessments[0f].IsSmoothed);
        Assert.That(Advisor.Recommend(assessments[0.1f]).Temperature, Is.EqualTo(1f), "an LS teacher is advised T = 1");
        Assert.That(Advisor.Recommend(assessments[0f]).Temperature, Is.GreaterThan(1f));
    }

    [Test]
    public void AnalyzeOnTheSmokeStudyWritesEveryTableFigureAndExport()
    {
        string root = Path.Combine(Path.GetTempPath(), "lskd-analysis-" + Guid.NewGuid().ToString("N"));
        try
        {
            var c = StudyConfig.Preset("smoke");
            string dir = Path.Combine(root, c.Name);
            var be = Backends.Get("cpu-v512-2t");
            using var runner = new StudyRunner(c, dir, be, SyntheticData.Dir);
            runner.Run();
            var (matchedTrained, _) = runner.RunMatched();
            Assert.That(matchedTrained, Is.EqualTo(c.Students.Length * c.Analysis.MatchTemperatures.Length));
            var outcome = new Analyzer(c, [dir], be, SyntheticData.Dir).Run();
            string report = Report.Write(c, Report.LoadRuns([dir]), dir, Info);

            foreach (string section in new[] { "## Analysis", "### Penultimate-layer representations", "### Diffusion index eta", "S1 agreement", "Table 21 layout",
                         "### Teachers' soft targets", "Appendix D", "### Smoothness of the teachers' targets", "Matched-entropy distillation", "### Summary figures" })
                Assert.That(report, Does.Contain(section));
            Assert.That(report.TrimEnd(), Does.EndWith(outcome.Verdict.TrimEnd()), "the report ends with the verdict");
            // Five claims, each with exactly one outcome; one seed decides nothing, and the study says it is a demonstration.
            var claims = outcome.Verdict.Split('\n').Where(l => l.StartsWith("- ", StringComparison.Ordinal)).ToList();
            Assert.That(claims.Select(c => c[2..4]), Is.EqualTo(new[] { "C1", "C2", "C3", "C4", "C5" }));
            var outcomes = Enum.GetValues<Outcome>().Select(o => $"**{Verdicts.Text(o)}**").ToArray();
            foreach (var claim in claims)
            {
                Assert.That(outcomes.Count(claim.Contains), Is.EqualTo(1), claim);
                Assert.That(claim, Does.Not.Contain("**reproduced**"), "one seed cannot reproduce a claim: " + claim);
            }
            Assert.That(outcome.Verdict, Does.Contain("This study is a demonstration"));
            Assert.That(outcome.Matched.All(p => Math.Abs(p.Entropy - p.MatchedEntropy) <= 1e-6), "matched entropies");

            Assert.That(outcome.Figures, Has.Count.EqualTo(2 * c.Students.Length + 1 + c.Students.Length));
            foreach (var (name, panels) in outcome.Figures)
            {
                string path = Path.Combine(dir, "analysis", "figures", name);
                Assert.That(report, Does.Contain($"analysis/figures/{name}"));
                // Every cell of the layout is drawn: rows = teacher alphas; columns = teacher + each T, or each
                // soft-target T; the summary is 2 x 2. The PNG's size is the layout's extent.
                int expectedPanels = name.StartsWith("penultimate") ? c.Alphas.Length * (1 + c.Temperatures.Length)
                    : name.StartsWith("soft") ? c.Alphas.Length * c.Analysis.SoftTargetTemperatures.Length : 4;
                Assert.That(panels, Has.Count.EqualTo(expectedPanels), name);
                AssertPng(path, panels.Max(p => p.X + p.Width), panels.Max(p => p.Y + p.Height), panels);
            }
            // Exports for every teacher and student, readable back.
            foreach (var run in Report.LoadRuns([dir]).Where(r => r.Kind != RunKind.Baseline))
            {
                string e = Path.Combine(dir, "exports", run.Id);
                var (shape, _) = Npy.ReadFloat(Path.Combine(e, "train_features.npy"));
                Assert.That(shape[0], Is.EqualTo(c.Analysis.TrainImages), run.Id);
                Assert.That(File.Exists(Path.Combine(e, "test_logits.npy")) && File.Exists(Path.Combine(e, "head_weight.npy")), run.Id);
            }
            Assert.That(File.ReadAllLines(Path.Combine(dir, "analysis", "eta.csv")).Length, Is.GreaterThan(1));
        }
        finally { if (Directory.Exists(root)) Directory.Delete(root, true); }
    }
}
