using System.Globalization;
using System.Text;
using LsKd.Experiments.Analysis;
using LsKd.Experiments.Data.Translation;

namespace LsKd.Experiments.Study;

/// <summary>The translation claims, decided from per-seed BLEU of the students (the scores of <see cref="TranslationRecord.Main"/>),
/// with chrF shown beside them. Pure functions of the records, so tests can build records and check each direction.</summary>
public static class TranslationClaims
{
    static string F(float v) => StudyConfig.F(v);

    /// <summary>Per seed: a metric of the main decoding (beam where there is one) of one cell's students.</summary>
    public static Dictionary<int, double> Values(IReadOnlyList<TranslationRecord> records, float teacherAlpha, float t, Func<TranslationScores, double> metric) =>
        records.Where(r => r.Kind == "student" && r.TeacherAlpha == teacherAlpha && r.Temperature == t).GroupBy(r => r.Seed).ToDictionary(g => g.Key, g => metric(g.First().Main));

    static Dictionary<int, double> Drops(IReadOnlyList<TranslationRecord> records, float teacherAlpha, float t1, float t2, Func<TranslationScores, double> metric)
    {
        var a = Values(records, teacherAlpha, t1, metric); var b = Values(records, teacherAlpha, t2, metric);
        return a.Keys.Intersect(b.Keys).ToDictionary(s => s, s => a[s] - b[s]);
    }

    /// <summary>Whether the seeds' students share one teacher per alpha (then no comparison of students decides).</summary>
    public static bool TeacherShared(TranslationConfig config) => config.ShareTeacher && config.Seeds.Length > 1;

    /// <summary>The one rule of both studies (<see cref="SeedComparison.BySeed"/>) on per-seed scores.</summary>
    public static SeedComparison Compare(TranslationConfig config, string label, Dictionary<int, double> a, Dictionary<int, double> b, int direction) =>
        SeedComparison.BySeed(label, a, b, direction, TeacherShared(config));

    public static IReadOnlyList<ClaimResult> Decide(TranslationConfig config, IReadOnlyList<TranslationRecord> records)
    {
        var smoothed = config.Alphas.Where(a => a > 0f).ToList();
        var temps = config.Temperatures.Order().ToList();
        float tLow = temps[0], tHigh = temps[^1];
        bool plain = config.Alphas.Contains(0f);
        Func<TranslationScores, double> bleu = s => s.Bleu, chrf = s => s.ChrF;
        SeedComparison C(string label, Dictionary<int, double> a, Dictionary<int, double> b, int direction) => Compare(config, label, a, b, direction);
        Dictionary<int, double> Teachers(float alpha) => records.Where(r => r.Kind == "teacher" && r.TeacherAlpha == alpha).GroupBy(r => r.Seed).ToDictionary(g => g.Key, g => g.First().Main.Bleu);

        // M1: at the lowest T the LS teacher's student is better (the paper's Tables 7 and 8: it leads at T = 1), decided
        // as in the image study; the teachers' own gap is shown beside it.
        var c1 = new List<SeedComparison>(); var n1 = new List<string>();
        foreach (float a in smoothed)
        {
            c1.Add(C($"BLEU at T = {F(tLow)}: alpha {F(a)} teacher's students vs alpha 0 teacher's", Values(records, a, tLow, bleu), plain ? Values(records, 0f, tLow, bleu) : [], +1));
            n1.Add("chrF " + C($"at T = {F(tLow)}: alpha {F(a)} vs alpha 0", Values(records, a, tLow, chrf), plain ? Values(records, 0f, tLow, chrf) : [], +1));
            if (plain) n1.Add("teachers: " + SeedComparison.BySeed($"BLEU alpha {F(a)} teacher vs alpha 0 teacher", Teachers(a), Teachers(0f), +1));
        }

        // M2: with the LS teacher the score falls from the lowest to the highest T (each step shown as a note).
        var c2 = new List<SeedComparison>(); var n2 = new List<string>();
        foreach (float a in smoothed)
        {
            c2.Add(C($"BLEU with the alpha {F(a)} teacher: T = {F(tLow)} vs T = {F(tHigh)}", Values(records, a, tLow, bleu), Values(records, a, tHigh, bleu), +1));
            n2.Add("chrF " + C($"alpha {F(a)}: T = {F(tLow)} vs T = {F(tHigh)}", Values(records, a, tLow, chrf), Values(records, a, tHigh, chrf), +1));
            for (int i = 0; i + 1 < temps.Count; i++)
                n2.Add("step " + C($"BLEU alpha {F(a)}: T = {F(temps[i])} vs T = {F(temps[i + 1])}", Values(records, a, temps[i], bleu), Values(records, a, temps[i + 1], bleu), +1));
        }

        // M3: the interaction. Does the score fall more with the LS teacher than with the alpha 0 teacher? The paper's
        // translation tables show both falling; this reports which falls more.
        var c3 = new List<SeedComparison>(); var n3 = new List<string>();
        if (plain)
        {
            n3.Add("BLEU " + C($"alpha 0 teacher: T = {F(tLow)} vs T = {F(tHigh)}", Values(records, 0f, tLow, bleu), Values(records, 0f, tHigh, bleu), +1));
            foreach (float a in smoothed)
                c3.Add(C($"BLEU drop T = {F(tLow)} -> {F(tHigh)} with the alpha {F(a)} teacher vs with the alpha 0 teacher",
                    Drops(records, a, tLow, tHigh, bleu), Drops(records, 0f, tLow, tHigh, bleu), +1));
        }
        return
        [
            new ClaimResult("M1", $"At T = {F(tLow)}, the student of the LS-trained teacher translates better than the student of the teacher trained without LS.", Verdicts.All(c1), c1, n1),
            new ClaimResult("M2", "With the LS-trained teacher, the student's score falls as T rises.", Verdicts.All(c2), c2, n2),
            new ClaimResult("M3", "The score falls more with the LS-trained teacher than with the teacher trained without LS (the interaction; in the paper's tables the alpha = 0 teacher's students fall too).", Verdicts.All(c3), c3, n3),
        ];
    }
}

/// <summary>report.md of a translation study: the corpus, the layouts of the paper's Tables 7 and 8 (teacher row,
/// a student row per T, a column per teacher alpha, compatible cells marked), greedy scores, the baselines, the
/// teachers' target entropy against T, ten test sentences side by side and the verdict.</summary>
public sealed class TranslationReport(TranslationConfig config, string dir, CorpusManifest manifest, int trainPairs, List<SentencePair> test,
    List<TranslationRecord> records, TranslationScores copy, TranslationScores memory)
{
    static readonly CultureInfo Inv = CultureInfo.InvariantCulture;
    static string F(float v) => v.ToString(Inv);

    static string MeanSd(IReadOnlyList<double> v) => v.Count == 0 ? "n/a"
        : v.Count == 1 ? v[0].ToString("F2", Inv)
        : $"{v.Average().ToString("F2", Inv)} ± {Math.Sqrt(v.Sum(x => (x - v.Average()) * (x - v.Average())) / (v.Count - 1)).ToString("F2", Inv)}";

    static string Cell(IEnumerable<TranslationRecord> rs, Func<TranslationRecord, TranslationScores> scores)
    {
        var list = rs.OrderBy(r => r.Seed).ToList();
        return list.Count == 0 ? "n/a" : $"{MeanSd(list.Select(r => scores(r).Bleu).ToList())} / {MeanSd(list.Select(r => scores(r).ChrF).ToList())}";
    }

    public string Markdown()
    {
        var sb = new StringBuilder();
        string table = config.Pair == "en-de" ? "Table 7" : "Table 8";
        string beam = config.Beam > 1 ? $"beam search (width {config.Beam}, length penalty {F(config.LengthPenalty)})" : "greedy decoding";
        sb.AppendLine($"# Translation study `{config.Name}`: {config.Pair}");
        sb.AppendLine();
        sb.AppendLine($"Corpus {manifest.Name} (SHA-256 {manifest.Sha256[..16]}...): {trainPairs.ToString("N0", Inv)} training pairs of at most {config.MaxCharacters} characters, " +
                      $"{test.Count.ToString("N0", Inv)} test sentences. {(config.SubwordMerges > 0 ? $"Subword vocabularies ({config.SubwordMerges} BPE merges per side, learned on the training split)" : "Character vocabularies")}. Seeds: {string.Join(", ", config.Seeds)} ({(config.ShareTeacher ? $"one teacher per alpha, trained with seed {config.Seeds[0]}, shared by the students" : "a teacher per seed and alpha")}). " +
                      $"Teacher d_model {config.Teacher.ModelDim}, {config.Teacher.Layers}+{config.Teacher.Layers} layers, {config.Teacher.Steps} steps; student d_model {config.Student.ModelDim}, " +
                      $"{config.Student.Layers}+{config.Student.Layers} layers, {config.Student.Steps} steps; beta = {F(config.Beta)}; batches of {config.BatchPairs} pairs. " +
                      "Students read their teacher's full logits, computed once per teacher (no top-k truncation).");
        sb.AppendLine();
        sb.AppendLine($"## {table} layout: BLEU / chrF, {beam}");
        sb.AppendLine();
        AppendGrid(sb, r => r.Main, mark: true);
        sb.AppendLine();
        sb.AppendLine($"Mean ± standard deviation over seeds (the teacher row: over {(TranslationClaims.TeacherShared(config) ? "one teacher per alpha, shared by the seeds" : "the seeds' own teachers")}). Marks compare BLEU: " + Verdicts.MarkLegend);
        if (config.Beam > 1)
        {
            sb.AppendLine();
            sb.AppendLine("Greedy decoding, BLEU / chrF:");
            sb.AppendLine();
            AppendGrid(sb, r => r.Greedy, mark: false);
        }
        sb.AppendLine();
        sb.AppendLine("## Baselines without training (test sentences)");
        sb.AppendLine();
        sb.AppendLine("| baseline | BLEU | chrF |");
        sb.AppendLine("|---|---|---|");
        sb.AppendLine($"| Copy the source | {copy.Bleu.ToString("F2", Inv)} | {copy.ChrF.ToString("F2", Inv)} |");
        sb.AppendLine($"| Translation memory (target of the training source with the most character 3-grams in common) | {memory.Bleu.ToString("F2", Inv)} | {memory.ChrF.ToString("F2", Inv)} |");
        foreach (var t in records.Where(r => r.Kind == "teacher").OrderBy(r => r.TeacherAlpha))
        {
            bool beats = t.Main.ChrF > copy.ChrF && t.Main.ChrF > memory.ChrF;
            sb.AppendLine($"| Teacher alpha = {F(t.TeacherAlpha)} (for comparison) | {t.Main.Bleu.ToString("F2", Inv)} | {t.Main.ChrF.ToString("F2", Inv)} {(beats ? "(beats both)" : "(does not beat both)")} |");
        }
        AppendEntropy(sb);
        AppendSideBySide(sb);
        sb.AppendLine();
        var claims = TranslationClaims.Decide(config, records);
        sb.Append(Verdicts.Markdown(claims, $"Scale: {config.Seeds.Length} student seed(s), BLEU of {beam} on {test.Count} test sentences."));
        sb.AppendLine();
        sb.AppendLine("Run times: " + string.Join(", ", records.GroupBy(r => r.Kind).Select(g => $"{g.Key} {g.Average(r => r.Seconds).ToString("F0", Inv)} s on average")) + ".");
        sb.AppendLine();
        sb.AppendLine("Translations: `translations/<run>.tsv` (source, reference, greedy, beam).");
        return sb.ToString();
    }

    void AppendGrid(StringBuilder sb, Func<TranslationRecord, TranslationScores> scores, bool mark)
    {
        sb.AppendLine("| | " + string.Join(" | ", config.Alphas.Select(a => $"teacher alpha = {F(a)}")) + " |");
        sb.AppendLine("|---|" + string.Concat(config.Alphas.Select(_ => "---|")));
        sb.AppendLine("| Teacher | " + string.Join(" | ", config.Alphas.Select(a => Cell(records.Where(r => r.Kind == "teacher" && r.TeacherAlpha == a), scores))) + " |");
        foreach (float t in config.Temperatures)
        {
            var cells = config.Alphas.Select(a =>
            {
                var rs = records.Where(r => r.Kind == "student" && r.TeacherAlpha == a && r.Temperature == t).ToList();
                string m = mark && a > 0 && config.Alphas.Contains(0f) ? Verdicts.Mark(TranslationClaims.Compare(config, "", TranslationClaims.Values(records, a, t, x => x.Bleu), TranslationClaims.Values(records, 0f, t, x => x.Bleu), +1)) : "";
                return Cell(rs, scores) + m;
            });
            sb.AppendLine($"| Student T = {F(t)} | " + string.Join(" | ", cells) + " |");
        }
        sb.AppendLine($"| Student without a teacher | {Cell(records.Where(r => r.Kind == "baseline"), scores)} |" + string.Concat(config.Alphas.Skip(1).Select(_ => " |")));
    }

    void AppendEntropy(StringBuilder sb)
    {
        var teachers = records.Where(r => r.Kind == "teacher" && r.Entropy != null).OrderBy(r => r.TeacherAlpha).ToList();
        if (teachers.Count == 0) return;
        sb.AppendLine();
        sb.AppendLine("## The teachers' average target entropy against T (nats, training split; the analogue of Table 13)");
        sb.AppendLine();
        sb.AppendLine("| T | " + string.Join(" | ", teachers.Select(t => $"teacher alpha = {F(t.TeacherAlpha)}")) + " |");
        sb.AppendLine("|---|" + string.Concat(teachers.Select(_ => "---|")));
        foreach (float temp in config.EntropyTemperatures)
            sb.AppendLine($"| {F(temp)} | " + string.Join(" | ", teachers.Select(t => t.Entropy!.FirstOrDefault(p => p.Temperature == temp)?.Entropy.ToString("F3", Inv) ?? "n/a")) + " |");
    }

    /// <summary>Ten test sentences: source, reference, the LS teacher, its students at the lowest and highest T (first
    /// seed), read back from the exported translations.</summary>
    void AppendSideBySide(StringBuilder sb)
    {
        float a = config.Alphas.Max(), tLow = config.Temperatures.Min(), tHigh = config.Temperatures.Max();
        int seed = config.Seeds[0];
        string[] ids = [$"teacher-a{F(a)}-s{seed}", $"student-a{F(a)}-T{F(tLow)}-s{seed}", $"student-a{F(a)}-T{F(tHigh)}-s{seed}"];
        var columns = ids.Select(id => Path.Combine(dir, "translations", id + ".tsv")).Select(p => File.Exists(p) ? File.ReadAllLines(p).Skip(1).Select(l => l.Split('\t')).ToList() : null).ToList();
        if (columns.Any(c => c == null || c.Count != test.Count)) return;
        int column = config.Beam > 1 ? 3 : 2;
        // Ten sentences spread over the test split, of some length and starting with a letter (the sorted split opens
        // with punctuation and markup).
        var candidates = Enumerable.Range(0, test.Count).Where(i => test[i].Source.Length >= 12 && char.IsLetter(test[i].Source[0])).ToList();
        var picks = Enumerable.Range(0, Math.Min(10, candidates.Count)).Select(k => candidates[k * candidates.Count / Math.Min(10, candidates.Count)]).ToList();
        sb.AppendLine();
        sb.AppendLine($"## Ten test sentences side by side ({(config.Beam > 1 ? "beam" : "greedy")}; teacher alpha = {F(a)}, its students of seed {seed})");
        sb.AppendLine();
        sb.AppendLine($"| source | reference | teacher | student T = {F(tLow)} | student T = {F(tHigh)} |");
        sb.AppendLine("|---|---|---|---|---|");
        static string Md(string s) => s.Replace("|", "\\|");
        foreach (int i in picks)
            sb.AppendLine($"| {Md(test[i].Source)} | {Md(test[i].Target)} | " + string.Join(" | ", columns.Select(c => Md(c![i].ElementAtOrDefault(column) ?? ""))) + " |");
    }
}
