using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using LsKd.Experiments.Data;
using LsKd.Experiments.Analysis;
using LsKd.Kernels;
using LsKd.Nets;
using ScottPlot;
using Spectre.Console;

namespace LsKd.Experiments.Study;

/// <summary>What one analysis wrote: the markdown sections, the verdict and every figure with its panels.</summary>
public sealed record AnalysisOutcome(string Markdown, string Verdict, IReadOnlyDictionary<string, IReadOnlyList<PanelRect>> Figures, double Seconds,
    IReadOnlyList<MatchedPair> Matched);

/// <summary>
/// The analyses of a finished study (paper Figures 1-4, Tables 3, 4, 12-16, 21, Appendix D), written under
/// &lt;study&gt;/analysis: analysis.md and verdict.md (embedded by report.md), figures/*.png, eta.csv,
/// entropy.csv; and exports/&lt;run&gt;/*.npy for every teacher and student. Every checkpoint is run once over the
/// analysis training images and the validation images; everything else works on those outputs.
/// </summary>
public sealed class Analyzer(StudyConfig config, IReadOnlyList<string> dirs, IBackend backend, string? dataDir)
{
    static readonly CultureInfo Inv = CultureInfo.InvariantCulture;
    readonly string _outDir = dirs[0];
    readonly AnalysisSettings _s = config.Analysis;
    DatasetInfo _info = DatasetInfo.Load(config.Dataset);   // replaced by the data's own description in Run
    readonly Dictionary<string, ModelData> _models = [];
    List<RunRecord> _runs = [];
    string _valName = "test";

    public string Dir => Path.Combine(_outDir, "analysis");
    string FiguresDir => Path.Combine(Dir, "figures");
    int K => _info.Classes.Length;

    sealed class ModelData
    {
        public required RunRecord Run { get; init; }
        public required ClassDistances Train { get; init; }
        public required ClassDistances Val { get; init; }
        public required float[] VisTrain { get; init; }
        public required int[] VisTrainLabels { get; init; }
        public required float[] VisVal { get; init; }
        public required int[] VisValLabels { get; init; }
        public float[]? TrainLogits { get; init; }
        public int[]? TrainLabels { get; init; }
    }

    public AnalysisOutcome Run()
    {
        var clock = Stopwatch.StartNew();
        _runs = Report.LoadRuns(dirs);
        using var runner = new StudyRunner(config, _outDir, backend, dataDir);
        var data = runner.LoadData();
        _info = data.Info;
        int[] triple = runner.Triple;
        var train = runner.AnalysisTrain(data.Train);
        var val = data.Validation.Count > 0 ? data.Validation : data.Test;
        _valName = data.Validation.Count > 0 ? "validation" : "test";
        if (_s.TestImages > 0) val = val.Take(_s.TestImages);
        var testForExport = _s.TestImages > 0 ? data.Test.Take(_s.TestImages) : data.Test;
        Directory.CreateDirectory(FiguresDir);

        foreach (var run in _runs.Where(r => r.Status == RunStatus.Finished && r.Kind is RunKind.Teacher or RunKind.Student or RunKind.Matched))
        {
            string? ckpt = dirs.Select(d => StudyRunner.CheckpointPath(d, run.Id)).FirstOrDefault(File.Exists);
            if (ckpt == null) continue;
            var model = Checkpoint.LoadClassifier(ckpt, backend);
            var tr = SetOutputs.Compute(backend, model, train);
            var va = SetOutputs.Compute(backend, model, val);
            string export = Path.Combine(_outDir, "exports", run.Id);
            Directory.CreateDirectory(export);
            Exporter.ExportHead(model, export);
            tr.Export(export, "train");
            va.Export(export, _valName);
            if (_valName != "test") SetOutputs.Compute(backend, model, testForExport).Export(export, "test");   // the test set is always exported

            var bias = model.Head.Bias?.ToArray() ?? new float[K];
            var projection = new Projection(backend, model.Head.Weight.ToArray(), bias, tr.Dim, triple);
            // Appendix J's projected representations: on the basis of all K classes' templates (when K <= D + 1).
            var allClasses = K <= tr.Dim + 1 ? new Projection(backend, model.Head.Weight.ToArray(), bias, tr.Dim, Enumerable.Range(0, K).ToArray()) : null;
            var rowsT = Projection.PickRows(tr.Labels, triple, _s.VisTrainPoints);
            var rowsV = Projection.PickRows(va.Labels, triple, _s.VisValidationPoints);
            var (p2t, p2v, _) = Projection.To2D(backend, projection.Project(tr.Features, rowsT), projection.Project(va.Features, rowsV));
            _models[run.Id] = new ModelData
            {
                Run = run,
                Train = ClassDistances.Compute(backend, tr.Features, tr.Labels, tr.Dim, K, _s.PairwiseSamplesPerClass, allClasses),
                Val = ClassDistances.Compute(backend, va.Features, va.Labels, va.Dim, K, _s.PairwiseSamplesPerClass, allClasses),
                VisTrain = p2t, VisTrainLabels = rowsT.Select(i => tr.Labels[i]).ToArray(),
                VisVal = p2v, VisValLabels = rowsV.Select(i => va.Labels[i]).ToArray(),
                TrainLogits = run.Kind == RunKind.Teacher ? tr.Logits : null,
                TrainLabels = run.Kind == RunKind.Teacher ? tr.Labels : null,
            };
        }

        var figures = new Dictionary<string, IReadOnlyList<PanelRect>>();
        var md = new StringBuilder();
        md.AppendLine("## Analysis");
        md.AppendLine();
        md.AppendLine($"Computed by `lskd analyze` on {Markup.Remove(backend.ToString()!)} from {_models.Count} checkpoints: penultimate features and logits of " +
                      $"{train.Count} training images and {val.Count} {_valName} images per model (also exported as .npy under `exports/<run>/`). " +
                      $"Figures are in `analysis/figures/`, machine-readable tables in `analysis/*.csv`.");
        md.AppendLine();
        PenultimateFigures(md, figures, triple);
        var sets = DiffusionTables(md);
        SoftTargets(md, figures, triple);
        var matched = SmoothnessTables(md);
        SummaryFigures(md, figures, sets);
        double seconds = clock.Elapsed.TotalSeconds;
        md.AppendLine($"Analysis time: {seconds.ToString("F1", Inv)} s.");
        md.AppendLine();
        string verdict = Verdict(sets, matched);
        AtomicFile.WriteText(Path.Combine(Dir, "analysis.md"), md.ToString());
        AtomicFile.WriteText(Path.Combine(Dir, "verdict.md"), verdict);
        return new AnalysisOutcome(md.ToString(), verdict, figures, seconds, matched);
    }

    // ---- helpers ----------------------------------------------------------------------------------------------

    static string N(double v, string format = "F3") => double.IsFinite(v) ? v.ToString(format, Inv) : "n/a";
    static string F(float v) => StudyConfig.F(v);
    int FirstSeed => config.Seeds[0];
    string ArchName(StudentArch a) => $"{a.Model} (width {F(a.Width)})";
    static string Slug(string s) => new(s.Select(ch => char.IsLetterOrDigit(ch) || ch == '.' ? ch : '-').ToArray());

    ModelData? Teacher(float alpha, int seed) => _models.GetValueOrDefault(config.TeacherOf(alpha, seed));

    ModelData? Student(StudentArch arch, float alpha, float t, int seed) =>
        _models.GetValueOrDefault($"student-{arch.Model}-w{F(arch.Width)}-a{F(alpha)}-T{F(t)}-s{seed}")
        ?? _models.GetValueOrDefault(StudyConfig.MatchedId(arch, alpha, t, seed));

    IEnumerable<RunRecord> StudentRuns(StudentArch arch, float alpha, float t) => AccuracyClaims.StudentRuns(_runs, arch, alpha, t);

    double MeanAccuracy(StudentArch arch, float alpha, float t, bool top5 = false)
    {
        var v = StudentRuns(arch, alpha, t).Select(r => top5 ? r.Last!.Test.Top5 : r.Last!.Test.Top1).ToList();
        return v.Count > 0 ? v.Average() : double.NaN;
    }

    /// <summary>Target classes of eta: with a hierarchy, those with at least two similar classes; without one, every class.</summary>
    int[] Targets => _info.HasHierarchy ? Enumerable.Range(0, K).Where(k => _info.SimilarTo(k).Length >= 2).ToArray() : Enumerable.Range(0, K).ToArray();

    /// <summary>|S1| of the feature-distance sets without a hierarchy: a quarter of the other classes, at least one.</summary>
    int FeatureSimilarCount => Math.Max(1, (K - 1) / 4);

    // ---- Figures 1, 3, 4: penultimate layer ---------------------------------------------------------------------

    void PenultimateFigures(StringBuilder md, Dictionary<string, IReadOnlyList<PanelRect>> figures, int[] triple)
    {
        md.AppendLine($"### Penultimate-layer representations ({string.Join(", ", triple.Select(k => _info.Classes[k]))})");
        md.AppendLine();
        md.AppendLine($"Algorithm 1: features projected on the orthonormal basis (Householder QR) of the three classes' final-layer rows with their biases, " +
                      $"then PCA to 2-D fitted on the training projections and reused for the {_valName} ones. {_s.VisTrainPoints} training and {_s.VisValidationPoints} {_valName} points per class; seed {FirstSeed}. " +
                      "Rows: teacher alpha; columns: the teacher, then its students at each T.");
        md.AppendLine();
        foreach (var arch in config.Students)
            foreach (bool isTrain in new[] { true, false })
            {
                string split = isTrain ? "training" : _valName;
                var panels = new Plot?[config.Alphas.Length, 1 + config.Temperatures.Length];
                for (int r = 0; r < config.Alphas.Length; r++)
                {
                    float a = config.Alphas[r];
                    panels[r, 0] = Panel($"teacher {config.Teacher.Model}, alpha = {F(a)}", Teacher(a, FirstSeed), isTrain, triple);
                    for (int c = 0; c < config.Temperatures.Length; c++)
                        panels[r, c + 1] = Panel($"student {arch.Model}, teacher alpha = {F(a)}, T = {F(config.Temperatures[c])}", Student(arch, a, config.Temperatures[c], FirstSeed), isTrain, triple);
                }
                string name = $"penultimate-{Slug(arch.Model)}-w{F(arch.Width)}-{(isTrain ? "train" : _valName)}.png";
                figures[name] = Figures.SaveGrid(Path.Combine(FiguresDir, name), $"Penultimate layer, {split} images: {ArchName(arch)} students of {config.Teacher.Model}", panels);
                md.AppendLine($"![penultimate layer, {ArchName(arch)}, {split}](analysis/figures/{name})");
                md.AppendLine();
            }
    }

    Plot? Panel(string title, ModelData? m, bool isTrain, int[] triple)
    {
        if (m == null) return null;
        var xy = isTrain ? m.VisTrain : m.VisVal;
        var labels = isTrain ? m.VisTrainLabels : m.VisValLabels;
        var groups = triple.Select(c =>
        {
            var idx = Enumerable.Range(0, labels.Length).Where(i => labels[i] == c).ToArray();
            return (_info.Classes[c], idx.Select(i => (double)xy[2 * i]).ToArray(), idx.Select(i => (double)xy[2 * i + 1]).ToArray());
        }).ToList();
        return Figures.Scatter(title, groups, "PC 1", "PC 2");
    }

    // ---- Tables 3, 4, 12, 21: diffusion index ----------------------------------------------------------------------

    sealed record SetChoice(string Name, Dictionary<int, ClassSets> Sets);

    List<SetChoice> DiffusionTables(StringBuilder md)
    {
        md.AppendLine("### Diffusion index eta");
        md.AppendLine();
        if (!_info.HasHierarchy)
        {
            // No classes.json: S1/S2 from feature distance alone, in the first teacher available (preferably alpha = 0).
            var reference = Teacher(0f, FirstSeed) ?? config.Alphas.Select(a => Teacher(a, FirstSeed)).FirstOrDefault(t => t != null);
            md.AppendLine($"This data set has no class hierarchy (no `classes.json` beside the data), so S1 and S2 come from feature distance alone (Appendix F.2): " +
                          $"on the {_valName} centroids of the teacher {reference?.Run.Id ?? "(none finished)"}, S1 = the {FeatureSimilarCount} nearest classes, " +
                          "S2 = the farthest 90 % of the others, leaving a middle band. Every class is a target.");
            md.AppendLine();
            if (reference == null) { md.AppendLine("No teacher finished, so no sets could be formed.\n"); return [new SetChoice("feature distance", [])]; }
            var only = new SetChoice("feature distance", Targets.ToDictionary(k => k, k => ClassSets.FromDistances(reference.Val.Centroid, K, k, FeatureSimilarCount)));
            EtaTables(md, [only]);
            return [only];
        }
        var hierarchy = new SetChoice("hierarchy", Targets.ToDictionary(k => k, k => ClassSets.FromHierarchy(_info, k)));
        var choices = new List<SetChoice> { hierarchy };
        md.AppendLine("eta(T1, T2; pi, S) (Eq. 1, percent) for every class with at least two similar classes. Centroid version: distances between class centroids; " +
                      "pairwise version (Appendix J): mean distance between the classes' samples in the projected representation (features with a 1 appended, " +
                      "on the orthonormal basis of all classes' final-layer rows with their biases; `analysis/eta.csv` also has the unprojected version). S1 = similar classes, S2 = dissimilar ones. " +
                      "Systematic diffusion shows as eta < 0 on S1 and eta > 0 on S2. Values are means over seeds.");
        md.AppendLine();
        var plain = Teacher(0f, FirstSeed);
        if (plain != null)
        {
            var feature = new SetChoice("feature distance", Targets.ToDictionary(k => k, k => ClassSets.FromDistances(plain.Val.Centroid, K, k, hierarchy.Sets[k].S1.Length)));
            choices.Add(feature);
            md.AppendLine($"Sets from the class hierarchy ({string.Join("; ", _info.Hierarchy.Select(g => $"{g.Key}: {string.Join(", ", g.Value.Select(k => _info.Classes[k]))}"))}) " +
                          $"and, separately, from feature distance (Appendix F.2, on {_valName} centroids of the teacher trained without LS, seed {FirstSeed}: S1 the |S1| nearest classes, S2 the farthest 90 % of the others leaving a middle band of at least one class). Agreement (Table 12 layout):");
            md.AppendLine();
            md.AppendLine("| target class | S1 (hierarchy) | S1 (feature distance) | S1 agreement | S2 agreement |");
            md.AppendLine("|---|---|---|---|---|");
            double s1Sum = 0, s2Sum = 0;
            foreach (int k in Targets)
            {
                var (a1, a2) = hierarchy.Sets[k].Agreement(feature.Sets[k]);
                s1Sum += a1; s2Sum += a2;
                md.AppendLine($"| {_info.Classes[k]} | {Names(hierarchy.Sets[k].S1)} | {Names(feature.Sets[k].S1)} | {N(a1)} | {N(a2)} |");
            }
            md.AppendLine($"| Average | | | {N(s1Sum / Targets.Length)} | {N(s2Sum / Targets.Length)} |");
            md.AppendLine();
        }
        else md.AppendLine("No teacher trained without LS (alpha = 0) is in this study, so no feature-distance sets were computed.\n");
        EtaTables(md, choices);
        return choices;
    }

    /// <summary>The eta tables (centroid and pairwise, per student and pair) for each choice of sets, and eta.csv.</summary>
    void EtaTables(StringBuilder md, List<SetChoice> choices)
    {
        var csv = new StringBuilder("student,teacher_alpha,t1,t2,distance,sets,target,train_s1,train_s2,val_s1,val_s2\n");
        foreach (var arch in config.Students)
            foreach (var pair in _s.EtaPairs)
                foreach (bool pairwise in new[] { false, true })
                    foreach (var choice in choices)
                    {
                        md.AppendLine($"eta({F(pair[0])} -> {F(pair[1])}) of {ArchName(arch)} students, {(pairwise ? "pairwise distances (Table 21 layout)" : "centroid distances (Tables 3-4 layout)")}, sets from {choice.Name}:");
                        md.AppendLine();
                        md.AppendLine("| target class | " + string.Join(" | ", config.Alphas.Select(a => $"alpha {F(a)}: Train S1 | Train S2 | {Cap(_valName)} S1 | {Cap(_valName)} S2")) + " |");
                        md.AppendLine("|---|" + string.Concat(config.Alphas.Select(_ => "---|---|---|---|")));
                        var sums = new double[config.Alphas.Length * 4];
                        foreach (int k in Targets)
                        {
                            var cells = new List<string>();
                            for (int ai = 0; ai < config.Alphas.Length; ai++)
                            {
                                var v = EtaQuad(arch, config.Alphas[ai], pair[0], pair[1], choice.Sets[k], pairwise);
                                for (int j = 0; j < 4; j++) { sums[ai * 4 + j] += v[j]; cells.Add(N(v[j])); }
                                csv.AppendLine(string.Join(',', arch.Model + "-w" + F(arch.Width), F(config.Alphas[ai]), F(pair[0]), F(pair[1]), pairwise ? "pairwise" : "centroid",
                                    choice.Name.Replace(' ', '-'), $"\"{_info.Classes[k]}\"", N(v[0], "R"), N(v[1], "R"), N(v[2], "R"), N(v[3], "R")));
                                if (pairwise)
                                {
                                    var u = EtaQuad(arch, config.Alphas[ai], pair[0], pair[1], choice.Sets[k], d => d.PairwiseUnprojected);
                                    csv.AppendLine(string.Join(',', arch.Model + "-w" + F(arch.Width), F(config.Alphas[ai]), F(pair[0]), F(pair[1]), "pairwise-unprojected",
                                        choice.Name.Replace(' ', '-'), $"\"{_info.Classes[k]}\"", N(u[0], "R"), N(u[1], "R"), N(u[2], "R"), N(u[3], "R")));
                                }
                            }
                            md.AppendLine($"| {_info.Classes[k]} | {string.Join(" | ", cells)} |");
                        }
                        md.AppendLine($"| Mean | {string.Join(" | ", sums.Select(v => N(v / Targets.Length)))} |");
                        md.AppendLine();
                    }
        AtomicFile.WriteText(Path.Combine(Dir, "eta.csv"), csv.ToString());
    }

    static string Cap(string s) => char.ToUpperInvariant(s[0]) + s[1..];
    string Names(IEnumerable<int> classes) => string.Join(", ", classes.Select(k => _info.Classes[k]));

    /// <summary>(train S1, train S2, val S1, val S2), each the mean over seeds with both students present.</summary>
    double[] EtaQuad(StudentArch arch, float alpha, float t1, float t2, ClassSets sets, bool pairwise) =>
        EtaQuad(arch, alpha, t1, t2, sets, d => d.Get(pairwise));

    double[] EtaQuad(StudentArch arch, float alpha, float t1, float t2, ClassSets sets, Func<ClassDistances, double[]> distances)
    {
        var acc = new List<double[]>();
        foreach (int seed in config.Seeds)
        {
            var a = Student(arch, alpha, t1, seed); var b = Student(arch, alpha, t2, seed);
            if (a == null || b == null) continue;
            acc.Add([
                Diffusion.Eta(distances(a.Train), distances(b.Train), K, sets, true), Diffusion.Eta(distances(a.Train), distances(b.Train), K, sets, false),
                Diffusion.Eta(distances(a.Val), distances(b.Val), K, sets, true), Diffusion.Eta(distances(a.Val), distances(b.Val), K, sets, false)]);
        }
        return Enumerable.Range(0, 4).Select(j => acc.Count == 0 ? double.NaN : acc.Average(v => v[j])).ToArray();
    }

    // ---- Figure 2, Appendix D: teachers' soft targets --------------------------------------------------------------

    void SoftTargets(StringBuilder md, Dictionary<string, IReadOnlyList<PanelRect>> figures, int[] triple)
    {
        var teachers = config.Alphas.Select(a => (Alpha: a, Model: Teacher(a, FirstSeed))).Where(t => t.Model?.TrainLogits != null).ToList();
        if (teachers.Count == 0) return;
        int target = triple[0];
        var similar = _info.SimilarTo(target);
        md.AppendLine("### Teachers' soft targets");
        md.AppendLine();
        md.AppendLine($"Average soft output softmax(z / T) of each teacher over its training images of class {_info.Classes[target]} (Figure 2 layout): the class itself first, " +
                      "then its similar classes, then the rest, each group by decreasing probability.");
        md.AppendLine();
        // Average soft outputs per (teacher, T), teacher-major: the figure's panels and the Appendix D columns.
        var cols = teachers.SelectMany(t => _s.SoftTargetTemperatures.Select(temp => (t.Alpha, t.Model, T: temp))).ToList();
        var averages = cols.Select(c => Smoothness.AverageSoftTargets(c.Model!.TrainLogits!, c.Model!.TrainLabels!, K, c.T)).ToList();
        var panels = new Plot?[teachers.Count, _s.SoftTargetTemperatures.Length];
        for (int r = 0; r < teachers.Count; r++)
            for (int c = 0; c < _s.SoftTargetTemperatures.Length; c++)
            {
                float t = _s.SoftTargetTemperatures[c];
                var row = averages[r * _s.SoftTargetTemperatures.Length + c].AsSpan(target * K, K).ToArray();
                var order = new[] { target }.Concat(similar.OrderByDescending(k => row[k]))
                    .Concat(Enumerable.Range(0, K).Where(k => k != target && !similar.Contains(k)).OrderByDescending(k => row[k])).ToArray();
                panels[r, c] = Figures.Bars($"teacher alpha = {F(teachers[r].Alpha)}, T = {F(t)}", order.Select(k => _info.Classes[k]).ToArray(),
                    order.Select(k => row[k]).ToArray(), "average probability", order.Select(k => k == target ? 0 : similar.Contains(k) ? 1 : 2).ToArray());
            }
        string name = "soft-targets.png";
        figures[name] = Figures.SaveGrid(Path.Combine(FiguresDir, name), $"Average soft targets of {_info.Classes[target]} training images", panels);
        md.AppendLine($"![soft targets](analysis/figures/{name})");
        md.AppendLine();
        md.AppendLine("Appendix D: per class, the number of classes whose average probability is at least 100 times smaller than the second largest " +
                      "(negligible even after temperature scaling), and the class holding the second largest probability:");
        md.AppendLine();
        md.AppendLine("| class | " + string.Join(" | ", cols.Select(c => $"alpha {F(c.Alpha)}, T = {F(c.T)}")) + " |");
        md.AppendLine("|---|" + string.Concat(cols.Select(_ => "---|")));
        for (int k = 0; k < K; k++)
        {
            var cells = averages.Select(avg =>
            {
                var row = avg.AsSpan(k * K, K).ToArray();
                if (!double.IsFinite(row[0])) return "n/a";
                int second = Enumerable.Range(0, K).OrderByDescending(j => row[j]).ElementAt(1);
                return $"{Smoothness.NegligibleClasses(row)} (2nd: {_info.Classes[second]})";
            });
            md.AppendLine($"| {_info.Classes[k]} | {string.Join(" | ", cells)} |");
        }
        md.AppendLine();
    }

    // ---- Tables 13-16: smoothness and matched entropy ---------------------------------------------------------------

    List<MatchedPair> SmoothnessTables(StringBuilder md)
    {
        var teachers = config.Alphas.Select(a => (Alpha: a, Model: Teacher(a, FirstSeed))).Where(t => t.Model?.TrainLogits != null).ToList();
        if (teachers.Count == 0) return [];
        string path = Path.Combine(_outDir, "matched.json");
        List<MatchedPair> matched;
        bool trained = File.Exists(path);
        if (trained) matched = JsonSerializer.Deserialize<List<MatchedPair>>(File.ReadAllText(path), RunRecord.Json) ?? [];
        else
        {
            var plain = Teacher(0f, FirstSeed);
            matched = plain == null ? [] : Matching.Compute(FirstSeed, plain.TrainLogits!, teachers.Where(t => t.Alpha > 0f).ToDictionary(t => t.Alpha, t => t.Model!.TrainLogits!), K, _s.MatchTemperatures);
        }
        var temps = _s.EntropyTemperatures.Concat(_s.MatchTemperatures).Concat(matched.Where(p => p.Seed == FirstSeed).Select(p => p.MatchedTemperature)).Distinct().Order().ToList();
        md.AppendLine("### Smoothness of the teachers' targets");
        md.AppendLine();
        md.AppendLine($"Average entropy of softmax(z / T) over the {_s.TrainImages}-image analysis training set (Table 13 layout), seed {FirstSeed}; the ceiling is ln {K} = {N(Math.Log(K), "F4")}. " +
                      "Matched temperatures (T' at which the teacher without LS has the same entropy as an LS teacher at T, solved by bisection to 1e-9) are included.");
        md.AppendLine();
        md.AppendLine("| T | " + string.Join(" | ", teachers.Select(t => $"alpha = {F(t.Alpha)}")) + " |");
        md.AppendLine("|---|" + string.Concat(teachers.Select(_ => "---|")));
        var csv = new StringBuilder("temperature," + string.Join(',', teachers.Select(t => "alpha_" + F(t.Alpha))) + "\n");
        foreach (float t in temps)
        {
            var h = teachers.Select(x => Smoothness.AverageEntropy(x.Model!.TrainLogits!, K, t)).ToList();
            md.AppendLine($"| {t.ToString("0.######", Inv)} | {string.Join(" | ", h.Select(v => N(v, "F4")))} |");
            csv.AppendLine(t.ToString("R", Inv) + "," + string.Join(',', h.Select(v => v.ToString("R", Inv))));
        }
        md.AppendLine();
        AtomicFile.WriteText(Path.Combine(Dir, "entropy.csv"), csv.ToString());

        if (matched.Count == 0) { md.AppendLine("No matched-entropy pairs (the study needs teachers with alpha = 0 and alpha > 0, and analysis.matchTemperatures).\n"); return matched; }
        md.AppendLine("Matched-entropy distillation (Tables 14-16 layout): students of the LS teacher at T and of the teacher without LS at the T' of equal average entropy. " +
                      (trained ? "Both were trained by the study (`matched-*` runs when T is not in the sweep)." : "The matched students have not been trained (run `lskd study` to train them)."));
        md.AppendLine();
        md.AppendLine("| case | student | teacher alpha / T | average entropy | student top-1 / top-5 (test) |");
        md.AppendLine("|---|---|---|---|---|");
        int caseNo = 0;
        foreach (var g in matched.GroupBy(p => (p.TeacherAlpha, p.Temperature)))
        {
            var first = g.First();
            foreach (var arch in config.Students)
            {
                caseNo++;
                double ls1 = MeanAccuracy(arch, g.Key.TeacherAlpha, g.Key.Temperature), ls5 = MeanAccuracy(arch, g.Key.TeacherAlpha, g.Key.Temperature, true);
                var plainRuns = g.SelectMany(p => StudentRuns(arch, 0f, p.MatchedTemperature).Where(r => r.Seed == p.Seed)).ToList();
                double p1 = plainRuns.Count > 0 ? plainRuns.Average(r => r.Last!.Test.Top1) : double.NaN, p5 = plainRuns.Count > 0 ? plainRuns.Average(r => r.Last!.Test.Top5) : double.NaN;
                string tPrime = string.Join(", ", g.Select(p => p.MatchedTemperature.ToString("0.######", Inv)));
                md.AppendLine($"| #{caseNo} | {ArchName(arch)} | {F(g.Key.TeacherAlpha)} / {F(g.Key.Temperature)} | {N(g.Average(p => p.Entropy), "F6")} | {N(ls1, "F2")} / {N(ls5, "F2")} |");
                md.AppendLine($"| #{caseNo} | {ArchName(arch)} | 0 / {tPrime} | {N(g.Average(p => p.MatchedEntropy), "F6")} | {N(p1, "F2")} / {N(p5, "F2")} |");
            }
        }
        md.AppendLine();
        return matched;
    }

    // ---- summary figures -------------------------------------------------------------------------------------------

    /// <summary>Mean over target classes of eta(T_first -> T) on S1 or S2 (centroid distances, hierarchy sets, training images).</summary>
    double MeanEta(StudentArch arch, float alpha, float t, SetChoice sets, bool similar)
    {
        float t0 = config.Temperatures[0];
        if (t == t0) return 0;
        var v = Targets.Select(k => EtaQuad(arch, alpha, t0, t, sets.Sets[k], false)[similar ? 0 : 1]).Where(double.IsFinite).ToList();
        return v.Count > 0 ? v.Average() : double.NaN;
    }

    void SummaryFigures(StringBuilder md, Dictionary<string, IReadOnlyList<PanelRect>> figures, List<SetChoice> sets)
    {
        md.AppendLine("### Summary figures");
        md.AppendLine();
        md.AppendLine($"Per student architecture: test top-1 accuracy over teacher alpha x T, eta(T = {F(config.Temperatures[0])} -> T) averaged over the target classes on S1 and on S2 " +
                      "(centroid distances, hierarchy sets, training images), and accuracy against T for each teacher alpha.");
        md.AppendLine();
        var rowLabels = config.Alphas.Select(a => $"alpha {F(a)}").ToArray();
        var colLabels = config.Temperatures.Select(t => $"T={F(t)}").ToArray();
        foreach (var arch in config.Students)
        {
            var acc = new double[config.Alphas.Length, config.Temperatures.Length];
            var eta1 = new double[config.Alphas.Length, config.Temperatures.Length];
            var eta2 = new double[config.Alphas.Length, config.Temperatures.Length];
            for (int r = 0; r < config.Alphas.Length; r++)
                for (int c = 0; c < config.Temperatures.Length; c++)
                {
                    acc[r, c] = MeanAccuracy(arch, config.Alphas[r], config.Temperatures[c]);
                    eta1[r, c] = MeanEta(arch, config.Alphas[r], config.Temperatures[c], sets[0], true);
                    eta2[r, c] = MeanEta(arch, config.Alphas[r], config.Temperatures[c], sets[0], false);
                }
            var lines = config.Alphas.Select((a, r) => ($"teacher alpha {F(a)}", config.Temperatures.Select(t => (double)t).ToArray(),
                Enumerable.Range(0, config.Temperatures.Length).Select(c => acc[r, c]).ToArray())).ToList();
            var panels = new Plot?[2, 2];
            panels[0, 0] = Figures.Heatmap("student test top-1 (%)", acc, rowLabels, colLabels, "temperature", "teacher label smoothing", "F2");
            panels[0, 1] = Figures.LinesLog2("student test top-1 against T", lines, "temperature T", "test top-1 (%)");
            panels[1, 0] = Figures.Heatmap($"eta S1 (%), T={F(config.Temperatures[0])} -> T", eta1, rowLabels, colLabels, "temperature", "teacher label smoothing");
            panels[1, 1] = Figures.Heatmap($"eta S2 (%), T={F(config.Temperatures[0])} -> T", eta2, rowLabels, colLabels, "temperature", "teacher label smoothing");
            string name = $"summary-{Slug(arch.Model)}-w{F(arch.Width)}.png";
            figures[name] = Figures.SaveGrid(Path.Combine(FiguresDir, name), $"{ArchName(arch)} students of {config.Teacher.Model}", panels, 460, 360);
            md.AppendLine($"![summary, {ArchName(arch)}](analysis/figures/{name})");
            md.AppendLine();
        }
    }

    // ---- verdict -----------------------------------------------------------------------------------------------------

    /// <summary>Which of the paper's five claims this study's numbers reproduce, each decided from seed statistics
    /// (<see cref="SeedComparison"/>): the comparisons are built here, the rules live in Analysis/Verdict.cs.</summary>
    string Verdict(List<SetChoice> sets, List<MatchedPair> matched) => Verdicts.Markdown(Claims(sets, matched), ScaleText());

    /// <summary>The study's scale beside the verdict; fewer than three seeds or a one-epoch student make it a demonstration.</summary>
    string ScaleText()
    {
        string images(int n) => n > 0 ? $"{n:N0}" : "all";
        bool demo = config.Seeds.Length < SeedComparison.MinSeeds || config.Student.Epochs < 3;
        return $"Scale: teachers {config.Teacher.Model} (width {F(config.Teacher.Width)}), {config.Teacher.Epochs} epoch(s) on {images(config.TrainImages)} training images; " +
               $"students {config.Student.Epochs} epoch(s) on {images(config.StudentTrainImages > 0 ? config.StudentTrainImages : config.TrainImages)} images; " +
               $"{config.Seeds.Length} seed(s). " +
               (config.Seeds.Length < 2 ? "" : AccuracyClaims.TeacherShared(config)
                   ? "The seeds share one teacher per alpha (trained with the first seed), so no comparison of their students holds teacher variance and none decides more than inconclusive. "
                   : "Each seed has its own teachers; two groups of the same seeds are compared seed by seed (paired). ") +
               (demo ? "**This study is a demonstration** (fewer than three seeds or students trained for under three epochs): its verdict shows the method, not an answer." : "");
    }



    /// <summary>Per seed: the mean over target classes of eta(t1 -> t2) on S1 or S2, train or validation features.</summary>
    List<double> SeedEta(StudentArch arch, float alpha, float t1, float t2, SetChoice sets, bool train, bool similar)
    {
        var result = new List<double>();
        foreach (int seed in config.Seeds)
        {
            var a = Student(arch, alpha, t1, seed); var b = Student(arch, alpha, t2, seed);
            if (a == null || b == null) continue;
            var v = Targets.Select(k => Diffusion.Eta((train ? a.Train : a.Val).Centroid, (train ? b.Train : b.Val).Centroid, K, sets.Sets[k], similar)).Where(double.IsFinite).ToList();
            if (v.Count > 0) result.Add(v.Average());
        }
        return result;
    }

    /// <summary>How many (class, seed) pairs show eta &lt; 0 on S1 and eta &gt; 0 on S2.</summary>
    (int Systematic, int Total) EtaCounts(StudentArch arch, float alpha, float t1, float t2, SetChoice sets, bool train)
    {
        int yes = 0, total = 0;
        foreach (int seed in config.Seeds)
        {
            var a = Student(arch, alpha, t1, seed); var b = Student(arch, alpha, t2, seed);
            if (a == null || b == null) continue;
            foreach (int k in Targets)
            {
                double s1 = Diffusion.Eta((train ? a.Train : a.Val).Centroid, (train ? b.Train : b.Val).Centroid, K, sets.Sets[k], true);
                double s2 = Diffusion.Eta((train ? a.Train : a.Val).Centroid, (train ? b.Train : b.Val).Centroid, K, sets.Sets[k], false);
                if (!double.IsFinite(s1) || !double.IsFinite(s2)) continue;
                total++; if (s1 < 0 && s2 > 0) yes++;
            }
        }
        return (yes, total);
    }

    List<ClaimResult> Claims(List<SetChoice> sets, List<MatchedPair> matched)
    {
        var smoothed = config.Alphas.Where(a => a > 0f).ToList();
        var temps = config.Temperatures.Order().ToList();
        bool hasPlain = config.Alphas.Contains(0f);
        var claims = new List<ClaimResult> { AccuracyClaims.C1(config, _runs), AccuracyClaims.C2(config, _runs) };
        // C3: systematic diffusion, eta < 0 on S1 and > 0 on S2, with the alpha = 0 students as the control.
        {
            var cs = new List<SeedComparison>();
            var notes = new List<string>();
            bool shared = AccuracyClaims.TeacherShared(config);
            var hierarchy = sets[0];
            var pairs = _s.EtaPairs.Select(p => (p[0], p[1])).ToList();
            if (temps.Contains(1f) && temps.Contains(64f) && !pairs.Contains((1f, 64f))) pairs.Add((1f, 64f));   // Table 4
            foreach (var (t1, t2) in pairs)
                foreach (var arch in config.Students)
                    foreach (bool train in new[] { true, false })
                    {
                        string split = train ? "train" : _valName;
                        foreach (float a in smoothed)
                        {
                            cs.Add(new SeedComparison($"{arch.Model}, alpha {F(a)}, eta({F(t1)} -> {F(t2)}) S1, {split}", SeedEta(arch, a, t1, t2, hierarchy, train, true), [], -1, AgainstZero: true) { TeacherShared = shared });
                            cs.Add(new SeedComparison($"{arch.Model}, alpha {F(a)}, eta({F(t1)} -> {F(t2)}) S2, {split}", SeedEta(arch, a, t1, t2, hierarchy, train, false), [], +1, AgainstZero: true) { TeacherShared = shared });
                            var (yes, total) = EtaCounts(arch, a, t1, t2, hierarchy, train);
                            notes.Add($"{arch.Model}, alpha {F(a)}, eta({F(t1)} -> {F(t2)}), {split}: {yes} of {total} (class, seed) pairs have S1 < 0 and S2 > 0");
                        }
                        if (!hasPlain) continue;
                        var control1 = new SeedComparison($"control: alpha 0 teacher's students, eta({F(t1)} -> {F(t2)}) S1, {split}", SeedEta(arch, 0f, t1, t2, hierarchy, train, true), [], -1, AgainstZero: true) { TeacherShared = shared };
                        var control2 = new SeedComparison($"control: alpha 0 teacher's students, eta({F(t1)} -> {F(t2)}) S2, {split}", SeedEta(arch, 0f, t1, t2, hierarchy, train, false), [], +1, AgainstZero: true) { TeacherShared = shared };
                        var (cy, ct) = EtaCounts(arch, 0f, t1, t2, hierarchy, train);
                        notes.Add($"{control1}; {control2}; {cy} of {ct} (class, seed) pairs systematic");
                        foreach (float a in smoothed)
                            notes.Add("does LS diffuse more than the control? " + new SeedComparison($"{arch.Model}, eta({F(t1)} -> {F(t2)}) S1, {split}, alpha {F(a)} vs alpha 0",
                                SeedEta(arch, a, t1, t2, hierarchy, train, true), SeedEta(arch, 0f, t1, t2, hierarchy, train, true), -1) { TeacherShared = shared });
                    }
            foreach (float a in smoothed)
                if (Teacher(a, FirstSeed)?.TrainLogits is { } logits && temps.Contains(3f))
                    notes.Add($"alpha {F(a)} teacher's average target entropy at T = 3: {N(Smoothness.AverageEntropy(logits, K, 3f))} (ceiling ln {K} = {N(Math.Log(K))}); " +
                              "the paper finds diffusion systematic only where the other classes' probabilities are at least 100x below the second largest (Appendix D table above)");
            claims.Add(new ClaimResult("C3", "KD from an LS-trained teacher at a higher T diffuses the student's penultimate representations systematically: eta < 0 on similar classes (S1), eta > 0 on dissimilar ones (S2).",
                Verdicts.All(cs), cs, notes));
        }
        claims.Add(AccuracyClaims.C4(config, _runs, matched));
        claims.Add(AccuracyClaims.C5(config, _runs));
        return claims;
    }

}
