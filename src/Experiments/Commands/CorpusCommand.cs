using System.CommandLine;
using LsKd.Experiments.Data;
using LsKd.Experiments.Data.Translation;
using LsKd.Experiments.Study;
using Spectre.Console;

namespace LsKd.Experiments.Commands;

/// <summary>`lskd corpus --pair en-de`: builds a translation corpus from the Debian message catalogues and prints its
/// manifest (pairs per catalogue and split, checksum); `--export DIR` writes the splits as TSV.</summary>
internal static class CorpusCommand
{
    public static readonly string[] Pairs = ["en-de", "en-ru"];

    public static Command Create()
    {
        var pair = new Option<string>("--pair") { Description = $"language pair: {string.Join(", ", Pairs)}", DefaultValueFactory = _ => "en-de" };
        var root = new Option<string>("--locale-root") { Description = "folder holding <language>/LC_MESSAGES/*.mo", DefaultValueFactory = _ => ParallelCorpus.DefaultLocaleRoot };
        var domains = new Option<string?>("--domains") { Description = "comma-separated catalogue names (default: the built-in list; all = every catalogue of the language)" };
        var export = new Option<string?>("--export") { Description = "write train.tsv, valid.tsv and test.tsv (source, target) into this folder" };
        var subwords = new Option<int>("--subwords") { Description = "also learn this many BPE merges on the training split and print the vocabulary sizes and tokens per sentence" };
        var corpus = new Option<string>("--corpus") { Description = $"corpus: {string.Join(", ", TranslationConfig.Corpora)}", DefaultValueFactory = _ => "gettext" };
        var dictRoot = new Option<string>("--dict-root") { Description = "folder holding freedict-eng-deu.index and .dict.dz", DefaultValueFactory = _ => FreeDict.DefaultRoot };
        var cmd = new Command("corpus", "Build an English->German or English->Russian corpus (gettext catalogues or FreeDict) and print its manifest.") { pair, corpus, root, dictRoot, domains, export, subwords };
        cmd.SetAction(pr =>
        {
            string p = pr.GetValue(pair)!;
            if (!Pairs.Contains(p)) throw new UsageException($"--pair: unknown pair '{p}'; valid pairs: {string.Join(", ", Pairs)}");
            string which = pr.GetValue(corpus)!;
            (TranslationConfig.Preset("quick") with { Pair = p, Corpus = which }).Validate();   // the corpus and pair checks of the study
            string[]? list = pr.GetValue(domains) switch
            {
                null => null,
                "all" => Directory.Exists(Path.Combine(pr.GetValue(root)!, p[3..], "LC_MESSAGES"))
                    ? Directory.GetFiles(Path.Combine(pr.GetValue(root)!, p[3..], "LC_MESSAGES"), "*.mo").Select(f => Path.GetFileNameWithoutExtension(f)!).ToArray() : [],
                var text => text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
            };
            var (splits, manifest) = which == FreeDict.Name ? FreeDict.Load(pr.GetValue(dictRoot)!) : ParallelCorpus.FromCatalogues(p[3..], pr.GetValue(root)!, list);
            var table = new Table().AddColumn("catalogue").AddColumn("pairs kept");
            foreach (var (domain, n) in manifest.PairsPerDomain.OrderBy(x => x.Key, StringComparer.Ordinal)) table.AddRow(domain, $"{n:N0}");
            AnsiConsole.Write(table);
            var chars = new CharVocabulary(splits[0].Select(s => s.Target));
            AnsiConsole.MarkupLine($"{manifest.Name}: train {manifest.Train:N0}, valid {manifest.Valid:N0}, test {manifest.Test:N0} pairs; " +
                                   $"{chars.Symbols.Length} target characters in train; SHA-256 {manifest.Sha256}");
            if (pr.GetValue(subwords) is > 0 and var merges)
            {
                var sw = System.Diagnostics.Stopwatch.StartNew();
                var src = new SubwordVocabulary(splits[0].Select(x => x.Source), merges);
                var tgt = new SubwordVocabulary(splits[0].Select(x => x.Target), merges);
                double tokens(ITokenizer v, Func<SentencePair, string> side) => splits[0].Average(x => v.Encode(side(x)).Length);
                AnsiConsole.MarkupLine($"BPE {merges} merges ({sw.Elapsed.TotalSeconds:F1} s): source {src.Size} symbols, {tokens(src, x => x.Source):F1} tokens per sentence " +
                                       $"(characters {splits[0].Average(x => x.Source.Length):F1}); target {tgt.Size} symbols, {tokens(tgt, x => x.Target):F1} tokens " +
                                       $"(characters {splits[0].Average(x => x.Target.Length):F1})");
            }
            if (pr.GetValue(export) is { } dir)
            {
                Directory.CreateDirectory(dir);
                string[] names = ["train", "valid", "test"];
                for (int s = 0; s < 3; s++)
                    Nets.AtomicFile.WriteText(Path.Combine(dir, names[s] + ".tsv"), string.Concat(splits[s].Select(x => $"{x.Source}\t{x.Target}\n")));
                AnsiConsole.MarkupLine($"wrote {Markup.Escape(dir)}/train.tsv, valid.tsv, test.tsv");
            }
            return 0;
        });
        return cmd;
    }
}

/// <summary>`lskd translation`: the translation study (docs/STUDY.md): LS Transformer teachers, token-level KD students
/// at each T over seeds, greedy and beam decoding, BLEU and chrF, the report with Tables 7 and 8 and the verdict. One
/// results folder per pair: `&lt;out&gt;/&lt;name&gt;-&lt;pair&gt;`.</summary>
internal static class TranslationCommand
{
    public static Command Create()
    {
        var preset = new Option<string>("--preset") { Description = $"preset: {string.Join(", ", TranslationConfig.PresetNames)}", DefaultValueFactory = _ => "quick" };
        var config = new Option<string?>("--config") { Description = "a translation configuration as JSON (replaces the preset; see docs/STUDY.md)" };
        var pair = new Option<string?>("--pair") { Description = $"language pair(s), comma-separated: {string.Join(", ", TranslationConfig.Pairs)} (default: en-de; the paper preset: both)" };
        var corpusOption = new Option<string?>("--corpus") { Description = $"corpus: {string.Join(", ", TranslationConfig.Corpora)} (default: the configuration's, gettext)" };
        var root = new Option<string>("--locale-root") { Description = "folder holding <language>/LC_MESSAGES/*.mo", DefaultValueFactory = _ => ParallelCorpus.DefaultLocaleRoot };
        var dictRoot = new Option<string>("--dict-root") { Description = "folder holding freedict-eng-deu.index and .dict.dz", DefaultValueFactory = _ => FreeDict.DefaultRoot };
        var outDir = new Option<string>("--out") { Description = "results folder", DefaultValueFactory = _ => "results" };
        var dryRun = new Option<bool>("--dry-run") { Description = "measure training steps and decoding on this device and print the study's estimated time; writes nothing" };
        var device = CommonOptions.Device(); var threads = CommonOptions.Threads();
        var cmd = new Command("translation", "Translation study: Transformer teachers with label smoothing, word-level KD students at each T, BLEU and chrF, Tables 7 and 8, verdict.")
            { preset, config, pair, corpusOption, root, dictRoot, outDir, dryRun, device, threads };
        cmd.SetAction(pr =>
        {
            string presetName = pr.GetValue(preset)!;
            bool fromPreset = pr.GetValue(config) == null;   // a preset's sizes are fitted to the corpus; a configuration file's are not
            var baseConfig = pr.GetValue(config) is { } file ? TranslationConfig.FromFile(file) : TranslationConfig.Preset(presetName);
            if (pr.GetValue(corpusOption) is { } c) baseConfig = baseConfig with { Corpus = c };
            string[] pairs = pr.GetValue(pair) is { } p ? p.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                : pr.GetValue(config) != null ? [baseConfig.Pair] : TranslationConfig.PresetPairs(presetName);
            var configs = pairs.Select(x => baseConfig with { Pair = x }).ToList();
            foreach (var c2 in configs) c2.Validate();   // every flag is checked before anything is written
            using var be = CommonOptions.CreateBackend(pr.GetValue(device)!, pr.GetValue(threads));
            if (pr.GetValue(dryRun))
            {
                double total = 0;
                foreach (var c2 in configs)
                {
                    var (seconds, lines) = new TranslationStudy(c2, "", be, new CorpusSource(c2.Corpus, pr.GetValue(root)!, pr.GetValue(dictRoot)!), fromPreset).Estimate();
                    foreach (var line in lines) AnsiConsole.MarkupLine(Markup.Escape(line));
                    total += seconds;
                }
                AnsiConsole.MarkupLine($"estimated total on {Markup.Escape(be.Name)}: {total / 60:F1} min");
                return 0;
            }
            foreach (var c2 in configs)
            {
                string dir = Path.Combine(pr.GetValue(outDir)!, $"{c2.Name}-{(c2.Corpus == FreeDict.Name ? FreeDict.Name : c2.Pair)}");
                var source = new CorpusSource(c2.Corpus, pr.GetValue(root)!, pr.GetValue(dictRoot)!);
                var records = new TranslationStudy(c2, dir, be, source, fromPreset).Run(line => AnsiConsole.MarkupLine(Markup.Escape(line)));
                AnsiConsole.MarkupLine($"{c2.Pair}: {records.Count} run(s); report: {Markup.Escape(Path.Combine(dir, "report.md"))}");
            }
            return 0;
        });
        return cmd;
    }
}
