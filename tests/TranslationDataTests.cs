using System.Text;
using LsKd.Experiments.Analysis;
using LsKd.Experiments.Data;
using LsKd.Experiments.Data.Translation;

namespace LsKd.Tests;

/// <summary>The translation data and metrics: the .mo reader on catalogues written in both byte orders (contexts,
/// plural forms, charsets) and on broken files, the corpus filter and split, the character vocabulary, and BLEU and
/// chrF against hand-computed values and NLTK's corpus_bleu.</summary>
[TestFixture]
public class TranslationDataTests
{
    static readonly MoEntry[] Entries =
    [
        new(null, "Open file", null, ["Datei öffnen"]),
        new("menu", "Quit", null, ["Beenden"]),
        new(null, "%d file", "%d files", ["%d Datei", "%d Dateien"]),
        new(null, "Untranslated", null, [""]),
    ];

    [TestCase(false)]
    [TestCase(true)]
    public void ReadsCataloguesInBothByteOrders(bool bigEndian)
    {
        var bytes = MoCatalog.Write(Entries, bigEndian);
        var (charset, entries) = MoCatalog.Parse("test.mo", bytes);
        Assert.That(charset, Is.EqualTo("UTF-8"));
        Assert.That(entries, Has.Count.EqualTo(4));
        var open = entries.Single(e => e.Source == "Open file");
        Assert.That(open.Translations, Is.EqualTo(new[] { "Datei öffnen" }));
        var quit = entries.Single(e => e.Source == "Quit");
        Assert.That(quit.Context, Is.EqualTo("menu"));
        var plural = entries.Single(e => e.Source == "%d file");
        Assert.That(plural.PluralSource, Is.EqualTo("%d files"));
        Assert.That(plural.Translations, Is.EqualTo(new[] { "%d Datei", "%d Dateien" }));
    }

    [Test]
    public void DecodesTheHeaderCharset()
    {
        // A Latin-1 catalogue: "öffnen" is one byte per letter and must not be read as UTF-8.
        var bytes = MoCatalog.Write([new(null, "Open", null, ["PLACEHOLDER"])], charset: "ISO-8859-1");
        string text = Encoding.Latin1.GetString(bytes).Replace("PLACEHOLDER", "\u00f6ffnen_abcd");   // same byte length
        var (charset, entries) = MoCatalog.Parse("latin1.mo", Encoding.Latin1.GetBytes(text));
        Assert.That(charset, Is.EqualTo("ISO-8859-1"));
        Assert.That(entries.Single().Translations[0], Is.EqualTo("\u00f6ffnen_abcd"));
    }

    [Test]
    public void BrokenCataloguesGiveOneLineErrorsNamingTheFile()
    {
        var good = MoCatalog.Write(Entries);
        var wrongMagic = (byte[])good.Clone(); wrongMagic[0] = 0;
        Assert.That(Assert.Throws<DataException>(() => MoCatalog.Parse("a.mo", wrongMagic))!.Message, Does.StartWith("a.mo: wrong magic"));
        Assert.That(Assert.Throws<DataException>(() => MoCatalog.Parse("b.mo", good[..20]))!.Message, Does.StartWith("b.mo: ").And.Contain("too short"));
        Assert.That(Assert.Throws<DataException>(() => MoCatalog.Parse("c.mo", good[..100]))!.Message, Does.StartWith("c.mo: ").And.Contain("truncated"));
        Assert.That(Assert.Throws<DataException>(() => MoCatalog.Parse("d.mo", good[..(good.Length - 30)]))!.Message, Does.StartWith("d.mo: ").And.Contain("truncated"));
        var huge = (byte[])good.Clone(); BitConverter.GetBytes(int.MaxValue).CopyTo(huge, 8);   // string count
        Assert.That(Assert.Throws<DataException>(() => MoCatalog.Parse("e.mo", huge))!.Message, Does.StartWith("e.mo: header claims"));
    }

    [Test]
    public void FilterKeepsPlainMessagesOnly()
    {
        Assert.That(ParallelCorpus.Reject("Open file", "Datei öffnen"), Is.Null);
        Assert.That(ParallelCorpus.Reject("Open file", ""), Is.EqualTo("untranslated"));
        Assert.That(ParallelCorpus.Reject("OK", "OK"), Is.EqualTo("untranslated"));
        Assert.That(ParallelCorpus.Reject("%s not found", "%s nicht gefunden"), Is.EqualTo("format string"));
        Assert.That(ParallelCorpus.Reject("Hello {name}", "Hallo {name}"), Is.EqualTo("format string"));
        Assert.That(ParallelCorpus.Reject("Line one\nline two", "Zeile eins\nZeile zwei"), Is.EqualTo("several lines"));
        Assert.That(ParallelCorpus.Reject(new string('a', 200), "bb"), Is.EqualTo("too long"));
        Assert.That(ParallelCorpus.Reject("--", "--x"), Is.EqualTo("no letter"));
    }

    [Test]
    public void CorpusFromCataloguesIsFilteredDeduplicatedAndSplitByTheSource()
    {
        string root = Path.Combine(Path.GetTempPath(), $"lskd-locale-{Guid.NewGuid():N}");
        try
        {
            string dir = Path.Combine(root, "de", "LC_MESSAGES");
            Directory.CreateDirectory(dir);
            var many = Enumerable.Range(0, 400).Select(i => new MoEntry(null, $"Message number {i}", null, [$"Meldung Nummer {i}"])).ToList();
            File.WriteAllBytes(Path.Combine(dir, "alpha.mo"), MoCatalog.Write(many.Concat(Entries)));
            // A second catalogue repeats a source with another translation: the first catalogue (sorted) wins.
            File.WriteAllBytes(Path.Combine(dir, "beta.mo"), MoCatalog.Write([new(null, "Open file", null, ["Öffnen"]), new(null, "Save", null, ["Speichern"])], bigEndian: true));
            var (splits, manifest) = ParallelCorpus.FromCatalogues("de", root, ["beta", "alpha", "missing"]);
            var all = splits.SelectMany(s => s).ToList();
            Assert.That(all, Has.Count.EqualTo(400 + 2 + 1));   // 400 + Open file + Quit + Save; plural and untranslated out
            Assert.That(all.Single(p => p.Source == "Open file").Target, Is.EqualTo("Datei öffnen"));
            Assert.That(manifest.Train + manifest.Valid + manifest.Test, Is.EqualTo(all.Count));
            Assert.That(manifest.Train, Is.InRange(330, 390), "about 90 % train");
            Assert.That(manifest.PairsPerDomain.Keys, Is.EquivalentTo(new[] { "alpha", "beta" }));
            foreach (var (split, index) in splits.Select((s, i) => (s, i)))
                Assert.That(split.All(p => ParallelCorpus.SplitOf(p.Source) == index));
            // Variants of one message share a split: the hash reads letters and digits only, lower-cased.
            Assert.That(new[] { "_Open File", "&Open file", "open file.", "Open  File…" }.Select(ParallelCorpus.SplitOf).Distinct().Count(), Is.EqualTo(1));
            Assert.That(ParallelCorpus.Normalise("_Open File…"), Is.EqualTo("openfile"));
            var (_, again) = ParallelCorpus.FromCatalogues("de", root, ["alpha", "beta"]);
            Assert.That(again.Sha256, Is.EqualTo(manifest.Sha256), "the order of the domain list does not matter");
            Assert.That(Assert.Throws<DataException>(() => ParallelCorpus.FromCatalogues("ru", root))!.Message, Does.Contain("no message catalogues for 'ru'"));
            Assert.That(Assert.Throws<DataException>(() => ParallelCorpus.FromCatalogues("de", root, ["missing"]))!.Message, Does.Contain("no sentence pairs"));
        }
        finally { Directory.Delete(root, true); }
    }

    [Test]
    public void CharacterVocabularyRoundTripsAndMarksUnknowns()
    {
        var vocab = new CharVocabulary(["Datei öffnen", "Beenden"]);
        Assert.That(vocab.Size, Is.EqualTo(4 + "Datei öfnBd".Distinct().Count()));
        Assert.That(vocab.Decode(vocab.Encode("Datei öffnen")), Is.EqualTo("Datei öffnen"));
        Assert.That(vocab.Encode("X"), Is.EqualTo(new[] { CharVocabulary.Unk }));
        Assert.That(vocab.Encode("D").Single(), Is.GreaterThanOrEqualTo(4));
    }

    [Test]
    public void Tokenize13aSplitsPunctuationLikeMteval()
    {
        Assert.That(TranslationMetrics.Tokenize13a("Hello, world! It costs 3.50 (approx.)"),
            Is.EqualTo(new[] { "Hello", ",", "world", "!", "It", "costs", "3.50", "(", "approx", ".", ")" }));
        Assert.That(TranslationMetrics.Tokenize13a("a-b 2-3 &amp; x"), Is.EqualTo(new[] { "a-b", "2", "-", "3", "&", "x" }));
    }

    [Test]
    public void BleuByHand()
    {
        // Hypothesis "the cat sat on the mat" against "the cat is on the mat": 1-grams 5/6, 2-grams 3/5, 3-grams 1/4,
        // 4-grams 0/3 -> smoothed to 1 / (2 * 3); equal lengths, no brevity penalty.
        var r = TranslationMetrics.CorpusBleu(["the cat sat on the mat"], ["the cat is on the mat"]);
        Assert.That(r.Matches, Is.EqualTo(new long[] { 5, 3, 1, 0 }));
        Assert.That(r.Totals, Is.EqualTo(new long[] { 6, 5, 4, 3 }));
        double expected = Math.Exp((Math.Log(500.0 / 6) + Math.Log(60) + Math.Log(25) + Math.Log(100.0 / 6)) / 4);
        Assert.That(r.Score, Is.EqualTo(expected).Within(1e-9));
        Assert.That(TranslationMetrics.CorpusBleu(["a b c d"], ["a b c d"]).Score, Is.EqualTo(100).Within(1e-9));
        // A short hypothesis: brevity penalty exp(1 - 6 / 4).
        var shortHyp = TranslationMetrics.CorpusBleu(["the cat on mat"], ["the cat is on the mat"]);
        Assert.That(shortHyp.BrevityPenalty, Is.EqualTo(Math.Exp(1 - 6.0 / 4)).Within(1e-12));
    }

    /// <summary>Golden values from NLTK 3.8 corpus_bleu (no smoothing) on 13a tokens, made by
    /// tests/Fixtures/bleu_golden.py; every case has at least one match of every order, where sacreBLEU's
    /// smoothing does nothing, so the two definitions agree.</summary>
    [Test]
    public void BleuMatchesNltkCorpusBleu()
    {
        var lines = File.ReadAllLines(Path.Combine(TestContext.CurrentContext.TestDirectory, "Fixtures", "bleu_golden.tsv"));
        var cases = lines.Where(l => l.Length > 0 && !l.StartsWith('#')).Select(l => l.Split('\t')).GroupBy(p => p[0]).ToList();
        Assert.That(cases, Has.Count.GreaterThanOrEqualTo(3));
        foreach (var c in cases)
        {
            var rows = c.ToList();
            double nltk = double.Parse(rows[0][3], System.Globalization.CultureInfo.InvariantCulture);
            var r = TranslationMetrics.CorpusBleu(rows.Select(x => x[1]).ToList(), rows.Select(x => x[2]).ToList());
            Assert.That(r.Score / 100, Is.EqualTo(nltk).Within(1e-9), $"case {c.Key}");
        }
    }

    [Test]
    public void ChrFByHand()
    {
        Assert.That(TranslationMetrics.CorpusChrF(["abc"], ["abc"]), Is.EqualTo(100).Within(1e-9));
        Assert.That(TranslationMetrics.CorpusChrF(["xyz"], ["abc"]), Is.EqualTo(0).Within(1e-9));
        // "ab" against "abc" (orders 1 and 2 occur in both): P = (1 + 1) / 2 = 1, R = (2/3 + 1/2) / 2 = 7/12;
        // F2 = 5 P R / (4 P + R).
        double p = 1, r = 7.0 / 12;
        Assert.That(TranslationMetrics.CorpusChrF(["ab"], ["abc"]), Is.EqualTo(100 * 5 * p * r / (4 * p + r)).Within(1e-9));
        // Whitespace is ignored.
        Assert.That(TranslationMetrics.CorpusChrF(["a b c"], ["abc"]), Is.EqualTo(100).Within(1e-9));
    }

    [Test]
    public void InstallScriptInstallsThePackagesOfTheDefaultCatalogues()
    {
        var dir = new DirectoryInfo(TestContext.CurrentContext.TestDirectory);
        while (dir != null && !File.Exists(Path.Combine(dir.FullName, "LsKd.sln"))) dir = dir.Parent;
        string script = File.ReadAllText(Path.Combine(dir!.FullName, "scripts", "install-deps.sh"));
        var block = System.Text.RegularExpressions.Regex.Match(script, @"catalogues=\(([^)]*)\)").Groups[1].Value;
        var listed = block.Split([' ', '\n'], StringSplitOptions.RemoveEmptyEntries).ToHashSet();
        Assert.That(listed, Is.EquivalentTo(ParallelCorpus.DomainPackages.Values.Distinct()));
        Assert.That(ParallelCorpus.DefaultDomains.Where(d => !ParallelCorpus.DomainPackages.ContainsKey(d)), Is.EquivalentTo(new[] { "bfd", "binutils", "gas" }),
            "catalogues without a German file on Debian 12 have no package");
    }
}
