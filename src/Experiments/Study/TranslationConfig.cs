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

/// <summary>The translation study's configuration for one language pair: the corpus, Transformer teachers trained with
/// token-level label smoothing alpha, students distilled per target token at each T (beta as in the paper),
/// baselines without a teacher, seeds, decoding. Presets: smoke (the tests), quick, standard, paper.</summary>
public sealed record TranslationConfig
{
    public string Name { get; init; } = "translation";
    /// <summary>gettext (the message catalogues) or freedict-eng-deu (en-de only).</summary>
    public string Corpus { get; init; } = "gettext";
    public string Pair { get; init; } = "en-de";
    /// <summary>Pairs longer than this (source or target characters) are left out, for time.</summary>
    public int MaxCharacters { get; init; } = 60;
    /// <summary>Training pairs used (0 = all that fit MaxCharacters).</summary>
    public int TrainPairs { get; init; }
    /// <summary>Test sentences decoded for BLEU and chrF (0 = the whole test split).</summary>
    public int TestSentences { get; init; }
    public int BatchPairs { get; init; } = 64;
    /// <summary>0: character vocabularies; above 0: byte-pair-encoding subwords with this many merges, learned on the
    /// training split (source and target separately).</summary>
    public int SubwordMerges { get; init; }
    public Seq2SeqSettings Teacher { get; init; } = new();
    public Seq2SeqSettings Student { get; init; } = new() { ModelDim = 64, FeedForward = 256 };
    public float[] Alphas { get; init; } = [0f, 0.1f];
    public float[] Temperatures { get; init; } = [1f, 2f, 3f, 64f];
    public float Beta { get; init; } = 1f;
    /// <summary>Seeds: each trains its own teachers (one per alpha) and their students, unless <see cref="ShareTeacher"/>.</summary>
    public int[] Seeds { get; init; } = [1];
    /// <summary>One teacher per alpha, trained with the first seed, for the students of every seed: faster, but the
    /// seeds then vary the students only, and the verdict decides nothing stronger than inconclusive.</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingDefault)]
    public bool ShareTeacher { get; init; }
    /// <summary>Beam width for the second decoding (1 = greedy only).</summary>
    public int Beam { get; init; } = 4;
    public float LengthPenalty { get; init; } = 1f;
    /// <summary>Temperatures at which the teachers' target entropy is reported.</summary>
    public float[] EntropyTemperatures { get; init; } = [1f, 2f, 3f, 4f, 8f, 16f, 64f];

    public static IReadOnlyList<string> PresetNames { get; } = ["smoke", "quick", "standard", "paper"];
    public static readonly string[] Pairs = ["en-de", "en-ru"];
    public static readonly string[] Corpora = ["gettext", FreeDict.Name];
    /// <summary>The quick and standard students' steps, measured 2026-12-07 against the quick preset's teacher (33.04
    /// BLEU, beam 4, 300 test sentences): 1,800 steps gave a T = 1 student 20.86 BLEU (63 %), 2,400 gave 27.87 (84 %).</summary>
    const int StandardStudentSteps = 2400;

    /// <summary>The pairs a preset runs when --pair is not given: en-de (Table 7), both for the paper preset. The
    /// standard preset's teachers per seed and 2,400-step students took 73 min for en-de from a fresh clone on the 2-core
    /// AMD machine (2026-12-07, docs/STUDY.md); add `--pair en-ru` for Table 8.</summary>
    public static string[] PresetPairs(string preset) => preset is "paper" ? Pairs : ["en-de"];

    public static TranslationConfig Preset(string name) => name switch
    {
        "smoke" => new TranslationConfig
        {
            Name = "translation-smoke", TrainPairs = 256, TestSentences = 16, BatchPairs = 32, MaxCharacters = 30, Beam = 2, SubwordMerges = 40,
            Teacher = new Seq2SeqSettings { ModelDim = 32, Heads = 2, Layers = 1, FeedForward = 64, Steps = 20, Warmup = 5, Lr = 3e-3f },
            Student = new Seq2SeqSettings { ModelDim = 16, Heads = 2, Layers = 1, FeedForward = 32, Steps = 10, Warmup = 5, Lr = 3e-3f },
            Temperatures = [1f, 64f], EntropyTemperatures = [1f, 64f],
        },
        // Measured on 2 cores (docs/STUDY.md): BPE subwords beat characters at equal time, so the presets use them.
        // Students chosen by measurement (2026-12-06, en-de, one alpha = 0 teacher of 33.5 BLEU on 300 test sentences,
        // T = 1 students): d_model 64 for 1,000 steps reached 35 % of the teacher's BLEU, for 3,000 steps 73 %
        // (76 % at lr 5e-3); d_model 128 for 1,500 steps 78 %; d_model 96 (feed-forward 384) for 2,400 steps 89 %.
        // 3,200 teacher steps give within 0.5 BLEU of 4,800.
        "quick" => new TranslationConfig
        {
            Name = "translation-quick", TestSentences = 300, MaxCharacters = 40, SubwordMerges = 1000,
            Teacher = new Seq2SeqSettings { ModelDim = 128, Heads = 4, Layers = 2, FeedForward = 512, Steps = 3200, Warmup = 200, Lr = 3e-3f },
            Student = new Seq2SeqSettings { ModelDim = 96, Heads = 4, Layers = 2, FeedForward = 384, Steps = StandardStudentSteps, Warmup = 200, Lr = 3e-3f },
        },
        // Three seeds, each with its own two teachers, so the verdict holds teacher variance; the whole test split.
        "standard" => Preset("quick") with { Name = "translation-standard", Seeds = [1, 2, 3], TestSentences = 0 },
        // For a GPU: the base Transformer's sizes on the whole corpus; no time was measured on a GPU yet (docs/STUDY.md).
        "paper" => new TranslationConfig
        {
            Name = "translation-paper", MaxCharacters = ParallelCorpus.MaxCharacters, BatchPairs = 128, Seeds = [1, 2, 3], Beam = 5, SubwordMerges = 1000,
            Teacher = new Seq2SeqSettings { ModelDim = 512, Heads = 8, Layers = 6, FeedForward = 2048, Steps = 20000, Warmup = 2000, Lr = 7e-4f },
            Student = new Seq2SeqSettings { ModelDim = 256, Heads = 4, Layers = 3, FeedForward = 1024, Steps = 10000, Warmup = 1000, Lr = 1e-3f },
        },
        _ => throw new UsageException($"--preset: unknown translation preset '{name}'; valid presets: {string.Join(", ", PresetNames)}"),
    };

    /// <summary>A configuration written as JSON (camelCase keys, as <see cref="ToJson"/> writes them); unknown keys and
    /// wrong types are one-line errors naming the file.</summary>
    public static TranslationConfig FromFile(string path)
    {
        var c = ConfigFile.Read<TranslationConfig>(path);
        if (c.Teacher == null || c.Student == null || c.Alphas == null || c.Temperatures == null || c.Seeds == null || c.EntropyTemperatures == null || c.Name == null || c.Pair == null || c.Corpus == null)
            throw new UsageException($"{path}: a key is null; leave it out to take the default");
        return c;
    }

    /// <summary>A preset fitted to a corpus smaller than its sizes (pairs of at most MaxCharacters): trainPairs,
    /// testSentences and batchPairs above what the corpus holds are lowered to it, one notice each.</summary>
    public TranslationConfig FitTo(int trainAvailable, int testAvailable, List<string> notices)
    {
        int Cap(string key, int value, int available, string what)
        {
            if (value <= available || available < 1) return value;   // an empty split stays an error, not a fit
            notices.Add($"{key} {value} -> {available}: the corpus holds {available} {what} of at most {MaxCharacters} characters");
            return available;
        }
        int train = Cap("trainPairs", TrainPairs, trainAvailable, "training pairs");
        return this with
        {
            TrainPairs = train,
            TestSentences = Cap("testSentences", TestSentences, testAvailable, "test pairs"),
            BatchPairs = Cap("batchPairs", BatchPairs, train > 0 ? train : trainAvailable, "training pairs"),
        };
    }

    public string ToJson() => System.Text.Json.JsonSerializer.Serialize(this, ConfigFile.Options);

    public void Validate()
    {
        if (!Pairs.Contains(Pair)) throw new UsageException($"--pair: unknown pair '{Pair}'; valid pairs: {string.Join(", ", Pairs)}");
        if (!Corpora.Contains(Corpus)) throw new UsageException($"--corpus: unknown corpus '{Corpus}'; valid corpora: {string.Join(", ", Corpora)}");
        if (Corpus == FreeDict.Name && Pair != "en-de") throw new UsageException($"--corpus: {FreeDict.Name} is English->German only, not {Pair}");
        if (MaxCharacters < 2 || MaxCharacters > ParallelCorpus.MaxCharacters) throw new UsageException($"maxCharacters: must be between 2 and {ParallelCorpus.MaxCharacters}, got {MaxCharacters}");
        if (BatchPairs < 1 || TrainPairs < 0 || TestSentences < 0) throw new UsageException("translation: batchPairs must be positive, trainPairs and testSentences not negative");
        if (SubwordMerges < 0 || SubwordMerges > 32000) throw new UsageException($"subwordMerges: must be between 0 and 32000, got {SubwordMerges}");
        if (Beam < 1 || Beam > 16) throw new UsageException($"beam: must be between 1 and 16, got {Beam}");
        if (!(LengthPenalty >= 0 && LengthPenalty <= 4)) throw new UsageException($"lengthPenalty: must be between 0 and 4, got {LengthPenalty}");
        if (Seeds.Length == 0 || Alphas.Length == 0 || Temperatures.Length == 0 || EntropyTemperatures.Length == 0)
            throw new UsageException("translation: seeds, alphas, temperatures and entropyTemperatures need at least one value each");
        foreach (var (role, s) in new[] { ("teacher", Teacher), ("student", Student) })
            if (s.ModelDim < 1 || s.Heads < 1 || s.ModelDim % s.Heads != 0 || s.Layers < 1 || s.FeedForward < 1 || s.Steps < 1 || s.Warmup < 0 || !(s.Lr > 0) || !(s.Dropout is >= 0 and < 1))
                throw new UsageException($"{role}: modelDim must be a positive multiple of heads, layers, feedForward and steps positive, lr > 0, dropout in [0, 1)");
        foreach (var a in Alphas) UsageException.Check("alphas", HyperParameters.Alpha(a));
        foreach (var t in Temperatures.Concat(EntropyTemperatures)) UsageException.Check("temperatures", HyperParameters.Temperature(t));
        UsageException.Check("beta", HyperParameters.Beta(Beta));
    }
}

/// <summary>Where a translation corpus is read from: the gettext catalogues under a locale root, or FreeDict under a
/// dictd root.</summary>
public sealed record CorpusSource(string Corpus, string LocaleRoot, string DictRoot)
{
    public (List<SentencePair>[] Splits, CorpusManifest Manifest) Load(string pair) =>
        Corpus == FreeDict.Name ? FreeDict.Load(DictRoot) : ParallelCorpus.FromCatalogues(pair[3..], LocaleRoot);

    public string Describe(string pair) => Corpus == FreeDict.Name ? Path.Combine(DictRoot, FreeDict.Name + ".index") : Path.Combine(LocaleRoot, pair[3..], "LC_MESSAGES");
}
