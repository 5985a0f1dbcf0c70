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

/// <summary>BLEU and chrF of one decoding of the test sentences.</summary>
public sealed record TranslationScores(double Bleu, double ChrF);

/// <summary>A teacher's average target entropy (nats) over the target tokens of the training split at one T.</summary>
public sealed record EntropyPoint(float Temperature, double Entropy);

/// <summary>One finished translation run: what it was, its scores with greedy and beam decoding, its time; a teacher
/// also records its target entropy against T.</summary>
public sealed record TranslationRecord(string Id, string Kind, float TeacherAlpha, float? Temperature, float Alpha, int Seed,
    TranslationScores Greedy, TranslationScores? Beam, double FinalLoss, double Seconds, string CorpusSha256, EntropyPoint[]? Entropy = null)
{
    /// <summary>The scores the tables and the verdict use: beam search when the study decodes with it, else greedy.</summary>
    [System.Text.Json.Serialization.JsonIgnore] public TranslationScores Main => Beam ?? Greedy;
}

/// <summary>
/// The translation study: an English->X corpus (gettext catalogues or FreeDict), character vocabularies, Transformer
/// teachers with token-level LS, students distilled per target token (teacher-forced on the reference prefix, T^2
/// scaling) from the teachers' logits computed once per teacher, baselines without a teacher, seeds; greedy and beam
/// decoding of the test sentences, BLEU and chrF, `translations/&lt;run&gt;.tsv`, the teachers' target entropy
/// against T, and `report.md` (Tables 7 and 8, ten sentences side by side, the verdict). Runs whose record exists are
/// skipped (resume); a folder built from another corpus or configuration is refused.
/// </summary>
public sealed class TranslationStudy(TranslationConfig config, string dir, IBackend backend, CorpusSource corpus, bool fitToCorpus = false)
{
    /// <summary>The study's configuration; with fitToCorpus (a preset), once the corpus is read, its sizes lowered to what
    /// the corpus holds (one notice each, in <see cref="FitNotices"/>). This is what config.json records.</summary>
    public TranslationConfig Config { get; private set; } = config;

    public List<string> FitNotices { get; } = [];

    static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public TranslationStudy(TranslationConfig config, string dir, IBackend backend, string localeRoot)
        : this(config, dir, backend, new CorpusSource(config.Corpus, localeRoot, FreeDict.DefaultRoot)) { }

    List<SentencePair> _train = [], _test = [];
    ITokenizer _sourceVocab = null!, _targetVocab = null!;
    List<int[]> _src = [], _tgt = [];
    CorpusManifest _manifest = null!;

    /// <summary>Loads and filters the corpus; a corpus too small for the configuration is an error before anything
    /// is written.</summary>
    CorpusManifest Prepare(Action<string>? log = null)
    {
        Config.Validate();
        var (splits, manifest) = corpus.Load(Config.Pair);
        _manifest = manifest;
        bool Fits(SentencePair p) => p.Source.Length <= Config.MaxCharacters && p.Target.Length <= Config.MaxCharacters;
        _train = splits[0].Where(Fits).ToList();
        _test = splits[2].Where(Fits).ToList();
        string where = corpus.Describe(Config.Pair);
        if (fitToCorpus)
        {
            Config = Config.FitTo(_train.Count, _test.Count, FitNotices);
            foreach (var notice in FitNotices) log?.Invoke($"corpus: {notice}");
        }
        // A configuration file's sizes are checked, never clamped: it trains on what it says.
        if (Config.TrainPairs > _train.Count)
            throw new DataException($"{where}: trainPairs {Config.TrainPairs} exceeds the {_train.Count} training pairs of at most {Config.MaxCharacters} characters");
        if (Config.TestSentences > _test.Count)
            throw new DataException($"{where}: testSentences {Config.TestSentences} exceeds the {_test.Count} test pairs of at most {Config.MaxCharacters} characters");
        if (Config.TrainPairs > 0) _train = _train.Take(Config.TrainPairs).ToList();
        if (Config.TestSentences > 0) _test = _test.Take(Config.TestSentences).ToList();
        if (_train.Count < Config.BatchPairs || _test.Count == 0)
            throw new DataException($"{where}: only {_train.Count} training and {_test.Count} test pairs of at most {Config.MaxCharacters} characters; the study needs a batch of {Config.BatchPairs}");
        return manifest;
    }

    void BuildVocabularies()
    {
        _sourceVocab = Tokenizer(_train.Select(p => p.Source));
        _targetVocab = Tokenizer(_train.Select(p => p.Target));
        _src = _train.Select(p => _sourceVocab.Encode(p.Source)).ToList();
        _tgt = _train.Select(p => _targetVocab.Encode(p.Target)).ToList();
    }

    /// <summary>The study's time on this backend, from training steps and decodings measured on the spot (writes
    /// nothing): per role, the mean seconds per step after a 3-second warm-up, and the decoding of 64 test sentences by an
    /// untrained model (which runs to the length limit: an upper bound).</summary>
    public (double Seconds, List<string> Lines) Estimate()
    {
        Prepare();
        BuildVocabularies();
        var lines = FitNotices.Select(n => $"corpus: {n}").ToList();
        double StepSeconds(Seq2SeqSettings s, string role)
        {
            var model = NewModel(s, 7);
            using var opt = new AdamW(model.Parameters(), new AdamWConfig(s.Lr, 0.9f, 0.98f, 1e-9f, 0.0001f));
            var rng = new Random(1);
            var batches = EpochBatches(rng);
            // Warm-up for 3 s (the tiered JIT and the buffer pool settle), then the mean of 12 steps on batches of mixed lengths.
            void Step(int i)
            {
                var pick = batches[i % batches.Count];
                var batch = Seq2SeqBatch.From(pick.Select(j => _src[j]).ToList(), pick.Select(j => _tgt[j]).ToList(), PadTo);
                Seq2Seq.TrainStep(model, opt, () => Seq2Seq.LabelSmoothingLoss(model, batch, 0.1f));
            }
            int step = 0;
            for (var warm = Stopwatch.StartNew(); step < 4 || warm.Elapsed.TotalSeconds < 3; step++) Step(step);
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < 12; i++) Step(step++);
            double best = sw.Elapsed.TotalSeconds / 12;
            var sources = _test.Take(64).Select(p => _sourceVocab.Encode(p.Source)).ToList();
            var timer = Stopwatch.StartNew();
            Decode(model, sources, 1);
            if (Config.Beam > 1) Decode(model, sources, Config.Beam);
            double decode = timer.Elapsed.TotalSeconds * _test.Count / sources.Count;
            lines.Add($"{role}: {best * 1000:F0} ms per step x {s.Steps} steps, decoding {decode:F0} s at most");
            return best * s.Steps + decode;
        }
        double teacher = StepSeconds(Config.Teacher, "teacher"), student = StepSeconds(Config.Student, "student");
        int teachers = Config.Alphas.Length * (Config.ShareTeacher ? 1 : Config.Seeds.Length), students = Config.Seeds.Length * (Config.Alphas.Length * Config.Temperatures.Length + 1);
        double total = teachers * teacher + students * student;
        lines.Add($"{Config.Pair}: {teachers} teachers x {teacher:F0} s + {students} students x {student:F0} s = {total / 60:F1} min " +
                  $"({_train.Count:N0} training pairs, {_test.Count:N0} test sentences)");
        return (total, lines);
    }

    public List<TranslationRecord> Run(Action<string>? log = null)
    {
        var manifest = Prepare(log);
        Directory.CreateDirectory(dir);
        using var studyLock = StudyLock.Acquire(dir);
        CheckCorpus(manifest);
        BuildVocabularies();

        var records = new List<TranslationRecord>();
        var teachers = new Dictionary<float, Transformer>();
        var caches = new Dictionary<float, Lazy<float[][]>>();
        foreach (int seed in Config.Seeds)
        {
            // A seed's own teachers (or the first seed's, shared); their logit caches (about 60 MB per 1,000 pairs) are
            // dropped when the next seed trains its own.
            if (!Config.ShareTeacher || seed == Config.Seeds[0])
            {
                caches.Clear();
                foreach (float alpha in Config.Alphas)
                {
                    string id = $"teacher-a{StudyConfig.F(alpha)}-s{seed}";
                    var model = NewModel(Config.Teacher, (ulong)seed * 1000 + 1);
                    var cache = new Lazy<float[][]>(() => TeacherLogits(model));
                    records.Add(TrainOrLoad(id, "teacher", alpha, null, alpha, seed, model, Config.Teacher, null, default, cache, log));
                    teachers[alpha] = model;
                    caches[alpha] = cache;
                }
            }
            foreach (float alpha in Config.Alphas)
                foreach (float t in Config.Temperatures)
                {
                    string id = $"student-a{StudyConfig.F(alpha)}-T{StudyConfig.F(t)}-s{seed}";
                    records.Add(TrainOrLoad(id, "student", alpha, t, 0f, seed, NewModel(Config.Student, (ulong)seed * 1000 + 2), Config.Student,
                        teachers[alpha], new KdConfig(t, Config.Beta), caches[alpha], log));
                }
            records.Add(TrainOrLoad($"baseline-s{seed}", "baseline", 0f, null, 0f, seed, NewModel(Config.Student, (ulong)seed * 1000 + 2), Config.Student, null, default, null, log));
        }
        var references = _test.Select(p => p.Target).ToList();
        var memory = new TranslationMemory(_train);
        var copy = Score(_test.Select(p => p.Source).ToList(), references);
        var recall = Score(_test.Select(p => memory.Translate(p.Source)).ToList(), references);
        AtomicFile.WriteText(Path.Combine(dir, "report.md"), new TranslationReport(Config, dir, manifest, _train.Count, _test, records, copy, recall).Markdown());
        return records;
    }

    /// <summary>Characters, or subwords learned on the training split when the configuration asks for merges.</summary>
    ITokenizer Tokenizer(IEnumerable<string> texts) => Config.SubwordMerges > 0 ? new SubwordVocabulary(texts, Config.SubwordMerges) : new CharVocabulary(texts);

    /// <summary>Batches are padded to a multiple of this length: few distinct shapes, so buffers are reused.</summary>
    const int PadTo = 8;

    Transformer NewModel(Seq2SeqSettings s, ulong seed) => new(backend, s.Model(_sourceVocab.Size, _targetVocab.Size, PadTo * ((Config.MaxCharacters + 2 + PadTo - 1) / PadTo)), seed);

    /// <summary>The corpus a folder was built from is recorded once; a different corpus is refused, so runs from two
    /// corpora never share a table.</summary>
    void CheckCorpus(CorpusManifest manifest)
    {
        string path = Path.Combine(dir, "corpus.json");
        if (File.Exists(path))
        {
            CorpusManifest? old;
            try { old = JsonSerializer.Deserialize<CorpusManifest>(File.ReadAllText(path)); }
            catch (JsonException e) { throw new DataException($"{path}: not a corpus manifest: {JsonErrors.Describe(e)}"); }
            if (old == null || old.Sha256 != manifest.Sha256 || old.Pair != manifest.Pair)
                throw new UsageException($"{dir}: holds runs built from another corpus ({old?.Name} {old?.Sha256?[..Math.Min(12, old.Sha256.Length)]}...) than {manifest.Name} {manifest.Sha256[..12]}...; use another --out");
        }
        string cfg = Path.Combine(dir, "config.json");
        string json = JsonSerializer.Serialize(Config, Indented);
        if (File.Exists(cfg) && File.ReadAllText(cfg) != json) throw new UsageException($"{dir}: holds a translation study with another configuration; use another --out");
        if (!File.Exists(path)) AtomicFile.WriteText(path, JsonSerializer.Serialize(manifest, Indented));
        AtomicFile.WriteText(cfg, json);
    }

    TranslationRecord TrainOrLoad(string id, string kind, float teacherAlpha, float? temperature, float alpha, int seed, Transformer model, Seq2SeqSettings settings,
        Transformer? teacher, KdConfig kd, Lazy<float[][]>? teacherCache, Action<string>? log)
    {
        string recordPath = Path.Combine(dir, "runs", id + ".json"), checkpoint = Path.Combine(dir, "checkpoints", id + ".safetensors");
        if (File.Exists(recordPath) && File.Exists(checkpoint))
        {
            TranslationRecord? done;
            try { done = JsonSerializer.Deserialize<TranslationRecord>(File.ReadAllText(recordPath)); }
            catch (JsonException e) { throw new DataException($"{recordPath}: not a run record: {JsonErrors.Describe(e)}; delete it to train the run again"); }
            if (done == null) throw new DataException($"{recordPath}: holds null instead of a run record; delete it to train the run again");
            Checkpoint.Load(model, checkpoint);
            return done;
        }
        var sw = Stopwatch.StartNew();
        Tape.Current.Pool.Dispose();   // the last run's shapes (another model size) are of no use to this one
        float loss = Train(id, model, settings, seed, alpha, teacher == null ? null : teacherCache!.Value, kd);
        if (float.IsNaN(loss)) throw new InvalidOperationException($"{id}: the loss stayed NaN or infinite");
        var sources = _test.Select(p => _sourceVocab.Encode(p.Source)).ToList();
        var references = _test.Select(p => p.Target).ToList();
        var greedy = Decode(model, sources, 1);
        var beam = Config.Beam > 1 ? Decode(model, sources, Config.Beam) : null;
        EntropyPoint[]? entropy = kind == "teacher" ? TargetEntropy(teacherCache!.Value) : null;
        Directory.CreateDirectory(Path.GetDirectoryName(checkpoint)!);
        Directory.CreateDirectory(Path.GetDirectoryName(recordPath)!);
        Directory.CreateDirectory(Path.Combine(dir, "translations"));
        Checkpoint.Save(model, checkpoint, new Dictionary<string, string> { ["run"] = id, ["corpus_sha256"] = _manifest.Sha256 });
        var tsv = new StringBuilder("source\treference\tgreedy\tbeam\n");
        for (int i = 0; i < _test.Count; i++) tsv.Append($"{Clean(_test[i].Source)}\t{Clean(references[i])}\t{Clean(greedy[i])}\t{Clean((beam ?? greedy)[i])}\n");
        AtomicFile.WriteText(Path.Combine(dir, "translations", id + ".tsv"), tsv.ToString());
        var record = new TranslationRecord(id, kind, teacherAlpha, temperature, alpha, seed, Score(greedy, references), beam == null ? null : Score(beam, references),
            loss, sw.Elapsed.TotalSeconds, _manifest.Sha256, entropy);
        AtomicFile.WriteText(recordPath, JsonSerializer.Serialize(record, Indented));   // written last: a record means a finished run
        log?.Invoke($"{id}: greedy BLEU {record.Greedy.Bleu:F2} chrF {record.Greedy.ChrF:F2}" +
                    (record.Beam is { } b ? $", beam {Config.Beam} BLEU {b.Bleu:F2} chrF {b.ChrF:F2}" : "") + $", final loss {loss:F3}, {sw.Elapsed.TotalSeconds:F1} s");
        return record;
    }

    static TranslationScores Score(List<string> hypotheses, List<string> references) =>
        new(TranslationMetrics.CorpusBleu(hypotheses, references).Score, TranslationMetrics.CorpusChrF(hypotheses, references));

    static string Clean(string s) => s.Replace('\t', ' ').Replace('\n', ' ');

    /// <summary>Teacher-forced training on batches of pairs of similar target length (less padding); the student
    /// reads its teacher's logits from the cache. Returns the mean loss of the last 20 steps.</summary>
    float Train(string id, Transformer model, Seq2SeqSettings settings, int seed, float alpha, float[][]? teacherLogits, KdConfig kd)
    {
        var rng = new Random(seed * 7919 + id.Aggregate(0, (h, c) => (h * 31 + c) % 1_000_003));   // stable across processes, unlike string.GetHashCode
        using var opt = new AdamW(model.Parameters(), new AdamWConfig(settings.Lr, 0.9f, 0.98f, 1e-9f, 0.0001f));
        model.Train();
        var plan = new Queue<int[]>();
        int vocab = _targetVocab.Size;
        var recent = new Queue<float>();
        for (int step = 1; step <= settings.Steps; step++)
        {
            if (plan.Count == 0) foreach (var b in EpochBatches(rng)) plan.Enqueue(b);
            var pick = plan.Dequeue();
            var batch = Seq2SeqBatch.From(pick.Select(i => _src[i]).ToList(), pick.Select(i => _tgt[i]).ToList(), PadTo);
            opt.LearningRate = LearningRateSchedules.WarmupCosine(step, settings.Warmup, settings.Steps + 1, settings.Lr, settings.Lr * 0.05f);
            float loss = Seq2Seq.TrainStep(model, opt, () =>
            {
                if (teacherLogits == null) return Seq2Seq.LabelSmoothingLoss(model, batch, alpha);
                var teacher = Tape.Current.Floats(model.Backend, TeacherCache.Gather(teacherLogits, pick, batch.TargetLength, vocab), [batch.Size * batch.TargetLength, vocab]);
                var labels = Tape.Current.Ints(model.Backend, batch.TargetOut);
                return Ops.TokenKdLoss(Seq2Seq.Logits(model, batch), teacher, labels, kd, TransformerConfig.PadId, batch.RealTargetTokens);
            });
            if (float.IsNaN(loss)) throw new InvalidOperationException($"{id}: the loss became NaN or infinite at step {step}");
            recent.Enqueue(loss);
            if (recent.Count > 20) recent.Dequeue();
        }
        return recent.Average();
    }

    /// <summary>One epoch of batches: the pairs sorted by target length (random order within a length), cut into
    /// batches, the batches shuffled.</summary>
    List<int[]> EpochBatches(Random rng)
    {
        var keys = Enumerable.Range(0, _tgt.Count).Select(i => (Length: _tgt[i].Length, Tie: rng.Next(), Index: i)).OrderBy(k => k.Length).ThenBy(k => k.Tie).Select(k => k.Index).ToArray();
        var batches = keys.Chunk(Config.BatchPairs).Where(c => c.Length == Config.BatchPairs || keys.Length < Config.BatchPairs).ToList();
        for (int i = batches.Count - 1; i > 0; i--) { int j = rng.Next(i + 1); (batches[i], batches[j]) = (batches[j], batches[i]); }
        return batches;
    }

    float[][] TeacherLogits(Transformer teacher) => TeacherCache.Compute(teacher, _src, _tgt, _targetVocab.Size, PadTo);

    /// <summary>Average entropy of softmax(z / T) over the target tokens of the training split (Table 13's analogue).</summary>
    EntropyPoint[] TargetEntropy(float[][] logits)
    {
        int vocab = _targetVocab.Size;
        return Config.EntropyTemperatures.Select(t =>
        {
            double sum = 0; long rows = 0;
            object gate = new();
            Parallel.For(0, logits.Length, () => (0.0, 0L), (i, _, acc) =>
            {
                var z = logits[i];
                int rows = z.Length / vocab;
                acc = (acc.Item1 + rows * Smoothness.AverageEntropy(z, vocab, t), acc.Item2 + rows);
                return acc;
            }, acc => { lock (gate) { sum += acc.Item1; rows += acc.Item2; } });
            return new EntropyPoint(t, sum / rows);
        }).ToArray();
    }

    /// <summary>Decodes the test sentences in chunks of similar length and returns the hypotheses in test order.</summary>
    List<string> Decode(Transformer model, List<int[]> sources, int beam)
    {
        var hypotheses = new string[sources.Count];
        var order = Enumerable.Range(0, sources.Count).OrderBy(i => sources[i].Length).ToArray();
        foreach (var chunk in order.Chunk(beam > 1 ? 64 : 128))
        {
            var ids = Translator.Translate(model, chunk.Select(i => sources[i]).ToList(), beam, Config.LengthPenalty, a: 1.2f, b: 10);
            for (int k = 0; k < chunk.Length; k++) hypotheses[chunk[k]] = _targetVocab.Decode(ids[k]);
        }
        return hypotheses.ToList();
    }
}

/// <summary>A teacher's logits on every training pair, teacher-forced on the reference with dropout off: per pair the
/// rows of its target tokens and EOS. Computed once and read by every student of that teacher; the full vocabulary
/// is kept (a few hundred MB to 1 GB at this corpus size), so no top-k truncation changes the loss.</summary>
public static class TeacherCache
{
    public static float[][] Compute(Transformer teacher, IReadOnlyList<int[]> sources, IReadOnlyList<int[]> targets, int vocab, int padTo)
    {
        teacher.Eval();
        var result = new float[targets.Count][];
        var order = Enumerable.Range(0, targets.Count).OrderBy(i => targets[i].Length).ToArray();   // similar lengths: little padding
        foreach (var chunk in order.Chunk(128))
        {
            var batch = Seq2SeqBatch.From(chunk.Select(i => sources[i]).ToList(), chunk.Select(i => targets[i]).ToList(), padTo);
            float[] logits;
            using (Tape.NoGrad()) logits = Seq2Seq.Logits(teacher, batch).ToArray();
            Tape.Current.Reset();
            for (int r = 0; r < chunk.Length; r++)
                result[chunk[r]] = logits.AsSpan(r * batch.TargetLength * vocab, (targets[chunk[r]].Length + 1) * vocab).ToArray();
        }
        return result;
    }

    /// <summary>The cached rows of the picked pairs laid out as a batch's logits [batch x target length, vocab];
    /// padding rows stay 0 (the loss ignores them).</summary>
    public static float[] Gather(float[][] cache, IReadOnlyList<int> pick, int targetLength, int vocab)
    {
        var host = new float[pick.Count * targetLength * vocab];
        for (int i = 0; i < pick.Count; i++) cache[pick[i]].CopyTo(host, i * targetLength * vocab);
        return host;
    }
}
