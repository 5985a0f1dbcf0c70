using System.IO.Compression;
using System.Text;
using LsKd.Experiments;
using LsKd.Experiments.Analysis;
using LsKd.Experiments.Data;
using LsKd.Experiments.Data.Translation;
using LsKd.Experiments.Study;

namespace LsKd.Tests;

/// <summary>The translation study's parts on their own: the FreeDict reader on a generated dictd pair, the translation
/// memory baseline, target entropy against a direct float64 sum, the verdict's directions, and configuration errors.</summary>
public class TranslationStudyPartsTests
{
    static string B64(long v)
    {
        const string digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        if (v == 0) return "A";
        var s = new StringBuilder();
        while (v > 0) { s.Insert(0, digits[(int)(v % 64)]); v /= 64; }
        return s.ToString();
    }

    /// <summary>Writes freedict-eng-deu.index and .dict.dz (gzip) holding the given entries, in dictd's layout.</summary>
    static string MakeDict(string root, IEnumerable<(string Headword, string Body)> entries, Func<string, string>? breakIndex = null)
    {
        Directory.CreateDirectory(root);
        var body = new MemoryStream();
        var index = new StringBuilder();
        foreach (var (head, text) in entries)
        {
            var bytes = Encoding.UTF8.GetBytes(text);
            index.Append($"{head}\t{B64(body.Length)}\t{B64(bytes.Length)}\n");
            body.Write(bytes);
        }
        File.WriteAllText(Path.Combine(root, "freedict-eng-deu.index"), breakIndex?.Invoke(index.ToString()) ?? index.ToString());
        using (var gz = new GZipStream(File.Create(Path.Combine(root, "freedict-eng-deu.dict.dz")), CompressionLevel.Fastest)) body.WriteTo(gz);
        return root;
    }

    [Test]
    public void FreeDictKeepsMultiWordEntriesWithTheirFirstTranslation()
    {
        string root = Path.Combine(Path.GetTempPath(), $"lskd-dict-{Guid.NewGuid():N}");
        try
        {
            MakeDict(root,
            [
                ("adopt a different strategy", "adopt a different strategy /ɐdˈɒpt ɐ dˈɪfɹənt/\neine andere Strategie wählen/fahren\n see: {adopt sth.}\n\n"),
                ("mounting board for curtains", "mounting board for curtains /mˈaʊntɪŋ/\nGardinenleiste <fem>, Karnise <fem> [Ös.]\n see: {x}\n\n"),
                ("break off relations with sb.", "break off relations with sb.\nden Verkehr mit jdm. abbrechen <v, trans>; brechen\n   Synonym: {y}\n\n"),
                ("Fancy meeting you here!", "Fancy meeting you here! /x/\nLustig, dich hier zu treffen!\n\n"),   // a comma inside the sentence stays
                ("dog", "dog /dˈɒɡ/\nHund <masc>\n\n"),                              // one word: left out
                ("take a look at it", "take a look at it /x/\n see: {only a note}\n\n"),  // no translation line: left out
            ]);
            var (splits, manifest) = FreeDict.Load(root);
            var pairs = splits.SelectMany(s => s).OrderBy(p => p.Source, StringComparer.Ordinal).ToList();
            Assert.That(pairs, Is.EqualTo(new[]
            {
                new SentencePair("Fancy meeting you here!", "Lustig, dich hier zu treffen!"),
                new SentencePair("adopt a different strategy", "eine andere Strategie wählen/fahren"),
                new SentencePair("break off relations with sb.", "den Verkehr mit jdm. abbrechen"),
                new SentencePair("mounting board for curtains", "Gardinenleiste"),
            }));
            Assert.That(manifest.Name, Is.EqualTo("freedict-eng-deu"));
            Assert.That(manifest.Pair, Is.EqualTo("en-de"));
            Assert.That(manifest.Sha256, Has.Length.EqualTo(64));
        }
        finally { Directory.Delete(root, true); }
    }

    [Test]
    public void BrokenFreeDictGivesOneLineErrorsNamingTheFile()
    {
        string root = Path.Combine(Path.GetTempPath(), $"lskd-dict-{Guid.NewGuid():N}");
        try
        {
            var missing = Assert.Throws<DataException>(() => FreeDict.Load(root));
            Assert.That(missing!.Message, Does.Contain("freedict-eng-deu.index: not found"));
            MakeDict(root, [("adopt a different strategy", "adopt a different strategy\neine andere Strategie\n")], index => index.Replace("\t", "\tB", StringComparison.Ordinal) + "broken line\n");
            var bad = Assert.Throws<DataException>(() => FreeDict.Load(root));
            Assert.That(bad!.Message, Does.StartWith(Path.Combine(root, "freedict-eng-deu.index") + ": line 1"));
            Assert.That(bad.Message, Does.Not.Contain("\n"));
            File.WriteAllText(Path.Combine(root, "freedict-eng-deu.dict.dz"), "not gzip");
            var notGzip = Assert.Throws<DataException>(() => FreeDict.Load(root));
            Assert.That(notGzip!.Message, Does.Contain("not a dictzip"));
        }
        finally { Directory.Delete(root, true); }
    }

    [Test]
    public void TranslationMemoryReturnsTheTargetOfTheMostSimilarSource()
    {
        var memory = new TranslationMemory(
        [
            new SentencePair("Open the file", "Datei öffnen"),
            new SentencePair("Close the window", "Fenster schließen"),
            new SentencePair("Print the page", "Seite drucken"),
        ]);
        Assert.That(memory.Translate("Close this window"), Is.EqualTo("Fenster schließen"));
        Assert.That(memory.Translate("open a file"), Is.EqualTo("Datei öffnen"));
        Assert.That(memory.Translate("zzzz"), Is.EqualTo(""), "no 3-gram in common: empty hypothesis");
        Assert.That(TranslationMemory.Trigrams("Ab"), Is.EquivalentTo(new[] { " ab", "ab " }));
    }

    [Test]
    public void TargetEntropyMatchesTheDefinition()
    {
        float[] z = [2f, -1f, 0.5f, 3f, -4f];
        foreach (float t in new[] { 0.5f, 1f, 3f, 64f })
        {
            double[] p = z.Select(v => Math.Exp(v / (double)t)).ToArray();
            double sum = p.Sum();
            double expected = -p.Sum(v => v / sum * Math.Log(v / sum));
            Assert.That(Smoothness.AverageEntropy(z, z.Length, t), Is.EqualTo(expected).Within(1e-12), $"T = {t}");
        }
        Assert.That(Smoothness.AverageEntropy(z, z.Length, 1e6), Is.EqualTo(Math.Log(5)).Within(1e-5), "a very high T is uniform");
    }

    static TranslationRecord Student(float alpha, float t, int seed, double bleu) =>
        new($"student-a{alpha}-T{t}-s{seed}", "student", alpha, t, 0f, seed, new TranslationScores(bleu - 1, 30), new TranslationScores(bleu, 30 + bleu / 10), 1, 1, "x");

    [Test]
    public void VerdictFollowsThePaperDirectionsAndNeedsThreeSeeds()
    {
        var config = TranslationConfig.Preset("quick") with { Seeds = [1, 2, 3], Temperatures = [1f, 64f] };
        // LS teacher: 20 at T = 1, 10 at T = 64 (falls by 10); plain teacher: 18 -> 17 (falls by 1).
        double[] noise = [0.1, -0.2, 0.1];
        var records = new List<TranslationRecord>();
        for (int s = 1; s <= 3; s++)
        {
            records.Add(Student(0.1f, 1f, s, 20 + noise[s - 1]));
            records.Add(Student(0.1f, 64f, s, 10 + noise[s - 1]));
            records.Add(Student(0f, 1f, s, 18 + noise[s - 1]));
            records.Add(Student(0f, 64f, s, 17 - noise[s - 1]));
        }
        var claims = TranslationClaims.Decide(config, records).ToDictionary(c => c.Id);
        Assert.That(claims["M1"].Outcome, Is.EqualTo(Outcome.Reproduced));
        Assert.That(claims["M2"].Outcome, Is.EqualTo(Outcome.Reproduced));
        Assert.That(claims["M3"].Outcome, Is.EqualTo(Outcome.Reproduced));
        // Swap the teachers: the LS teacher's student is now worse at T = 1 and falls less.
        var swapped = records.Select(r => r with { TeacherAlpha = r.TeacherAlpha == 0f ? 0.1f : 0f }).ToList();
        var other = TranslationClaims.Decide(config, swapped).ToDictionary(c => c.Id);
        Assert.That(other["M1"].Outcome, Is.EqualTo(Outcome.Contradicted));
        Assert.That(other["M3"].Outcome, Is.EqualTo(Outcome.Contradicted));
        // The verdict uses beam scores when there are any.
        Assert.That(claims["M1"].Comparisons[0].MeanA, Is.EqualTo(20).Within(1e-9));
        // One seed decides nothing.
        var one = TranslationClaims.Decide(config with { Seeds = [1] }, records.Where(r => r.Seed == 1).ToList());
        Assert.That(one.Select(c => c.Outcome), Is.All.EqualTo(Outcome.NotEnoughSeeds));
    }

    [Test]
    public void ConfigurationErrorsNameTheKey()
    {
        string file = Path.Combine(Path.GetTempPath(), $"lskd-tcfg-{Guid.NewGuid():N}.json");
        try
        {
            File.WriteAllText(file, "{ \"teacher\": { \"modelDim\": \"big\" } }");
            var e = Assert.Throws<UsageException>(() => TranslationConfig.FromFile(file));
            Assert.That(e!.Message, Does.StartWith(file + ": invalid value at $.teacher.modelDim"));
            File.WriteAllText(file, "{ \"beams\": 4 }");
            Assert.That(Assert.Throws<UsageException>(() => TranslationConfig.FromFile(file))!.Message, Does.Contain("unknown key beams"));
            var round = TranslationConfig.Preset("quick");
            File.WriteAllText(file, round.ToJson());
            Assert.That(TranslationConfig.FromFile(file).ToJson(), Is.EqualTo(round.ToJson()));
        }
        finally { File.Delete(file); }
        Assert.That(Assert.Throws<UsageException>(() => (TranslationConfig.Preset("quick") with { Corpus = "freedict-eng-deu", Pair = "en-ru" }).Validate())!.Message,
            Does.StartWith("--corpus: freedict-eng-deu is English->German only"));
        Assert.That(Assert.Throws<UsageException>(() => (TranslationConfig.Preset("quick") with { Beam = 0 }).Validate())!.Message, Does.StartWith("beam:"));
        Assert.That(Assert.Throws<UsageException>(() => TranslationConfig.Preset("huge"))!.Message, Does.StartWith("--preset: unknown translation preset 'huge'"));
        foreach (var name in TranslationConfig.PresetNames) Assert.DoesNotThrow(() => TranslationConfig.Preset(name).Validate(), name);
    }
}

/// <summary>The teacher-logit cache: computed in length-sorted, padded batches, gathered into another batch, it gives
/// the teacher's own logits for that batch's real rows (so every student reads the right rows).</summary>
public class TeacherCacheTests
{
    [Test]
    public void GatheredRowsEqualTheTeachersLogitsOnTheBatch()
    {
        var be = Backends.Get("cpu-v512-2t");
        var config = new LsKd.Nets.TransformerConfig { SourceVocab = 12, TargetVocab = 9, ModelDim = 16, Heads = 2, EncoderLayers = 1, DecoderLayers = 1, FeedForward = 32, Dropout = 0.1f, MaxLength = 24 };
        var teacher = new LsKd.Nets.Transformer(be, config, 5);
        var rng = new Random(3);
        var src = Enumerable.Range(0, 300).Select(_ => Enumerable.Range(0, 1 + rng.Next(9)).Select(_ => 4 + rng.Next(8)).ToArray()).ToList();
        var tgt = Enumerable.Range(0, 300).Select(_ => Enumerable.Range(0, 1 + rng.Next(12)).Select(_ => 4 + rng.Next(5)).ToArray()).ToList();
        var cache = TeacherCache.Compute(teacher, src, tgt, config.TargetVocab, padTo: 8);
        Assert.That(cache.Select((rows, i) => rows.Length == (tgt[i].Length + 1) * config.TargetVocab), Is.All.True);
        int[] pick = [7, 250, 3, 99, 150];
        var batch = LsKd.Nets.Seq2SeqBatch.From(pick.Select(i => src[i]).ToList(), pick.Select(i => tgt[i]).ToList());
        var gathered = TeacherCache.Gather(cache, pick, batch.TargetLength, config.TargetVocab);
        float[] direct;
        teacher.Eval();
        using (LsKd.Autograd.Tape.NoGrad()) direct = LsKd.Nets.Seq2Seq.Logits(teacher, batch).ToArray();
        LsKd.Autograd.Tape.Current.Reset();
        for (int b = 0; b < pick.Length; b++)
            for (int t = 0; t < batch.TargetLength; t++)
            {
                bool real = batch.TargetOut[b * batch.TargetLength + t] != LsKd.Nets.TransformerConfig.PadId;
                for (int v = 0; v < config.TargetVocab; v++)
                {
                    int k = (b * batch.TargetLength + t) * config.TargetVocab + v;
                    if (real) Assert.That(gathered[k], Is.EqualTo(direct[k]).Within(1e-4f), $"pair {pick[b]}, position {t}");
                    else Assert.That(gathered[k], Is.EqualTo(0f), "padding rows are 0");
                }
            }
    }
}

/// <summary>Byte-pair-encoding subwords: merges learned by frequency, exact round trips, unknown characters marked.</summary>
public class SubwordVocabularyTests
{
    [Test]
    public void LearnsFrequentPairsAndRoundTrips()
    {
        string[] texts = ["low lower lowest", "low low newer", "wider newer lower"];
        var bpe = new SubwordVocabulary(texts, 20);
        Assert.That(bpe.Merges, Is.GreaterThan(0).And.LessThanOrEqualTo(20));
        // "lo" (and then "low") is the most frequent pair: after the merges the word "low" is a single symbol.
        Assert.That(bpe.Encode("low"), Has.Length.EqualTo(1));
        Assert.That(bpe.Symbols, Does.Contain("low"));
        foreach (var t in texts.Append("lowest newer  wide"))
            Assert.That(bpe.Decode(bpe.Encode(t)), Is.EqualTo(t), t);
        Assert.That(bpe.Encode("lower newer").Length, Is.LessThan("lower newer".Length), "subwords are shorter than characters");
        Assert.That(bpe.Decode(bpe.Encode("lox")), Is.EqualTo("lo\uFFFD"), "an unseen character is UNK");
        Assert.That(bpe.Encode("lower newer").All(id => id >= 4 || id == CharVocabulary.Unk));
        var none = new SubwordVocabulary(texts, 0);
        Assert.That(none.Encode("lower"), Has.Length.EqualTo(5), "no merges: characters");
        Assert.That(new SubwordVocabulary(texts, 20).Symbols, Is.EqualTo(bpe.Symbols), "deterministic");
    }
}
