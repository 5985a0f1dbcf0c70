using System.Diagnostics;
using System.Text;
using System.Text.Json;
using LsKd.Autograd;
using LsKd.Experiments.Analysis;
using LsKd.Experiments.Data;
using LsKd.Experiments.Data.Translation;
using LsKd.Kernels;
using LsKd.Nets;

namespace LsKd.Experiments.Study;

/// <summary>Sizes and schedule of one Transformer role (teacher or student) of the translation study.</summary>
public sealed record Seq2SeqSettings
{
    public int ModelDim { get; init; } = 128;
    public int Heads { get; init; } = 4;
    public int Layers { get; init; } = 2;
    public int FeedForward { get; init; } = 512;
    public float Dropout { get; init; } = 0.1f;
    public int Steps { get; init; } = 1000;
    public float Lr { get; init; } = 1e-3f;
    public int Warmup { get; init; } = 100;

    public TransformerConfig Model(int sourceVocab, int targetVocab, int maxLength) => new()
    {
        SourceVocab = sourceVocab, TargetVocab = targetVocab, ModelDim = ModelDim, Heads = Heads, EncoderLayers = Layers, DecoderLayers = Layers,
        FeedForward = FeedForward, Dropout = Dropout, MaxLength = maxLength,
    };
}

/// <summary>The translation study's configuration: a language pair from the gettext catalogues, Transformer teachers
/// trained with token-level label smoothing alpha, students distilled per target token at each T (beta as in the
/// paper), baselines without a teacher, seeds. Presets: smoke (the tests), quick.</summary>
public sealed record TranslationConfig
{
    public string Name { get; init; } = "translation";
    public string Pair { get; init; } = "en-de";
    /// <summary>Pairs longer than this (source or target characters) are left out, for time.</summary>
    public int MaxCharacters { get; init; } = 60;
    /// <summary>Training pairs used (0 = all that fit MaxCharacters).</summary>
    public int TrainPairs { get; init; }
    /// <summary>Test sentences decoded for BLEU and chrF (0 = the whole test split).</summary>
    public int TestSentences { get; init; }
    public int BatchPairs { get; init; } = 64;
    public Seq2SeqSettings Teacher { get; init; } = new();
    public Seq2SeqSettings Student { get; init; } = new() { ModelDim = 64, FeedForward = 256 };
    public float[] Alphas { get; init; } = [0f, 0.1f];
    public float[] Temperatures { get; init; } = [1f, 2f, 3f, 64f];
    public float Beta { get; init; } = 1f;
    public int[] Seeds { get; init; } = [1];

    public static IReadOnlyList<string> PresetNames { get; } = ["smoke", "quick"];

    public static TranslationConfig Preset(string name) => name switch
    {
        "smoke" => new TranslationConfig
        {
            Name = "translation-smoke", TrainPairs = 256, TestSentences = 16, BatchPairs = 32, MaxCharacters = 30,
            Teacher = new Seq2SeqSettings { ModelDim = 32, Heads = 2, Layers = 1, FeedForward = 64, Steps = 20, Warmup = 5, Lr = 3e-3f },
            Student = new Seq2SeqSettings { ModelDim = 16, Heads = 2, Layers = 1, FeedForward = 32, Steps = 10, Warmup = 5, Lr = 3e-3f },
            Temperatures = [1f, 64f],
        },
        "quick" => new TranslationConfig
        {
            Name = "translation-quick", TestSentences = 300, MaxCharacters = 40,
            Teacher = new Seq2SeqSettings { ModelDim = 128, Heads = 4, Layers = 2, FeedForward = 512, Steps = 800, Warmup = 80, Lr = 2e-3f },
            Student = new Seq2SeqSettings { ModelDim = 64, Heads = 4, Layers = 2, FeedForward = 256, Steps = 400, Warmup = 40, Lr = 2e-3f },
        },
        _ => throw new UsageException($"--preset: unknown translation preset '{name}'; valid presets: {string.Join(", ", PresetNames)}"),
    };

    public void Validate()
    {
        if (Pair is not ("en-de" or "en-ru")) throw new UsageException($"--pair: unknown pair '{Pair}'; valid pairs: en-de, en-ru");
        if (MaxCharacters < 2 || BatchPairs < 1 || TrainPairs < 0 || TestSentences < 0) throw new UsageException("translation: sizes must be positive");
        foreach (var a in Alphas) UsageException.Check("alphas", HyperParameters.Alpha(a));
        foreach (var t in Temperatures) UsageException.Check("temperatures", HyperParameters.Temperature(t));
        UsageException.Check("beta", HyperParameters.Beta(Beta));
    }
}

/// <summary>One finished translation run: what it was, its scores on the test sentences, its time.</summary>
public sealed record TranslationRecord(string Id, string Kind, float TeacherAlpha, float? Temperature, float Alpha, int Seed, double Bleu, double ChrF,
    double FinalLoss, double Seconds, string CorpusSha256);

/// <summary>
/// The translation study: English->X corpora from the gettext catalogues, character vocabularies, Transformer teachers
/// with token-level LS, students distilled per target token (teacher-forced on the reference prefix, T^2 scaling),
/// baselines; greedy decoding of the test sentences, BLEU and chrF, `translations/&lt;run&gt;.tsv` and `report.md`.
/// Runs whose record exists are skipped (resume), and a folder built from another corpus is refused.
/// </summary>
public sealed class TranslationStudy(TranslationConfig config, string dir, IBackend backend, string localeRoot)
{
    public List<TranslationRecord> Run(Action<string>? log = null)
    {
        config.Validate();
        var (splits, manifest) = ParallelCorpus.FromCatalogues(config.Pair[3..], localeRoot);
        bool Fits(SentencePair p) => p.Source.Length <= config.MaxCharacters && p.Target.Length <= config.MaxCharacters;
        var train = splits[0].Where(Fits).ToList();
        if (config.TrainPairs > 0) train = train.Take(config.TrainPairs).ToList();
        var test = splits[2].Where(Fits).ToList();
        if (config.TestSentences > 0) test = test.Take(config.TestSentences).ToList();
        if (train.Count < config.BatchPairs || test.Count == 0)
            throw new DataException($"{localeRoot}: only {train.Count} training and {test.Count} test pairs of at most {config.MaxCharacters} characters; the study needs a batch of {config.BatchPairs}");
        Directory.CreateDirectory(dir);
        using var studyLock = StudyLock.Acquire(dir);
        CheckCorpus(manifest);
        var sourceVocab = new CharVocabulary(train.Select(p => p.Source));
        var targetVocab = new CharVocabulary(train.Select(p => p.Target));
        var src = train.Select(p => sourceVocab.Encode(p.Source)).ToList();
        var tgt = train.Select(p => targetVocab.Encode(p.Target)).ToList();
        int maxLength = config.MaxCharacters + 2;
        var records = new List<TranslationRecord>();
        var teachers = new Dictionary<float, Transformer>();
        foreach (float alpha in config.Alphas)
        {
            string id = $"teacher-a{StudyConfig.F(alpha)}-s{config.Seeds[0]}";
            var model = new Transformer(backend, config.Teacher.Model(sourceVocab.Size, targetVocab.Size, maxLength), (ulong)config.Seeds[0] * 1000 + 1);
            records.Add(TrainOrLoad(id, "teacher", alpha, null, alpha, config.Seeds[0], model, config.Teacher, null, default, src, tgt, test, sourceVocab, targetVocab, manifest, log));
            teachers[alpha] = model;
        }
        foreach (int seed in config.Seeds)
        {
            foreach (float alpha in config.Alphas)
                foreach (float t in config.Temperatures)
                {
                    string id = $"student-a{StudyConfig.F(alpha)}-T{StudyConfig.F(t)}-s{seed}";
                    var model = new Transformer(backend, config.Student.Model(sourceVocab.Size, targetVocab.Size, maxLength), (ulong)seed * 1000 + 2);
                    records.Add(TrainOrLoad(id, "student", alpha, t, 0f, seed, model, config.Student, teachers[alpha], new KdConfig(t, config.Beta), src, tgt, test, sourceVocab, targetVocab, manifest, log));
                }
            string baseId = $"baseline-s{seed}";
            var baseline = new Transformer(backend, config.Student.Model(sourceVocab.Size, targetVocab.Size, maxLength), (ulong)seed * 1000 + 2);
            records.Add(TrainOrLoad(baseId, "baseline", 0f, null, 0f, seed, baseline, config.Student, null, default, src, tgt, test, sourceVocab, targetVocab, manifest, log));
        }
        AtomicFile.WriteText(Path.Combine(dir, "report.md"), Report(records, manifest, train.Count, test.Count));
        return records;
    }

    /// <summary>The corpus a folder was built from is recorded once; a different corpus is refused, so runs from two
    /// corpora never share a table.</summary>
    void CheckCorpus(CorpusManifest manifest)
    {
        string path = Path.Combine(dir, "corpus.json");
        if (File.Exists(path))
        {
            var old = JsonSerializer.Deserialize<CorpusManifest>(File.ReadAllText(path));
            if (old == null || old.Sha256 != manifest.Sha256 || old.Pair != manifest.Pair)
                throw new UsageException($"{dir}: holds runs built from another corpus ({old?.Pair} {old?.Sha256[..12]}...) than {manifest.Pair} {manifest.Sha256[..12]}...; use another --out");
        }
        else AtomicFile.WriteText(path, JsonSerializer.Serialize(manifest, new JsonSerializerOptions { WriteIndented = true }));
        string cfg = Path.Combine(dir, "config.json");
        string json = JsonSerializer.Serialize(config, new JsonSerializerOptions { WriteIndented = true });
        if (File.Exists(cfg) && File.ReadAllText(cfg) != json) throw new UsageException($"{dir}: holds a translation study with another configuration; use another --out");
        AtomicFile.WriteText(cfg, json);
    }

    TranslationRecord TrainOrLoad(string id, string kind, float teacherAlpha, float? temperature, float alpha, int seed, Transformer model, Seq2SeqSettings settings,
        Transformer? teacher, KdConfig kd, List<int[]> src, List<int[]> tgt, List<SentencePair> test, CharVocabulary sourceVocab, CharVocabulary targetVocab,
        CorpusManifest manifest, Action<string>? log)
    {
        string recordPath = Path.Combine(dir, "runs", id + ".json"), checkpoint = Path.Combine(dir, "checkpoints", id + ".safetensors");
        if (File.Exists(recordPath) && File.Exists(checkpoint))
        {
            Checkpoint.Load(model, checkpoint);
            return JsonSerializer.Deserialize<TranslationRecord>(File.ReadAllText(recordPath))!;
        }
        var sw = Stopwatch.StartNew();
        var rng = new Random(seed * 7919 + id.Length);
        using var opt = new AdamW(model.Parameters(), new AdamWConfig(settings.Lr, 0.9f, 0.98f, 1e-9f, 0.0001f));
        model.Train();
        teacher?.Eval();
        float loss = float.NaN;
        for (int step = 1; step <= settings.Steps; step++)
        {
            var pick = Enumerable.Range(0, config.BatchPairs).Select(_ => rng.Next(src.Count)).ToList();
            var batch = Seq2SeqBatch.From(pick.Select(i => src[i]).ToList(), pick.Select(i => tgt[i]).ToList());
            opt.LearningRate = LearningRateSchedules.WarmupCosine(step, settings.Warmup, settings.Steps + 1, settings.Lr, settings.Lr * 0.05f);
            loss = Seq2Seq.TrainStep(model, opt, () =>
            {
                if (teacher == null) return Seq2Seq.LabelSmoothingLoss(model, batch, alpha);
                Tensor teacherLogits;
                using (Tape.NoGrad()) teacherLogits = Seq2Seq.Logits(teacher, batch);
                var labels = Tape.Current.Ints(model.Backend, batch.TargetOut);
                return Ops.TokenKdLoss(Seq2Seq.Logits(model, batch), teacherLogits, labels, kd, TransformerConfig.PadId, batch.RealTargetTokens);
            });
            if (float.IsNaN(loss)) throw new InvalidOperationException($"{id}: the loss became NaN or infinite at step {step}");
        }
        var hypotheses = Translator.Translate(model, test.Select(p => sourceVocab.Encode(p.Source)).ToList(), beam: 1, a: 1.2f, b: 10)
            .Select(h => targetVocab.Decode(h)).ToList();
        var references = test.Select(p => p.Target).ToList();
        double bleu = TranslationMetrics.CorpusBleu(hypotheses, references).Score, chrf = TranslationMetrics.CorpusChrF(hypotheses, references);
        Directory.CreateDirectory(Path.GetDirectoryName(checkpoint)!);
        Directory.CreateDirectory(Path.GetDirectoryName(recordPath)!);
        Directory.CreateDirectory(Path.Combine(dir, "translations"));
        Checkpoint.Save(model, checkpoint, new Dictionary<string, string> { ["run"] = id, ["corpus_sha256"] = manifest.Sha256 });
        var tsv = new StringBuilder("source\treference\thypothesis\n");
        for (int i = 0; i < test.Count; i++) tsv.Append($"{Clean(test[i].Source)}\t{Clean(references[i])}\t{Clean(hypotheses[i])}\n");
        AtomicFile.WriteText(Path.Combine(dir, "translations", id + ".tsv"), tsv.ToString());
        var record = new TranslationRecord(id, kind, teacherAlpha, temperature, alpha, seed, bleu, chrf, loss, sw.Elapsed.TotalSeconds, manifest.Sha256);
        AtomicFile.WriteText(recordPath, JsonSerializer.Serialize(record, new JsonSerializerOptions { WriteIndented = true }));   // written last: a record means a finished run
        log?.Invoke($"{id}: BLEU {bleu:F2}, chrF {chrf:F2}, final loss {loss:F3}, {sw.Elapsed.TotalSeconds:F1} s");
        return record;
    }

    static string Clean(string s) => s.Replace('\t', ' ').Replace('\n', ' ');

    /// <summary>The layout of the paper's Tables 7 and 8: the teacher row, a student row per T, a column per teacher
    /// alpha; BLEU with chrF beside it, means over seeds.</summary>
    string Report(List<TranslationRecord> records, CorpusManifest manifest, int trainPairs, int testPairs)
    {
        var sb = new StringBuilder();
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        sb.AppendLine($"# Translation study `{config.Name}`: {config.Pair}");
        sb.AppendLine();
        sb.AppendLine($"Corpus {manifest.Name} (SHA-256 {manifest.Sha256[..16]}...): {trainPairs.ToString("N0", inv)} training pairs of at most {config.MaxCharacters} characters, " +
                      $"{testPairs.ToString("N0", inv)} test sentences decoded greedily. Character vocabularies. Seeds: {string.Join(", ", config.Seeds)}. " +
                      $"Teacher d_model {config.Teacher.ModelDim}, {config.Teacher.Layers}+{config.Teacher.Layers} layers, {config.Teacher.Steps} steps; student d_model {config.Student.ModelDim}, " +
                      $"{config.Student.Layers}+{config.Student.Layers} layers, {config.Student.Steps} steps; beta = {config.Beta.ToString(inv)}.");
        sb.AppendLine();
        sb.AppendLine("BLEU / chrF on the test sentences (mean over seeds):");
        sb.AppendLine();
        sb.AppendLine("| | " + string.Join(" | ", config.Alphas.Select(a => $"teacher alpha = {a.ToString(inv)}")) + " |");
        sb.AppendLine("|---|" + string.Concat(config.Alphas.Select(_ => "---|")));
        string Cell(IEnumerable<TranslationRecord> rs)
        {
            var list = rs.ToList();
            return list.Count == 0 ? "n/a" : $"{list.Average(r => r.Bleu).ToString("F2", inv)} / {list.Average(r => r.ChrF).ToString("F2", inv)}";
        }
        sb.AppendLine("| Teacher | " + string.Join(" | ", config.Alphas.Select(a => Cell(records.Where(r => r.Kind == "teacher" && r.TeacherAlpha == a)))) + " |");
        foreach (float t in config.Temperatures)
            sb.AppendLine($"| Student T = {t.ToString(inv)} | " + string.Join(" | ", config.Alphas.Select(a => Cell(records.Where(r => r.Kind == "student" && r.TeacherAlpha == a && r.Temperature == t)))) + " |");
        sb.AppendLine($"| Student without a teacher | {Cell(records.Where(r => r.Kind == "baseline"))} |" + string.Concat(config.Alphas.Skip(1).Select(_ => " |")));
        sb.AppendLine();
        sb.AppendLine("Translations: `translations/<run>.tsv` (source, reference, hypothesis). This first version decides no claims; with fewer than three seeds it would say so.");
        return sb.ToString();
    }
}
