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
        var cmd = new Command("corpus", "Build an English->German or English->Russian corpus from the gettext catalogues and print its manifest.") { pair, root, domains, export };
        cmd.SetAction(pr =>
        {
            string p = pr.GetValue(pair)!;
            if (!Pairs.Contains(p)) throw new UsageException($"--pair: unknown pair '{p}'; valid pairs: {string.Join(", ", Pairs)}");
            string[]? list = pr.GetValue(domains) switch
            {
                null => null,
                "all" => Directory.Exists(Path.Combine(pr.GetValue(root)!, p[3..], "LC_MESSAGES"))
                    ? Directory.GetFiles(Path.Combine(pr.GetValue(root)!, p[3..], "LC_MESSAGES"), "*.mo").Select(f => Path.GetFileNameWithoutExtension(f)!).ToArray() : [],
                var text => text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
            };
            var (splits, manifest) = ParallelCorpus.FromCatalogues(p[3..], pr.GetValue(root)!, list);
            var table = new Table().AddColumn("catalogue").AddColumn("pairs kept");
            foreach (var (domain, n) in manifest.PairsPerDomain.OrderBy(x => x.Key, StringComparer.Ordinal)) table.AddRow(domain, $"{n:N0}");
            AnsiConsole.Write(table);
            var chars = new CharVocabulary(splits[0].Select(s => s.Target));
            AnsiConsole.MarkupLine($"{manifest.Name}: train {manifest.Train:N0}, valid {manifest.Valid:N0}, test {manifest.Test:N0} pairs; " +
                                   $"{chars.Symbols.Length} target characters in train; SHA-256 {manifest.Sha256}");
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

/// <summary>`lskd translation`: the translation study (first version: teachers, students per T, baselines, BLEU and
/// chrF, report; docs/STUDY.md).</summary>
internal static class TranslationCommand
{
    public static Command Create()
    {
        var preset = new Option<string>("--preset") { Description = $"preset: {string.Join(", ", TranslationConfig.PresetNames)}", DefaultValueFactory = _ => "quick" };
        var pair = new Option<string>("--pair") { Description = $"language pair: {string.Join(", ", CorpusCommand.Pairs)}", DefaultValueFactory = _ => "en-de" };
        var root = new Option<string>("--locale-root") { Description = "folder holding <language>/LC_MESSAGES/*.mo", DefaultValueFactory = _ => ParallelCorpus.DefaultLocaleRoot };
        var outDir = new Option<string>("--out") { Description = "results folder", DefaultValueFactory = _ => "results" };
        var device = CommonOptions.Device(); var threads = CommonOptions.Threads();
        var cmd = new Command("translation", "Translation study: Transformer teachers with label smoothing, word-level KD students at each T, BLEU and chrF.") { preset, pair, root, outDir, device, threads };
        cmd.SetAction(pr =>
        {
            var config = TranslationConfig.Preset(pr.GetValue(preset)!) with { Pair = pr.GetValue(pair)! };
            config.Validate();
            string dir = Path.Combine(pr.GetValue(outDir)!, $"{config.Name}-{config.Pair}");
            using var be = CommonOptions.CreateBackend(pr.GetValue(device)!, pr.GetValue(threads));
            var records = new TranslationStudy(config, dir, be, pr.GetValue(root)!).Run(line => AnsiConsole.MarkupLine(Markup.Escape(line)));
            AnsiConsole.MarkupLine($"{records.Count} run(s); report: {Markup.Escape(Path.Combine(dir, "report.md"))}");
            return 0;
        });
        return cmd;
    }
}
