using System.CommandLine;
using System.Text.Json;
using LsKd.Experiments.Data;
using LsKd.Experiments.Study;
using LsKd.Kernels;
using LsKd.Nets;
using Spectre.Console;

namespace LsKd.Experiments.Commands;

/// <summary>`lskd study`, `report`, `train-teacher`, `distill`, `eval`: the study pipeline and its single steps.</summary>
internal static class StudyCommands
{
    static Option<string> Out(string def) => new("--out") { Description = "results folder", DefaultValueFactory = _ => def };
    static Option<string?> DataDir() => new("--data-dir") { Description = "the data: IDX files (Fashion-MNIST layout or with a dataset.json), or an image folder train/<class>/, test/<class>/ (default: the Debian package's /usr/share/datasets/fashion-mnist)" };
    static Option<int?> Seed() => new("--seed") { Description = "run one seed instead of the configuration's list" };

    static (int, int)? ParseShard(string? text)
    {
        if (text == null) return null;
        var parts = text.Split('/');
        if (parts.Length != 2 || !int.TryParse(parts[0], out int i) || !int.TryParse(parts[1], out int n) || n < 1 || i < 0 || i >= n)
            throw new UsageException($"--shard: '{text}' is not i/n with 0 <= i < n (for example 0/4 ... 3/4)");
        return (i, n);
    }

    public static Command Study()
    {
        var device = CommonOptions.Device(); var threads = CommonOptions.Threads();
        var preset = new Option<string>("--preset") { Description = $"built-in study: {string.Join(", ", StudyConfig.PresetNames)}", DefaultValueFactory = _ => "quick" };
        var config = new Option<string?>("--config") { Description = "JSON configuration file (overrides --preset; keys as in results/<study>/config.json)" };
        var outDir = Out("results"); var dataDir = DataDir(); var seed = Seed();
        var shard = new Option<string?>("--shard") { Description = "train only part i/n of the sweep (0-based), e.g. one Slurm array task; merge with `lskd report`" };
        var noAnalysis = new Option<bool>("--no-analysis") { Description = "skip `lskd analyze` after training (it runs by default on an unsharded study)" };
        var dryRun = new Option<bool>("--dry-run") { Description = "print the runs and a time estimate from throughput measured now; train nothing and write no study files" };
        var cmd = new Command("study", "Run the whole study: teachers with label smoothing, students distilled at each temperature, baselines, matched-entropy runs, analysis, report.")
            { preset, config, outDir, dataDir, device, threads, seed, shard, noAnalysis, dryRun };
        cmd.SetAction(pr =>
        {
            bool fromPreset = pr.GetValue(config) == null;
            var cfg = pr.GetValue(config) is { } path ? StudyConfig.FromFile(path) : StudyConfig.Preset(pr.GetValue(preset)!);
            if (pr.GetValue(seed) is { } s) cfg = cfg with { Seeds = [s] };
            cfg.Validate();
            var sh = ParseShard(pr.GetValue(shard));
            string dir = Path.Combine(pr.GetValue(outDir)!, cfg.Name);
            using var be = CommonOptions.CreateBackend(pr.GetValue(device)!, pr.GetValue(threads));
            // A preset's image counts are fitted to the data (with a notice per count); a configuration file's are not.
            using var runner = new StudyRunner(cfg, dir, be, pr.GetValue(dataDir), sh, fitToData: fromPreset);
            var data = WithDataErrors(runner.LoadData);   // the configuration checked against (or fitted to) the data, before anything is written
            cfg = runner.Config;
            if (pr.GetValue(dryRun))
            {
                DryRun.Print(cfg, DryRun.Run(cfg, be, data.Train.Count + data.Validation.Count, data.Test.Count, sh), be);
                return 0;
            }
            var (trained, skipped, diverged) = WithDataErrors(runner.Run);
            var (matchedTrained, matchedSkipped) = WithDataErrors(runner.RunMatched);
            if (sh == null && !pr.GetValue(noAnalysis))
            {
                var outcome = WithDataErrors(() => new Analyzer(cfg, [dir], be, pr.GetValue(dataDir)).Run());
                AnsiConsole.MarkupLine($"analysis: {outcome.Figures.Count} figures, {outcome.Seconds:F1} s");
            }
            var runs = Report.LoadRuns([dir]);
            var info = StudyRunner.StudyDataset(dir, cfg);
            WithDataErrors(() => Report.Write(cfg, runs, dir, info));
            AnsiConsole.MarkupLine($"{trained} run(s) trained, {skipped} skipped, {diverged} diverged; {matchedTrained} matched-entropy run(s) trained, {matchedSkipped} skipped; report: {Markup.Escape(Path.Combine(dir, "report.md"))}");
            if (sh != null) AnsiConsole.MarkupLine("sharded sweep: merge the shards' folders with `lskd report --out <folder> --merge <other folders>`, then run `lskd analyze` with the same --merge");
            return 0;
        });
        return cmd;
    }

    /// <summary>Creates --out and writes and removes a probe file there, so that an unwritable folder is reported
    /// before any work.</summary>
    static void ProbeWritable(string dir)
    {
        try
        {
            Directory.CreateDirectory(dir);
            string probe = Path.Combine(dir, $".lskd-probe.{Environment.ProcessId}.tmp");
            File.WriteAllBytes(probe, [1]);
            File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new UsageException($"--out: cannot write to {dir}: {e.Message}"); }
    }

    /// <summary>The data set of --data-dir, read at the model's image size, and checked to fit the model (classes and
    /// channels), so that a checkpoint trained on other data is refused in one line.</summary>
    static (ImageSet Train, ImageSet Test, DatasetInfo Info) DataFor(string? dataDir, Classifier? model, string flag, int imageSize = 0)
    {
        var d = WithDataErrors(() => Datasets.Load(dataDir, new ImageOptions(model?.ImageSize ?? imageSize)));
        if (model != null && model.Head.OutFeatures != d.Info.Classes.Length)
            throw new UsageException($"{flag}: the checkpoint has {model.Head.OutFeatures} outputs but {d.Info.Name} has {d.Info.Classes.Length} classes");
        if (model != null && model.InputChannels != d.Info.Channels)
            throw new UsageException($"{flag}: the checkpoint takes {model.InputChannels}-channel images but {d.Info.Name} has {d.Info.Channels}-channel ones");
        return (d.Train, d.Test, d.Info);
    }

    static T WithDataErrors<T>(Func<T> f)
    {
        try { return f(); }
        catch (DataException e) { throw new UsageException(e.Message); }
        catch (CheckpointException e) { throw new UsageException(e.Message); }
    }

    /// <summary>The study in --out and the shard folders of --merge, which must hold the same configuration.</summary>
    static (StudyConfig Config, List<string> Dirs) StudyFolders(string dir, string[]? merge)
    {
        string configPath = Path.Combine(dir, "config.json");
        if (!File.Exists(configPath)) throw new UsageException($"--out: {configPath} not found (not a study result folder)");
        var cfg = StudyConfig.FromFile(configPath);
        var dirs = new List<string> { dir };
        dirs.AddRange(merge ?? []);
        foreach (var d in dirs.Skip(1))
            if (!File.Exists(Path.Combine(d, "config.json")) || File.ReadAllText(Path.Combine(d, "config.json")) != File.ReadAllText(configPath))
                throw new UsageException($"--merge: {d} is not a shard of the same study (its config.json is missing or differs)");
        return (cfg, dirs);
    }

    public static Command ReportCommand()
    {
        var outDir = new Option<string>("--out") { Description = "a study's results folder (holds config.json); the report is written there", Required = true };
        var merge = new Option<string[]>("--merge") { Description = "other result folders (shards) whose runs are merged in", AllowMultipleArgumentsPerToken = true };
        var cmd = new Command("report", "Write runs.csv and report.md for a study folder, merging shards.") { outDir, merge };
        cmd.SetAction(pr =>
        {
            string dir = pr.GetValue(outDir)!;
            var (cfg, dirs) = StudyFolders(dir, pr.GetValue(merge));
            using var folderLock = StudyLock.Acquire(dir);
            var runs = Report.LoadRuns(dirs);
            Report.Write(cfg, runs, dir, StudyRunner.StudyDataset(dir, cfg));
            AnsiConsole.MarkupLine($"{runs.Count} run(s) from {dirs.Count} folder(s); wrote {Markup.Escape(Path.Combine(dir, "report.md"))} and runs.csv");
            return 0;
        });
        return cmd;
    }

    /// <summary>`lskd analyze`: the analyses of a finished study (merging shard folders), then the report again.</summary>
    public static Command Analyze()
    {
        var device = CommonOptions.Device(); var threads = CommonOptions.Threads(); var dataDir = DataDir();
        var outDir = new Option<string>("--out") { Description = "a study's results folder (holds config.json); analysis/ and exports/ are written there", Required = true };
        var merge = new Option<string[]>("--merge") { Description = "other result folders (shards) whose runs and checkpoints are used too", AllowMultipleArgumentsPerToken = true };
        var cmd = new Command("analyze", "Analyse a finished study: penultimate-layer plots, diffusion index, soft targets, entropy and matched temperatures, summary figures, verdict.")
            { outDir, merge, dataDir, device, threads };
        cmd.SetAction(pr =>
        {
            string dir = pr.GetValue(outDir)!;
            var (cfg, dirs) = StudyFolders(dir, pr.GetValue(merge));
            using var folderLock = StudyLock.Acquire(dir);
            using var be = CommonOptions.CreateBackend(pr.GetValue(device)!, pr.GetValue(threads));
            var outcome = WithDataErrors(() => new Analyzer(cfg, dirs, be, pr.GetValue(dataDir)).Run());
            var runs = Report.LoadRuns(dirs);
            Report.Write(cfg, runs, dir, StudyRunner.StudyDataset(dir, cfg));
            AnsiConsole.Write(new Markup(Markup.Escape(outcome.Verdict) + "\n"));
            AnsiConsole.MarkupLine($"analysis of {Markup.Escape(dir)}: {outcome.Figures.Count} figures in {Markup.Escape(Path.Combine(dir, "analysis", "figures"))}, {outcome.Seconds:F1} s; report: {Markup.Escape(Path.Combine(dir, "report.md"))}");
            return 0;
        });
        return cmd;
    }

    /// <summary>`lskd advise --teacher`: how smoothed a practitioner's teacher is, its target entropy against T, and a temperature.</summary>
    public static Command Advise()
    {
        var device = CommonOptions.Device(); var threads = CommonOptions.Threads(); var dataDir = DataDir();
        var teacher = new Option<string>("--teacher") { Description = "teacher checkpoint (.safetensors written by train-teacher or study)", Required = true };
        var study = new Option<string?>("--study") { Description = "a finished study's results folder whose findings the advice uses (default: the paper's findings)" };
        var images = new Option<int>("--train-images") { Description = "training images the teacher is assessed on", DefaultValueFactory = _ => 2000 };
        var temps = new Option<float[]>("--temperatures") { Description = "temperatures of the entropy table", AllowMultipleArgumentsPerToken = true, DefaultValueFactory = _ => [1f, 1.5f, 2f, 3f, 4f, 8f, 16f, 64f] };
        var cmd = new Command("advise", "Estimate how strongly a teacher is smoothed, print its target entropy against T, and recommend a distillation temperature.")
            { teacher, study, images, temps, dataDir, device, threads };
        cmd.SetAction(pr =>
        {
            int n = pr.GetValue(images);
            if (n < 10) throw new UsageException($"--train-images must be >= 10, got {n}");
            var ts = pr.GetValue(temps)!;
            if (ts.Length == 0) throw new UsageException("--temperatures must list at least one temperature");
            foreach (var t in ts) UsageException.Check("--temperatures", HyperParameters.Temperature(t));
            if (!ts.Contains(1f)) ts = [1f, .. ts];
            Analysis.StudyEvidence? evidence = null;
            if (pr.GetValue(study) is { } sdir)
            {
                string configPath = Path.Combine(sdir, "config.json");
                if (!File.Exists(configPath)) throw new UsageException($"--study: {configPath} not found (not a study result folder)");
                evidence = Report.Evidence(StudyConfig.FromFile(configPath), Report.LoadRuns([sdir]));
            }
            using var be = CommonOptions.CreateBackend(pr.GetValue(device)!, pr.GetValue(threads));
            var model = WithDataErrors(() => Checkpoint.LoadClassifier(pr.GetValue(teacher)!, be));
            var (train, _, info) = DataFor(pr.GetValue(dataDir), model, "--teacher");
            var outputs = Analysis.SetOutputs.Compute(be, model, train.Take(n));
            var assessment = Analysis.Advisor.Assess(outputs, ts.Order().ToArray());
            var advice = Analysis.Advisor.Recommend(assessment, evidence);
            var table = new Table().AddColumn("T").AddColumn("average target entropy").AddColumn("fraction of ln K");
            foreach (var (t, h) in assessment.Entropies)
                table.AddRow(StudyConfig.F(t), h.ToString("F4", System.Globalization.CultureInfo.InvariantCulture), (h / Math.Log(assessment.Classes)).ToString("P1", System.Globalization.CultureInfo.InvariantCulture));
            AnsiConsole.MarkupLine($"teacher {Markup.Escape(model.ModelName)} on {assessment.Images} training images: top-1 {assessment.Accuracy:F2}%, mean true-class probability {assessment.MeanTrueProbability:F4}, median logit gap {assessment.MedianLogitGap:F3}");
            AnsiConsole.MarkupLine($"smoothing: effective alpha {assessment.EffectiveAlpha:F4} (logit gap), {assessment.AlphaFromConfidence:F4} (confidence): {(assessment.IsSmoothed ? "smoothed" : "not smoothed")}");
            AnsiConsole.Write(table);
            AnsiConsole.MarkupLine($"[bold]recommended temperature: T = {StudyConfig.F(advice.Temperature)}[/]");
            foreach (var r in advice.Reasons) AnsiConsole.MarkupLine($"- {Markup.Escape(r)}");
            return 0;
        });
        return cmd;
    }

    static Option<string> Model(string def) => new("--model") { Description = $"architecture: {string.Join(", ", Nets.Models.Names)}", DefaultValueFactory = _ => def };
    static Option<float> Width(float def) => new("--width") { Description = "width multiplier", DefaultValueFactory = _ => def };
    static Option<int> Epochs() => new("--epochs") { Description = "training epochs", DefaultValueFactory = _ => 4 };
    static Option<int> TrainImages() => new("--train-images") { Description = "training images used (0 = all 60,000)", DefaultValueFactory = _ => 0 };

    /// <summary>`train-teacher` and `distill` share everything but the teacher and the loss.</summary>
    public static Command SingleRun(bool distill)
    {
        var device = CommonOptions.Device(); var threads = CommonOptions.Threads(); var dataDir = DataDir();
        var outDir = Out(distill ? "results/students" : "results/teachers");
        var model = Model(distill ? "resnet8" : "resnet20"); var width = Width(distill ? 0.5f : 1f); var epochs = Epochs(); var trainImages = TrainImages();
        var alpha = new Option<float>("--alpha") { Description = distill ? "label smoothing of the hard term (used when beta < 1)" : "label smoothing alpha in [0, 1)", DefaultValueFactory = _ => 0f };
        var seed = new Option<int>("--seed") { Description = "seed of initialisation, order and augmentation", DefaultValueFactory = _ => 1 };
        var teacher = new Option<string>("--teacher") { Description = "teacher checkpoint (.safetensors written by train-teacher or study)", Required = true };
        var temperature = new Option<float>("--temperature") { Description = "distillation temperature T > 0", DefaultValueFactory = _ => 1f };
        var beta = new Option<float>("--beta") { Description = "weight of the KD term in [0, 1] (1 as in the paper)", DefaultValueFactory = _ => 1f };
        var batch = new Option<int>("--batch") { Description = "mini-batch size", DefaultValueFactory = _ => 128 };
        var lr = new Option<float>("--lr") { Description = "peak learning rate (SGD with momentum 0.9, cosine schedule)", DefaultValueFactory = _ => 0.1f };
        var noAugment = new Option<bool>("--no-augment") { Description = "train without random crops and flips" };
        var jsonl = ResultLog.Option();
        var cmd = distill
            ? new Command("distill", "Distil a student from a teacher checkpoint at one temperature.") { teacher, model, width, temperature, beta, alpha, epochs, batch, lr, noAugment, trainImages, seed, outDir, dataDir, device, threads, jsonl }
            : new Command("train-teacher", "Train one teacher with label smoothing alpha.") { model, width, alpha, epochs, batch, lr, noAugment, trainImages, seed, outDir, dataDir, device, threads, jsonl };
        cmd.SetAction(pr =>
        {
            var settings = new TrainSettings { Model = pr.GetValue(model)!, Width = pr.GetValue(width), Epochs = pr.GetValue(epochs), Batch = pr.GetValue(batch), Lr = pr.GetValue(lr) };
            settings.Validate("--model/--width/--epochs/--batch/--lr");
            float a = pr.GetValue(alpha), t = pr.GetValue(temperature), b = pr.GetValue(beta);
            UsageException.Check("--alpha", HyperParameters.Alpha(a));
            if (distill) UsageException.Check("--temperature", HyperParameters.Temperature(t));
            if (distill) UsageException.Check("--beta", HyperParameters.Beta(b));
            RunLoss loss = distill ? new RunLoss.Distillation(new KdConfig(t, b, a)) : new RunLoss.LabelSmoothing(a);
            int n = pr.GetValue(trainImages);
            if (n < 0) throw new UsageException($"--train-images must be >= 0 (0 = all), got {n}");
            string dir = pr.GetValue(outDir)!;
            using var be = CommonOptions.CreateBackend(pr.GetValue(device)!, pr.GetValue(threads));
            var log = ResultLog.Open(pr.GetValue(jsonl), distill ? "distill" : "train-teacher", be);
            Classifier? teacherModel = distill ? WithDataErrors(() => Checkpoint.LoadClassifier(pr.GetValue(teacher)!, be)) : null;
            var (train, test, info) = teacherModel != null ? DataFor(pr.GetValue(dataDir), teacherModel, "--teacher") : DataFor(pr.GetValue(dataDir), null, "--data-dir");
            if (n > train.Count) throw new UsageException($"--train-images {n} exceeds the {train.Count} training images");
            if (n > 0) train = train.Take(n);
            if (settings.Batch > train.Count) throw new UsageException($"batch {settings.Batch} is larger than the {train.Count} training images");
            ProbeWritable(dir);   // after every check, before hours of training (not after them)
            int s = pr.GetValue(seed);
            string id = distill ? $"student-{settings.Model}-w{StudyConfig.F(settings.Width)}-T{StudyConfig.F(t)}-s{s}" : $"teacher-{settings.Model}-a{StudyConfig.F(a)}-s{s}";
            var spec = new RunSpec(id, distill ? RunKind.Student : RunKind.Teacher, settings, loss, (ulong)s, distill ? pr.GetValue(teacher) : null);
            var net = Nets.Models.Create(settings.Model, be, (ulong)s * 1000 + (distill ? 2UL : 1UL), settings.Width, info.Classes.Length, info.Channels, info.Height);
            // Every epoch is printed and logged as it ends: a run stopped at a time limit keeps what it finished.
            var trainer = new Trainer(be, train, train.Take(2000), test, augment: !pr.GetValue(noAugment), -info.Mean / info.Std)
            {
                OnEpoch = e =>
                {
                    AnsiConsole.MarkupLine($"epoch {e.Epoch}: loss {e.TrainLoss:F4}, train top-1 {e.Train.Top1:F2}%, test top-1 {e.Test.Top1:F2}%, top-5 {e.Test.Top5:F2}% ({e.Seconds:F1} s)");
                    log?.Add($"{id} epoch {e.Epoch}/{settings.Epochs}", "test top-1 %", e.Test.Top1,
                        note: $"loss {e.TrainLoss:F4}, train top-1 {e.Train.Top1:F2}%, top-5 {e.Test.Top5:F2}%, {e.Seconds:F1} s, {train.Count / Math.Max(e.Seconds, 1e-9):F0} img/s with evaluation");
                },
            };
            var outcome = trainer.Run(spec, net, teacherModel, null);
            string ckpt = Path.Combine(dir, id + ".safetensors");
            if (outcome.Status == RunStatus.Finished)
                Checkpoint.Save(net, ckpt, new Dictionary<string, string>(Checkpoint.ShapeMetadata(info.Classes.Length, info.Channels, info.Height))
                    { ["run"] = id, ["width"] = StudyConfig.F(settings.Width), ["alpha"] = StudyConfig.F(a) });
            AtomicFile.WriteText(Path.Combine(dir, id + ".json"), JsonSerializer.Serialize(outcome.Epochs, RunRecord.Json));
            log?.Add($"{id} training", "img/s", outcome.ImagesPerSecond, note: $"{outcome.Status}, {outcome.Seconds:F1} s in all");
            AnsiConsole.MarkupLine(outcome.Status == RunStatus.Finished ? $"wrote {Markup.Escape(ckpt)}" : $"[red]run diverged[/] (loss became NaN or infinite); no checkpoint written");
            return outcome.Status == RunStatus.Finished ? 0 : 1;
        });
        return cmd;
    }

    /// <summary>Recreates a classifier from a checkpoint's metadata (model name and width) and loads it.</summary>
    /// <summary>`lskd export`: features, logits and labels (a training subset and the test set) and the final layer of
    /// every checkpoint of a study, as .npy files under exports/&lt;run&gt;/.</summary>
    public static Command Export()
    {
        var device = CommonOptions.Device(); var threads = CommonOptions.Threads(); var dataDir = DataDir();
        var outDir = new Option<string>("--out") { Description = "a study's results folder (holds config.json and checkpoints/)", Required = true };
        var trainImages = new Option<int>("--train-images") { Description = "training images exported per model", DefaultValueFactory = _ => 2000 };
        var cmd = new Command("export", "Export penultimate features, logits, labels and final layers of a study's models as .npy.") { outDir, trainImages, dataDir, device, threads };
        cmd.SetAction(pr =>
        {
            string dir = pr.GetValue(outDir)!;
            string configPath = Path.Combine(dir, "config.json");
            if (!File.Exists(configPath)) throw new UsageException($"--out: {configPath} not found (not a study result folder)");
            using var folderLock = StudyLock.Acquire(dir);
            var cfg = StudyConfig.FromFile(configPath);
            int n = pr.GetValue(trainImages);
            if (n < 1) throw new UsageException($"--train-images must be >= 1, got {n}");
            using var be = CommonOptions.CreateBackend(pr.GetValue(device)!, pr.GetValue(threads));
            var (train, test, _) = DataFor(pr.GetValue(dataDir), null, "--data-dir", cfg.ImageSize);
            if (cfg.TrainImages > 0) train = train.Take(cfg.TrainImages);
            if (cfg.TestImages > 0) test = test.Take(cfg.TestImages);
            train = train.Take(n);
            var checkpoints = Directory.Exists(Path.Combine(dir, "checkpoints")) ? Directory.GetFiles(Path.Combine(dir, "checkpoints"), "*.safetensors").Order(StringComparer.Ordinal).ToList() : [];
            if (checkpoints.Count == 0) throw new UsageException($"--out: no checkpoints in {Path.Combine(dir, "checkpoints")}");
            foreach (var ckpt in checkpoints)
            {
                var model = WithDataErrors(() => Checkpoint.LoadClassifier(ckpt, be));
                string target = Path.Combine(dir, "exports", Path.GetFileNameWithoutExtension(ckpt));
                Directory.CreateDirectory(target);
                Analysis.Exporter.ExportHead(model, target);
                Analysis.Exporter.ExportSet(be, model, train, target, "train");
                Analysis.Exporter.ExportSet(be, model, test, target, "test");
                AnsiConsole.MarkupLine($"exported {Markup.Escape(Path.GetFileNameWithoutExtension(ckpt))}: {train.Count} training and {test.Count} test images");
            }
            return 0;
        });
        return cmd;
    }

    public static Command Eval()
    {
        var device = CommonOptions.Device(); var threads = CommonOptions.Threads(); var dataDir = DataDir();
        var checkpoint = new Option<string>("--checkpoint") { Description = "model checkpoint (.safetensors)", Required = true };
        var cmd = new Command("eval", "Evaluate a checkpoint on the test set: top-1, top-5 and per-class accuracy.") { checkpoint, dataDir, device, threads };
        cmd.SetAction(pr =>
        {
            using var be = CommonOptions.CreateBackend(pr.GetValue(device)!, pr.GetValue(threads));
            var model = WithDataErrors(() => Checkpoint.LoadClassifier(pr.GetValue(checkpoint)!, be));
            var (_, test, info) = DataFor(pr.GetValue(dataDir), model, "--checkpoint");
            var m = Trainer.Evaluate(be, model, test, out _);
            var table = new Table().AddColumn("class").AddColumn("test accuracy %");
            for (int k = 0; k < info.Classes.Length; k++) table.AddRow(Markup.Escape(info.Classes[k]), $"{m.PerClass[k]:F2}");
            AnsiConsole.Write(table);
            AnsiConsole.MarkupLine($"{Markup.Escape(model.ModelName)}: test top-1 {m.Top1:F2}%, top-5 {m.Top5:F2}% on {m.Count} images");
            return 0;
        });
        return cmd;
    }
}
