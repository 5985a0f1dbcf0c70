using System.Globalization;
using System.Text;
using System.Text.Json;
using LsKd.Experiments.Data;
using LsKd.Nets;

namespace LsKd.Experiments.Study;

/// <summary>
/// Builds runs.csv and report.md from the run records of one or more result folders (shards merge by run id).
/// Accuracies are the last epoch's test top-1 (mean ± standard deviation over seeds); the best epoch is shown
/// separately and labelled as such. A student cell of a smoothed teacher (alpha > 0) is marked by the verdict's rule
/// against the unsmoothed teacher's students at the same T (<see cref="Analysis.Verdicts.Mark"/>).
/// </summary>
public static class Report
{
    static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>The study's finished students as plain data for `lskd advise`.</summary>
    public static Analysis.StudyEvidence Evidence(StudyConfig config, IEnumerable<RunRecord> runs) =>
        new(config.Name, config.Alphas, runs.Where(r => r.Kind == RunKind.Student && r.Status == RunStatus.Finished && r.Last != null && r.Temperature != null)
            .Select(r => new Analysis.StudentResult(r.TeacherAlpha, r.Temperature!.Value, r.Seed, r.Last!.Test.Top1)).ToList(), AccuracyClaims.TeacherShared(config));

    public static List<RunRecord> LoadRuns(IEnumerable<string> dirs)
    {
        var runs = new Dictionary<string, RunRecord>();
        foreach (var dir in dirs)
        {
            string runsDir = Path.Combine(dir, "runs");
            if (!Directory.Exists(runsDir)) throw new UsageException($"{dir}: no runs/ folder (not a study result folder)");
            foreach (var file in Directory.GetFiles(runsDir, "*.json").Order(StringComparer.Ordinal))
            {
                RunRecord? r;
                try { r = JsonSerializer.Deserialize<RunRecord>(File.ReadAllText(file), RunRecord.Json); }
                catch (JsonException e) { throw new UsageException($"{file}: corrupt run record: {JsonErrors.Describe(e)}"); }
                if (r == null) throw new UsageException($"{file}: corrupt run record: null instead of an object");
                if (r.Id == null || r.Model == null || r.Device == null || r.Epochs == null || r.Settings == null || r.Software == null || r.TestConfusion == null)
                    throw new UsageException($"{file}: corrupt run record: a required field is null");
                runs.TryAdd(r.Id, r);
            }
        }
        return runs.Values.OrderBy(r => r.Id, StringComparer.Ordinal).ToList();
    }

    /// <summary>Writes runs.csv and report.md into outDir; returns the report text.</summary>
    public static string Write(StudyConfig config, IReadOnlyList<RunRecord> runs, string outDir, DatasetInfo info)
    {
        AtomicFile.WriteText(Path.Combine(outDir, "runs.csv"), Csv(runs));
        string md = Markdown(config, runs, info, outDir);
        AtomicFile.WriteText(Path.Combine(outDir, "report.md"), md);
        return md;
    }

    public static string Csv(IReadOnlyList<RunRecord> runs)
    {
        var sb = new StringBuilder("id,kind,model,width,alpha,teacher_alpha,temperature,beta,seed,status,epochs,test_top1,test_top5,train_top1,validation_top1,best_test_top1,best_epoch,wall_seconds,train_img_per_s,device\n");
        foreach (var r in runs)
        {
            var last = r.Last; var best = r.Best;
            sb.AppendJoin(',', r.Id, r.Kind.Text(), r.Model, N(r.Width), N(r.Alpha), N(r.TeacherAlpha), r.Temperature is { } t ? N(t) : "", N(r.Beta), r.Seed.ToString(Inv),
                r.Status.Text(), r.Epochs.Count.ToString(Inv), N(last?.Test.Top1), N(last?.Test.Top5), N(last?.Train.Top1), N(last?.Validation?.Top1),
                N(best?.Test.Top1), best?.Epoch.ToString(Inv) ?? "", N(r.WallSeconds), N(r.TrainImagesPerSecond), "\"" + r.Device.Replace("\"", "'") + "\"");
            sb.Append('\n');
        }
        return sb.ToString();
    }

    static string Augmentation(bool on) => on ? " with random crops (padding 2) and horizontal flips" : " without augmentation";

    static string N(double? v) => v is { } d && double.IsFinite(d) ? d.ToString("0.####", Inv) : "";

    /// <summary>mean ± std (sample standard deviation; 0 for one seed) of the finished runs' values.</summary>
    static string Stat(IEnumerable<double> values, out double mean)
    {
        var v = values.Where(double.IsFinite).ToList();
        mean = double.NaN;
        if (v.Count == 0) return "n/a";
        mean = v.Average();
        double m = mean;
        if (v.Count == 1) return mean.ToString("F2", Inv);   // one run (one seed, or a teacher shared by the seeds): no spread to show
        double sd = Math.Sqrt(v.Sum(x => (x - m) * (x - m)) / (v.Count - 1));
        return $"{mean.ToString("F2", Inv)} ± {sd.ToString("F2", Inv)}";
    }

    static string Markdown(StudyConfig c, IReadOnlyList<RunRecord> runs, DatasetInfo info, string outDir)
    {
        var sb = new StringBuilder();
        var finished = runs.Where(r => r.Status == RunStatus.Finished && r.Last != null).ToList();
        var sweep = c.Runs().Select(r => r.Id).ToHashSet();
        int expected = sweep.Count, sweepFinished = finished.Count(r => sweep.Contains(r.Id)), extra = finished.Count - sweepFinished;
        sb.AppendLine($"# Study `{c.Name}`: to smooth or not to smooth a teacher?");
        sb.AppendLine();
        sb.AppendLine($"Data: {info.Name}, {(c.TrainImages > 0 ? c.TrainImages.ToString(Inv) : "all")} training images, {(c.TestImages > 0 ? c.TestImages.ToString(Inv) : "all")} test images" +
                      $". Teacher: {c.Teacher.Model} (width {N(c.Teacher.Width)}), {c.Teacher.Epochs} epoch(s){Augmentation(c.Teacher.Augment ?? c.Augment)}. " +
                      $"Students: {string.Join(", ", c.Students.Select(s => $"{s.Model} (width {N(s.Width)})"))}, {c.Student.Epochs} epoch(s){(c.StudentTrainImages > 0 ? $" on the first {c.StudentTrainImages.ToString(Inv)} training images" : "")}{Augmentation(c.Student.Augment ?? c.Augment)}, beta = {N(c.Beta)}. " +
                      $"Seeds: {string.Join(", ", c.Seeds)}. Runs: {sweepFinished} of the sweep's {expected} finished" +
                      $"{(extra > 0 ? $", plus {extra} matched-entropy run(s) of the analysis" : "")}" +
                      $"{(runs.Count(r => r.Status != RunStatus.Finished) is > 0 and var d ? $", {d} diverged" : "")}.");
        sb.AppendLine();
        sb.AppendLine("Numbers are test top-1 accuracy (%) at the last epoch, mean ± standard deviation over seeds (a single number where there is one run). " +
                      $"Teachers: {(AccuracyClaims.TeacherShared(c) ? "one per alpha, trained with the first seed and shared by the seeds' students (the spread of a student cell then excludes teacher variance)" : "one per seed and alpha")}. " +
                      "Marks compare a smoothed teacher's students with the unsmoothed teacher's at the same T, by the verdict's rule (paired by seed): " + Analysis.Verdicts.MarkLegend);
        sb.AppendLine();

        // Teachers (Table 2 layout: one row, a column per alpha).
        sb.AppendLine("## Teachers");
        sb.AppendLine();
        sb.AppendLine("| | " + string.Join(" | ", c.Alphas.Select(a => $"alpha = {N(a)}")) + " |");
        sb.AppendLine("|---|" + string.Concat(c.Alphas.Select(_ => "---|")));
        var teachers = finished.Where(r => r.Kind == RunKind.Teacher).ToList();
        Row(sb, $"Teacher {c.Teacher.Model} test top-1{(AccuracyClaims.TeacherShared(c) ? " (one teacher each, shared by the seeds)" : "")}", c.Alphas.Select(a => Stat(teachers.Where(r => r.Alpha == a).Select(r => r.Last!.Test.Top1), out _)));
        Row(sb, "Teacher test top-5", c.Alphas.Select(a => Stat(teachers.Where(r => r.Alpha == a).Select(r => r.Last!.Test.Top5), out _)));
        Row(sb, "Teacher train top-1 (eval mode, no augmentation)", c.Alphas.Select(a => Stat(teachers.Where(r => r.Alpha == a).Select(r => r.Last!.Train.Top1), out _)));
        if (c.ValidationImages > 0)
            Row(sb, "Teacher validation top-1", c.Alphas.Select(a => Stat(teachers.Where(r => r.Alpha == a).Select(r => r.Last!.Validation?.Top1 ?? double.NaN), out _)));
        Row(sb, "Best epoch's test top-1 (not the reported number)", c.Alphas.Select(a => Stat(teachers.Where(r => r.Alpha == a).Select(r => r.Best!.Test.Top1), out _)));
        sb.AppendLine();

        // Students (Tables 5, 6, 9-11 layout): a teacher row, a row per T, a column per teacher alpha.
        foreach (var arch in c.Students)
        {
            var mine = finished.Where(r => r.Model == arch.Model && r.Width == arch.Width).ToList();
            sb.AppendLine($"## Students: {arch.Model} (width {N(arch.Width)}) distilled from {c.Teacher.Model}");
            sb.AppendLine();
            sb.AppendLine("| | " + string.Join(" | ", c.Alphas.Select(a => $"teacher alpha = {N(a)}")) + " |");
            sb.AppendLine("|---|" + string.Concat(c.Alphas.Select(_ => "---|")));
            Row(sb, AccuracyClaims.TeacherShared(c) ? "Teacher (one, shared by the seeds)" : "Teacher", c.Alphas.Select(a => Stat(teachers.Where(r => r.Alpha == a).Select(r => r.Last!.Test.Top1), out _)));
            foreach (float t in c.Temperatures)
            {
                var cells = new List<string>();
                double baseMean = double.NaN;
                foreach (float a in c.Alphas)
                {
                    string cell = Stat(mine.Where(r => r.Kind == RunKind.Student && r.TeacherAlpha == a && r.Temperature == t).Select(r => r.Last!.Test.Top1), out double mean);
                    if (a == 0f) baseMean = mean;
                    else if (c.Alphas.Contains(0f))
                        cell += Analysis.Verdicts.Mark(AccuracyClaims.Compare(c, "", AccuracyClaims.SeedAccuracies(runs, arch, a, t), AccuracyClaims.SeedAccuracies(runs, arch, 0f, t), +1));
                    cells.Add(cell);
                }
                Row(sb, $"Student T = {N(t)}", cells);
            }
            if (c.Baselines)
            {
                sb.AppendLine();
                sb.AppendLine("Baselines without a teacher (cross-entropy, the student's own label smoothing = alpha):");
                sb.AppendLine();
                sb.AppendLine("| | " + string.Join(" | ", c.Alphas.Select(a => $"alpha = {N(a)}")) + " |");
                sb.AppendLine("|---|" + string.Concat(c.Alphas.Select(_ => "---|")));
                Row(sb, "Student without KD", c.Alphas.Select(a => Stat(mine.Where(r => r.Kind == RunKind.Baseline && r.Alpha == a).Select(r => r.Last!.Test.Top1), out _)));
            }
            sb.AppendLine();
            sb.AppendLine("Best epoch's test top-1 (not the reported number):");
            sb.AppendLine();
            sb.AppendLine("| | " + string.Join(" | ", c.Alphas.Select(a => $"teacher alpha = {N(a)}")) + " |");
            sb.AppendLine("|---|" + string.Concat(c.Alphas.Select(_ => "---|")));
            foreach (float t in c.Temperatures)
                Row(sb, $"Student T = {N(t)}", c.Alphas.Select(a => Stat(mine.Where(r => r.Kind == RunKind.Student && r.TeacherAlpha == a && r.Temperature == t).Select(r => r.Best!.Test.Top1), out _)));
            sb.AppendLine();

            // Class-wise (Tables 17-19 layout): per class, the students of each teacher at a temperature.
            foreach (float t in c.ClassWiseTemperatures)
            {
                var perAlpha = c.Alphas.Select(a => mine.Where(r => r.Kind == RunKind.Student && r.TeacherAlpha == a && r.Temperature == t).ToList()).ToList();
                if (perAlpha.All(l => l.Count == 0)) continue;
                sb.AppendLine($"Class-wise test accuracy (%) of {arch.Model} students at T = {N(t)}:");
                sb.AppendLine();
                sb.AppendLine("| class | group | " + string.Join(" | ", c.Alphas.Select(a => $"teacher alpha = {N(a)}")) + (c.Alphas.Length > 1 ? $" | change (alpha {N(c.Alphas[^1])} - alpha {N(c.Alphas[0])}) |" : " |"));
                sb.AppendLine("|---|---|" + string.Concat(c.Alphas.Select(_ => "---|")) + (c.Alphas.Length > 1 ? "---|" : ""));
                for (int k = 0; k < info.Classes.Length; k++)
                {
                    var means = new List<double>();
                    var cells = perAlpha.Select(l => { string s = Stat(l.Select(r => r.Last!.Test.PerClass[k]), out double m); means.Add(m); return s; }).ToList();
                    string change = c.Alphas.Length > 1 && double.IsFinite(means[^1]) && double.IsFinite(means[0]) ? (means[^1] - means[0]).ToString("+0.00;-0.00;0.00", Inv) : "";
                    sb.AppendLine($"| {info.Classes[k]} | {info.GroupOf(k)} | {string.Join(" | ", cells)}{(c.Alphas.Length > 1 ? $" | {change} |" : " |")}");
                }
                sb.AppendLine();
            }
        }

        var bad = runs.Where(r => r.Status != RunStatus.Finished).ToList();
        if (bad.Count > 0)
        {
            sb.AppendLine("## Diverged runs");
            sb.AppendLine();
            foreach (var r in bad) sb.AppendLine($"- {r.Id}: loss became NaN or infinite after {r.Epochs.Count} finished epoch(s)");
            sb.AppendLine();
        }
        var missing = c.Runs().Select(r => r.Id).Except(runs.Select(r => r.Id)).ToList();
        if (missing.Count > 0)
        {
            sb.AppendLine("## Missing runs");
            sb.AppendLine();
            sb.AppendLine($"{missing.Count} run(s) of the sweep have no record yet (unfinished, or in another shard's folder): {string.Join(", ", missing.Take(20))}{(missing.Count > 20 ? ", ..." : "")}");
            sb.AppendLine();
        }

        // The analysis (`lskd analyze`) when it has been run: its tables and figures, then the verdict at the very end.
        string analysisDir = Path.Combine(outDir, "analysis");
        if (File.Exists(Path.Combine(analysisDir, "analysis.md"))) sb.Append(File.ReadAllText(Path.Combine(analysisDir, "analysis.md")));

        // Timing after the results, so the tables above are identical for identical results (the shard-merge test relies on it).
        sb.AppendLine("## Timing");
        sb.AppendLine();
        sb.AppendLine("| run | status | epochs | wall s | train img/s | device |");
        sb.AppendLine("|---|---|---|---|---|---|");
        foreach (var r in runs) sb.AppendLine($"| {r.Id} | {r.Status.Text()} | {r.Epochs.Count} | {r.WallSeconds.ToString("F1", Inv)} | {r.TrainImagesPerSecond.ToString("F0", Inv)} | {r.Device} |");
        if (File.Exists(Path.Combine(analysisDir, "verdict.md")))
        {
            sb.AppendLine();
            sb.Append(File.ReadAllText(Path.Combine(analysisDir, "verdict.md")));
        }
        return sb.ToString();
    }

    static void Row(StringBuilder sb, string label, IEnumerable<string> cells) => sb.AppendLine($"| {label} | {string.Join(" | ", cells)} |");
}
