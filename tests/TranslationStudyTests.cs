using LsKd.Experiments;
using LsKd.Experiments.Data.Translation;
using LsKd.Experiments.Study;

namespace LsKd.Tests;

/// <summary>The translation study's smoke preset end to end on generated catalogues (no Debian data needed): every run
/// recorded with BLEU and chrF, translations exported, the report's table, resume, and a folder built from another
/// corpus refused.</summary>
[TestFixture, NonParallelizable]
public class TranslationStudyTests
{
    static string MakeLocale(string root, int seed)
    {
        // A toy language: every English word reversed and capitalised, 600 short messages.
        var rng = new Random(seed);
        string[] words = ["open", "file", "save", "close", "print", "find", "copy", "paste", "undo", "redo", "new", "quit", "help", "edit", "view"];
        var entries = new List<MoEntry>();
        var seen = new HashSet<string>();
        while (entries.Count < 600)
        {
            string source = string.Join(' ', Enumerable.Range(0, 1 + rng.Next(3)).Select(_ => words[rng.Next(words.Length)])) + $" {rng.Next(1000)}";
            if (!seen.Add(source)) continue;
            string target = string.Join(' ', source.Split(' ').Select(w => char.ToUpperInvariant(w[^1]) + new string(w[..^1].Reverse().ToArray())));
            entries.Add(new MoEntry(null, source, null, [target]));
        }
        string dir = Path.Combine(root, "de", "LC_MESSAGES");
        Directory.CreateDirectory(dir);
        File.WriteAllBytes(Path.Combine(dir, "coreutils.mo"), MoCatalog.Write(entries));
        return root;
    }

    [Test]
    public void SmokePresetRunsResumesAndRefusesAnotherCorpus()
    {
        string root = Path.Combine(Path.GetTempPath(), $"lskd-translation-{Guid.NewGuid():N}");
        try
        {
            string locale = MakeLocale(Path.Combine(root, "locale"), 1);
            string dir = Path.Combine(root, "out");
            var config = TranslationConfig.Preset("smoke");
            var be = Backends.Get("cpu-v512-2t");
            var records = new TranslationStudy(config, dir, be, locale).Run();
            int expected = config.Alphas.Length + config.Seeds.Length * (config.Alphas.Length * config.Temperatures.Length + 1);
            Assert.That(records, Has.Count.EqualTo(expected));
            Assert.That(records.All(r => double.IsFinite(r.Greedy.Bleu) && r.Greedy.Bleu >= 0 && r.Greedy.Bleu <= 100 && double.IsFinite(r.Greedy.ChrF) && r.Beam != null));
            foreach (var r in records)
            {
                Assert.That(File.Exists(Path.Combine(dir, "runs", r.Id + ".json")), r.Id);
                Assert.That(File.ReadAllLines(Path.Combine(dir, "translations", r.Id + ".tsv")), Has.Length.EqualTo(config.TestSentences + 1), r.Id);
            }
            string report = File.ReadAllText(Path.Combine(dir, "report.md"));
            Assert.That(report, Does.Contain("| Student T = 64 |").And.Contain("| Teacher |").And.Contain("teacher alpha = 0.1"));
            Assert.That(report, Does.Contain("## Ten test sentences side by side").And.Contain("target entropy against T").And.Contain("| Copy the source |")
                .And.Contain("Translation memory").And.Contain("## Verdict").And.Contain("not enough seeds"));
            int sideBySide = report.Split('\n').SkipWhile(l => !l.StartsWith("## Ten test sentences", StringComparison.Ordinal)).Skip(4).TakeWhile(l => l.StartsWith('|')).Count();
            Assert.That(sideBySide, Is.EqualTo(10), "ten sentences side by side");
            var teacher = records.First(r => r.Kind == "teacher");
            Assert.That(teacher.Entropy!.Select(p => p.Temperature), Is.EqualTo(config.EntropyTemperatures));
            Assert.That(teacher.Entropy![1].Entropy, Is.GreaterThan(teacher.Entropy[0].Entropy), "entropy rises with T");
            // Resume: nothing is trained again, the same records come back.
            var again = new TranslationStudy(config, dir, be, locale).Run();
            Assert.That(again.Select(r => (r.Id, r.Greedy.Bleu, r.Seconds)), Is.EqualTo(records.Select(r => (r.Id, r.Greedy.Bleu, r.Seconds))));
            // Another corpus in the same folder is refused before anything is written.
            string other = MakeLocale(Path.Combine(root, "other"), 2);
            var e = Assert.Throws<UsageException>(() => new TranslationStudy(config, dir, be, other).Run());
            Assert.That(e!.Message, Does.Contain("another corpus"));
        }
        finally { Directory.Delete(root, true); }
    }

    [Test]
    public void EverySeedTrainsItsOwnTeachersUnlessShared()
    {
        string root = Path.Combine(Path.GetTempPath(), $"lskd-translation-{Guid.NewGuid():N}");
        try
        {
            string locale = MakeLocale(Path.Combine(root, "locale"), 1);
            var be = Backends.Get("cpu-v512-2t");
            var config = TranslationConfig.Preset("smoke") with { Seeds = [1, 2], Temperatures = [1f], TestSentences = 4 };
            var own = new TranslationStudy(config, Path.Combine(root, "own"), be, locale).Run();
            Assert.That(own.Where(r => r.Kind == "teacher").Select(r => r.Id), Is.EqualTo(new[] { "teacher-a0-s1", "teacher-a0.1-s1", "teacher-a0-s2", "teacher-a0.1-s2" }));
            Assert.That(File.ReadAllText(Path.Combine(root, "own", "report.md")), Does.Contain("a teacher per seed and alpha"));
            var shared = new TranslationStudy(config with { ShareTeacher = true }, Path.Combine(root, "shared"), be, locale).Run();
            Assert.That(shared.Where(r => r.Kind == "teacher").Select(r => r.Id), Is.EqualTo(new[] { "teacher-a0-s1", "teacher-a0.1-s1" }));
            Assert.That(File.ReadAllText(Path.Combine(root, "shared", "report.md")), Does.Contain("shared by the students"));
            // The seed-1 teachers are the same either way (same seed, same data): their scores agree.
            Assert.That(shared.First(r => r.Id == "teacher-a0-s1").Greedy.Bleu, Is.EqualTo(own.First(r => r.Id == "teacher-a0-s1").Greedy.Bleu));
        }
        finally { Directory.Delete(root, true); }
    }

    [Test]
    public void DryRunMeasuresAndWritesNothing()
    {
        string root = Path.Combine(Path.GetTempPath(), $"lskd-translation-{Guid.NewGuid():N}");
        try
        {
            string locale = MakeLocale(Path.Combine(root, "locale"), 1);
            string dir = Path.Combine(root, "out");
            var config = TranslationConfig.Preset("smoke");
            var (seconds, lines) = new TranslationStudy(config, dir, Backends.Get("cpu-v512-2t"), locale).Estimate();
            Assert.That(seconds, Is.GreaterThan(0).And.LessThan(600));
            Assert.That(lines, Has.Count.EqualTo(3));
            Assert.That(lines[2], Does.StartWith("en-de: 2 teachers x").And.Contain("+ 5 students x"));
            Assert.That(Directory.Exists(dir), Is.False, "a dry run writes nothing");
        }
        finally { Directory.Delete(root, true); }
    }

    /// <summary>A preset larger than the corpus is fitted to it, one notice per size; the same sizes in a
    /// configuration file are refused naming the key.</summary>
    [Test]
    public void APresetIsFittedToASmallCorpusAConfigurationIsNot()
    {
        string root = Path.Combine(Path.GetTempPath(), $"lskd-translation-{Guid.NewGuid():N}");
        try
        {
            string locale = MakeLocale(Path.Combine(root, "locale"), 1);
            var big = TranslationConfig.Preset("smoke") with { TrainPairs = 100000, TestSentences = 5000, BatchPairs = 100000 };
            var source = new CorpusSource(big.Corpus, locale, FreeDict.DefaultRoot);
            var be = Backends.Get("cpu-v512-2t");
            var fitted = new TranslationStudy(big, Path.Combine(root, "fitted"), be, source, fitToCorpus: true);
            var (_, lines) = fitted.Estimate();
            Assert.That(fitted.FitNotices, Has.Count.EqualTo(3));
            Assert.That(lines[0], Does.StartWith("corpus: trainPairs 100000 -> "));
            Assert.That(fitted.Config.TrainPairs, Is.InRange(100, 600));
            Assert.That(fitted.Config.BatchPairs, Is.EqualTo(fitted.Config.TrainPairs));
            Assert.That(fitted.Config.TestSentences, Is.InRange(10, 600));
            var e = Assert.Throws<LsKd.Experiments.Data.DataException>(() => new TranslationStudy(big, Path.Combine(root, "strict"), be, source).Run());
            Assert.That(e!.Message, Does.Contain("trainPairs 100000 exceeds the"));
            Assert.That(Directory.Exists(Path.Combine(root, "strict")), Is.False, "nothing written");
        }
        finally { Directory.Delete(root, true); }
    }

    [Test]
    public void MissingCatalogueAndUnknownPairAreOneLineErrors()
    {
        string root = Path.Combine(Path.GetTempPath(), $"lskd-translation-{Guid.NewGuid():N}");
        var be = Backends.Get("cpu-v512-2t");
        var e = Assert.Throws<LsKd.Experiments.Data.DataException>(() => new TranslationStudy(TranslationConfig.Preset("smoke"), root, be, root).Run());
        Assert.That(e!.Message, Does.Contain("no message catalogues for 'de'"));
        Assert.That(Directory.Exists(root), Is.False, "nothing written");
        var u = Assert.Throws<UsageException>(() => new TranslationStudy(TranslationConfig.Preset("smoke") with { Pair = "en-fr" }, root, be, root).Run());
        Assert.That(u!.Message, Does.Contain("unknown pair 'en-fr'"));
    }
}

/// <summary>`lskd translation` and `lskd corpus` on bad input: one line naming the file or flag, exit code 2, nothing
/// written.</summary>
[TestFixture, NonParallelizable]
public class TranslationCliTests
{
    [Test]
    public void BadInputIsOneLineExitTwoAndWritesNothing()
    {
        string root = Path.Combine(Path.GetTempPath(), $"lskd-tcli-{Guid.NewGuid():N}");
        string outDir = Path.Combine(root, "out");
        try
        {
            void Expect(string[] args, params string[] fragments)
            {
                var (code, error) = CliRunner.Run(args);
                Assert.That(code, Is.EqualTo(2), error);
                Assert.That(error.Trim().Split('\n'), Has.Length.EqualTo(1), error);
                foreach (var f in fragments) Assert.That(error, Does.Contain(f));
                Assert.That(Directory.Exists(outDir), Is.False, "nothing written: " + string.Join(' ', args));
            }
            Expect(["translation", "--preset", "smoke", "--pair", "en-fr", "--out", outDir], "--pair", "en-fr");
            Expect(["translation", "--preset", "smoke", "--corpus", "wiki", "--out", outDir], "--corpus", "wiki");
            Expect(["translation", "--preset", "tiny", "--out", outDir], "--preset", "tiny");
            Expect(["translation", "--preset", "smoke", "--locale-root", Path.Combine(root, "none"), "--out", outDir], Path.Combine(root, "none", "de", "LC_MESSAGES"));
            Expect(["translation", "--preset", "smoke", "--corpus", "freedict-eng-deu", "--dict-root", Path.Combine(root, "none"), "--out", outDir], "freedict-eng-deu.index: not found");
            // A catalogue with a wrong magic names the file.
            string dir = Path.Combine(root, "locale", "de", "LC_MESSAGES");
            Directory.CreateDirectory(dir);
            File.WriteAllBytes(Path.Combine(dir, "coreutils.mo"), new byte[64]);
            Expect(["translation", "--preset", "smoke", "--locale-root", Path.Combine(root, "locale"), "--out", outDir], "coreutils.mo", "magic");
            // Catalogues whose entries are all filtered out: an empty corpus.
            File.WriteAllBytes(Path.Combine(dir, "coreutils.mo"), MoCatalog.Write([new MoEntry(null, "%s not found", null, ["%s nicht gefunden"])]));
            Expect(["translation", "--preset", "smoke", "--locale-root", Path.Combine(root, "locale"), "--out", outDir], "no sentence pairs");
            Expect(["corpus", "--pair", "en-xx"], "--pair", "en-xx");
        }
        finally { if (Directory.Exists(root)) Directory.Delete(root, true); }
    }
}
