using System.Text.Json;
using LsKd.Experiments.Analysis;
using LsKd.Experiments.Data;
using LsKd.Kernels;
using LsKd.Nets;
using Spectre.Console;

namespace LsKd.Experiments.Study;

/// <summary>The record of one finished (or diverged) run, written as runs/&lt;id&gt;.json.</summary>
public sealed record RunRecord
{
    public required string Id { get; init; }
    public required RunKind Kind { get; init; }
    public required string Model { get; init; }
    public float Width { get; init; }
    public float Alpha { get; init; }
    public float TeacherAlpha { get; init; }
    public float? Temperature { get; init; }
    public float Beta { get; init; }
    public int Seed { get; init; }
    public string? TeacherId { get; init; }
    public required RunStatus Status { get; init; }
    public required List<EpochMetrics> Epochs { get; init; }
    public int[] TestConfusion { get; init; } = [];
    public double WallSeconds { get; init; }
    public double TrainImagesPerSecond { get; init; }
    public long Parameters { get; init; }
    public required string Device { get; init; }
    public int Threads { get; init; }
    public required Dictionary<string, string> Software { get; init; }
    public required TrainSettings Settings { get; init; }

    public EpochMetrics? Last => Epochs.Count > 0 ? Epochs[^1] : null;
    public EpochMetrics? Best => Epochs.Count > 0 ? Epochs.MaxBy(e => e.Test.Top1) : null;

    internal static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase, WriteIndented = true,
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };
}

/// <summary>
/// Runs a study's sweep into an output folder: config.json, runs/&lt;id&gt;.json, checkpoints/&lt;id&gt;.safetensors,
/// then runs.csv and report.md. Every file is written to a temporary name and renamed, and a run's JSON is
/// written last, so a sweep killed at any moment resumes by skipping the runs whose JSON exists. A run whose
/// loss becomes NaN or infinite is recorded as diverged and the sweep goes on. With a shard i/n, only runs whose
/// index is i modulo n are trained (teachers a shard's students need are trained there too if missing).
/// </summary>
public sealed class StudyRunner(StudyConfig config, string outDir, IBackend backend, string? dataDir, (int Index, int Count)? shard = null, bool fitToData = false) : IDisposable
{
    StudyLock? _lock;

    /// <summary>The study's configuration; with fitToData (a preset), once the data is read, its counts lowered to what
    /// the data holds (<see cref="StudyConfig.FitTo"/>). This is what config.json records, so a resume is exact.</summary>
    public StudyConfig Config { get; private set; } = config;

    /// <summary>One line per count that fitting to the data changed (printed when the data is read).</summary>
    public List<string> FitNotices { get; } = [];

    /// <summary>Releases the folder's lock (taken by the first Run or RunMatched).</summary>
    public void Dispose() { _lock?.Dispose(); _lock = null; }

    public string RunsDir => Path.Combine(outDir, "runs");
    public string CheckpointsDir => Path.Combine(outDir, "checkpoints");
    readonly Dictionary<string, Classifier> _teachers = [];

    public static string CheckpointPath(string outDir, string id) => Path.Combine(outDir, "checkpoints", id + ".safetensors");
    public static string RunPath(string outDir, string id) => Path.Combine(outDir, "runs", id + ".json");

    public string EnvironmentPath => Path.Combine(outDir, "environment.json");

    /// <summary>Decoded image folders are cached beside the results (in --out's parent of the study folder).</summary>
    string CacheDir => Path.Combine(Path.GetDirectoryName(Path.GetFullPath(outDir))!, ".data-cache");

    /// <summary>The analysis triple's class indices in this data (set by LoadData).</summary>
    public int[] Triple { get; private set; } = [];

    /// <summary>The description of the data a study folder was trained on (dataset.json), for commands that do not
    /// read the data (report); the built-in description for folders from before the file.</summary>
    public static DatasetInfo StudyDataset(string dir, StudyConfig config)
    {
        string path = Path.Combine(dir, "dataset.json");
        if (!File.Exists(path)) return DatasetInfo.Load(config.Dataset);
        try { return JsonSerializer.Deserialize<DatasetInfo>(File.ReadAllText(path), RunRecord.Json) ?? throw new UsageException($"{path}: empty"); }
        catch (JsonException e) { throw new UsageException($"{path}: corrupt ({JsonErrors.Describe(e)})"); }
    }

    /// <summary>What a resume must match: the data (folder and a checksum of the images and labels read), the device
    /// and the thread count (a seeded run is bit-identical only on the same backend with the same threads).</summary>
    public sealed record RunEnvironment(string DataDir, string DataSha256, string Device, int Threads);

    /// <summary>Checks everything (the data against the configuration), then takes the folder's lock, refuses a
    /// folder that holds a different study or was trained with other data, device or threads, and only then
    /// creates the folders and records the configuration and the environment. Nothing is written before every
    /// check has passed.</summary>
    public void Prepare()
    {
        if (_lock != null) return;
        var data = LoadData();
        string configPath = Path.Combine(outDir, "config.json");
        string json = Config.ToJson();
        var environment = new RunEnvironment(Path.GetFullPath(dataDir ?? data.Info.DefaultDir), DataChecksum(data), backend.Name, backend.Threads);
        try
        {
            if (File.Exists(configPath) && File.ReadAllText(configPath) != json)
                throw new UsageException($"{outDir} holds a study with a different configuration (config.json differs); choose another --out or remove it");
            _lock = StudyLock.Acquire(outDir);
            if (File.Exists(configPath) && File.ReadAllText(configPath) != json)   // again, under the lock
                throw new UsageException($"{outDir} holds a study with a different configuration (config.json differs); choose another --out or remove it");
            if (File.Exists(EnvironmentPath))
            {
                RunEnvironment? recorded;
                try { recorded = JsonSerializer.Deserialize<RunEnvironment>(File.ReadAllText(EnvironmentPath), RunRecord.Json); }
                catch (JsonException e) { throw new UsageException($"{EnvironmentPath}: corrupt ({JsonErrors.Describe(e)}); remove it to accept this run's data, device and threads"); }
                if (recorded != null && recorded != environment)
                    throw new UsageException($"{outDir} was trained with {Describe(recorded)}; this run has {Describe(environment)}; resume with the same --data-dir, --device and --threads, or choose another --out");
            }
            Directory.CreateDirectory(RunsDir);
            Directory.CreateDirectory(CheckpointsDir);
            if (!File.Exists(configPath)) AtomicFile.WriteText(configPath, json);
            if (!File.Exists(EnvironmentPath)) AtomicFile.WriteText(EnvironmentPath, JsonSerializer.Serialize(environment, RunRecord.Json));
            AtomicFile.WriteText(Path.Combine(outDir, "dataset.json"), JsonSerializer.Serialize(data.Info, RunRecord.Json));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Dispose();
            throw new UsageException($"--out: cannot write to {outDir}: {e.Message}");
        }
        catch { Dispose(); throw; }
    }

    static string Describe(RunEnvironment e) =>
        $"data from {e.DataDir} (SHA-256 {e.DataSha256[..12]}...), device {e.Device}, {e.Threads} thread(s)";

    /// <summary>SHA-256 over the study's image sets (pixels as read and labels), so that other data under the same
    /// folder name is noticed.</summary>
    static string DataChecksum((ImageSet Train, ImageSet TrainEval, ImageSet Validation, ImageSet Test, DatasetInfo Info) data)
    {
        using var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        foreach (var set in new[] { data.Train, data.Validation, data.Test })
        {
            sha.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(set.Images.AsSpan()));
            sha.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(set.Labels.AsSpan()));
        }
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    (ImageSet Train, ImageSet TrainEval, ImageSet Validation, ImageSet Test, DatasetInfo Info)? _data;
    (Trainer Teacher, Trainer Student)? _trainers;

    /// <summary>The study's image sets, read and checked once per runner.</summary>
    public (ImageSet Train, ImageSet TrainEval, ImageSet Validation, ImageSet Test, DatasetInfo Info) LoadData() => _data ??= ReadData();

    /// <summary>The teachers' trainer (all training images) and the students' one (StudentTrainImages of them).</summary>
    (Trainer Teacher, Trainer Student) Trainers()
    {
        if (_trainers is { } t) return t;
        var data = LoadData();
        float background = -data.Info.Mean / data.Info.Std;
        var studentTrain = Config.StudentTrainImages > 0 ? data.Train.Take(Config.StudentTrainImages) : data.Train;
        return (_trainers = (new Trainer(backend, data.Train, data.TrainEval, data.Test, Config.Teacher.Augment ?? Config.Augment, background),
                             new Trainer(backend, studentTrain, data.TrainEval, data.Test, Config.Student.Augment ?? Config.Augment, background))).Value;
    }

    (ImageSet Train, ImageSet TrainEval, ImageSet Validation, ImageSet Test, DatasetInfo Info) ReadData()
    {
        var loaded = Datasets.Load(dataDir, new ImageOptions(Config.ImageSize), CacheDir);
        var (train, test, info) = (loaded.Train, loaded.Test, loaded.Info);
        ImageSet validation = train.Slice(train.Count, 0);
        if (loaded.Validation != null)
        {
            if (Config.ValidationImages > 0) throw new UsageException($"config: validationImages {Config.ValidationImages} but the data has a valid/ split of its own; set validationImages to 0");
            validation = loaded.Validation;
        }
        if (Config.ValidationImages > 0)
        {
            if (Config.ValidationImages >= train.Count) throw new UsageException($"validationImages {Config.ValidationImages} leaves no training images");
            validation = train.Slice(train.Count - Config.ValidationImages, Config.ValidationImages);
            train = train.Take(train.Count - Config.ValidationImages);
        }
        if (fitToData)
        {
            Config = Config.FitTo(new DataSizes(train.Count, validation.Count, test.Count), FitNotices);
            foreach (var notice in FitNotices) AnsiConsole.MarkupLine($"data: {Markup.Escape(notice)}");
        }
        // A user's own configuration is checked against the data, never clamped: it trains on what it says.
        void AtMost(string key, int value, int available, string what)
        {
            if (value > available) throw new UsageException($"config: {key} {value} exceeds the {available} {what}");
        }
        AtMost("trainImages", Config.TrainImages, train.Count, "training images (after the validation split)");
        if (Config.TrainImages > 0) train = train.Take(Config.TrainImages);
        AtMost("studentTrainImages", Config.StudentTrainImages, train.Count, "training images of the teachers");
        AtMost("trainEvalImages", Config.TrainEvalImages, train.Count, "training images");
        AtMost("testImages", Config.TestImages, test.Count, "test images");
        if (Config.TestImages > 0) test = test.Take(Config.TestImages);
        AtMost("analysis.trainImages", Config.Analysis.TrainImages, train.Count, "training images");
        var analysed = validation.Count > 0 ? validation : test;
        AtMost("analysis.testImages", Config.Analysis.TestImages, analysed.Count, validation.Count > 0 ? "validation images" : "test images");
        AtMost("teacher.batch", Config.Teacher.Batch, train.Count, "training images");
        Triple = Config.Analysis.ResolveTriple(info, "config.analysis.triple");
        var studentTrain = Config.StudentTrainImages > 0 ? train.Take(Config.StudentTrainImages) : train;
        AtMost("student.batch", Config.Student.Batch, studentTrain.Count, "training images of the students");

        // Too little data for a study to mean anything: every class needs two images in each split the study uses.
        string source = Path.GetFullPath(dataDir ?? info.DefaultDir);
        void EveryClass(ImageSet set, string split)
        {
            var counts = new int[info.Classes.Length];
            foreach (int label in set.Labels) counts[label]++;
            for (int k = 0; k < counts.Length; k++)
                if (counts[k] < 2)
                    throw new DataException($"{source}: class '{info.Classes[k]}' has {counts[k]} image(s) in {split}; a study needs at least 2 of every class there");
        }
        EveryClass(train, $"the training split ({train.Count} images used)");
        if (studentTrain.Count != train.Count) EveryClass(studentTrain, $"the students' training images (studentTrainImages {Config.StudentTrainImages})");
        EveryClass(test, $"the test split ({test.Count} images used)");
        if (validation.Count > 0) EveryClass(validation, $"the validation split ({validation.Count} images)");
        EveryClass(train.Take(Config.Analysis.TrainImages), $"the analysis training images (analysis.trainImages {Config.Analysis.TrainImages})");
        if (Config.Analysis.TestImages > 0) EveryClass(analysed.Take(Config.Analysis.TestImages), $"the analysis {(validation.Count > 0 ? "validation" : "test")} images (analysis.testImages {Config.Analysis.TestImages})");
        var trainEval = train.Take(Config.TrainEvalImages > 0 ? Config.TrainEvalImages : train.Count);
        return (train, trainEval, validation, test, info);
    }

    /// <summary>Trains every run of this shard that has no record yet. Returns (trained, skipped, diverged).</summary>
    public (int Trained, int Skipped, int Diverged) Run()
    {
        Prepare();
        var runs = Config.Runs();
        var mine = runs.Where((_, i) => shard == null || i % shard.Value.Count == shard.Value.Index).ToList();
        var data = LoadData();
        var (trainer, studentTrainer) = Trainers();
        int trained = 0, skipped = 0, diverged = 0;
        string shardText = shard == null ? "" : $" (shard {shard.Value.Index}/{shard.Value.Count})";
        AnsiConsole.MarkupLine($"study [bold]{Markup.Escape(Config.Name)}[/]{shardText}: {mine.Count} runs on {Markup.Escape(backend.ToString()!)}, " +
                               $"{data.Train.Count} training and {data.Test.Count} test images, results in {Markup.Escape(outDir)}");
        foreach (var spec in mine)
        {
            if (IsDone(spec.Id)) { skipped++; continue; }
            RunRecord record;
            try { record = Train(spec, runs, spec.Kind == RunKind.Teacher ? trainer : studentTrainer, data.Validation, trainer); }
            catch (TeacherDivergedException e)
            {
                // The sweep goes on; the student is recorded as not trainable.
                record = NewRecord(spec, RunStatus.TeacherDiverged, [], [], 0, 0, 0);
                AtomicFile.WriteText(RunPath(outDir, spec.Id), JsonSerializer.Serialize(record, RunRecord.Json));
                AnsiConsole.MarkupLine($"{Markup.Escape(spec.Id)}: skipped, {Markup.Escape(e.Message)}");
            }
            if (record.Status != RunStatus.Finished) diverged++;
            trained++;
            var last = record.Last;
            string acc = last == null ? "no finished epoch" : $"test top-1 {last.Test.Top1:F2}% (best {record.Best!.Test.Top1:F2}% at epoch {record.Best.Epoch})";
            AnsiConsole.MarkupLine($"[[{trained + skipped}/{mine.Count}]] {Markup.Escape(spec.Id)}: {record.Status.Text()}, {acc}, {record.WallSeconds:F1} s, {record.TrainImagesPerSecond:F0} img/s");
        }
        if (skipped > 0) AnsiConsole.MarkupLine($"{skipped} run(s) already finished were skipped (resumed sweep)");
        return (trained, skipped, diverged);
    }

    /// <summary>A run is done when its record exists and, if it finished, its checkpoint too; a finished run whose
    /// checkpoint is gone is trained again (and said so).</summary>
    bool IsDone(string id)
    {
        string path = RunPath(outDir, id);
        if (!File.Exists(path)) return false;
        if (File.Exists(CheckpointPath(outDir, id))) return true;
        RunRecord? record;
        try { record = JsonSerializer.Deserialize<RunRecord>(File.ReadAllText(path), RunRecord.Json); }
        catch (JsonException e) { throw new UsageException($"{path}: corrupt run record ({JsonErrors.Describe(e)}); delete it to train the run again"); }
        if (record?.Status != RunStatus.Finished) return true;
        AnsiConsole.MarkupLine($"{Markup.Escape(id)}: finished, but {Markup.Escape(CheckpointPath(outDir, id))} is missing; training it again");
        return false;
    }

    public string MatchedPath => Path.Combine(outDir, "matched.json");

    /// <summary>The analysis images of the training set: the first Analysis.TrainImages of the study's training images.</summary>
    public ImageSet AnalysisTrain(ImageSet train) => train.Take(Config.Analysis.TrainImages);

    /// <summary>
    /// Matched-entropy distillation (paper appendix G): for each smoothed teacher at each T of
    /// Analysis.MatchTemperatures, find T' at which the unsmoothed teacher's average target entropy (on the analysis
    /// training images) is the same, record the pairs in matched.json, and distil every student architecture from
    /// the unsmoothed teacher at T' (and from the smoothed one at T when T is not already in the sweep). Runs in
    /// the unsharded study or in shard 0, after the main sweep. Returns (trained, skipped).
    /// </summary>
    public (int Trained, int Skipped) RunMatched()
    {
        var a = Config.Analysis;
        if (a.MatchTemperatures.Length == 0 || !Config.Alphas.Contains(0f) || !Config.Alphas.Any(x => x > 0f)) return (0, 0);
        if (shard is { Index: > 0 }) return (0, 0);
        Prepare();
        var all = Config.Runs();
        var data = LoadData();
        var (trainer, studentTrainer) = Trainers();
        var analysisTrain = AnalysisTrain(data.Train);
        var pairs = new List<MatchedPair>();
        foreach (int seed in Config.Seeds)
        {
            try
            {
                var plain = Analysis.SetOutputs.Compute(backend, Teacher(Config.TeacherOf(0f, seed), all, trainer, data.Validation), analysisTrain);
                var smoothed = Config.Alphas.Where(x => x > 0f).ToDictionary(x => x,
                    x => Analysis.SetOutputs.Compute(backend, Teacher(Config.TeacherOf(x, seed), all, trainer, data.Validation), analysisTrain).Logits);
                pairs.AddRange(Matching.Compute(seed, plain.Logits, smoothed, plain.Classes, a.MatchTemperatures));
            }
            catch (TeacherDivergedException e) { AnsiConsole.MarkupLine($"matched-entropy runs of seed {seed} skipped: {Markup.Escape(e.Message)}"); }
        }
        AtomicFile.WriteText(MatchedPath, JsonSerializer.Serialize(pairs, RunRecord.Json));
        var specs = new List<RunSpec>();
        foreach (var p in pairs)
            foreach (var arch in Config.Students)
            {
                var settings = Config.Student with { Model = arch.Model, Width = arch.Width };
                specs.Add(new RunSpec(StudyConfig.MatchedId(arch, 0f, p.MatchedTemperature, p.Seed), RunKind.Matched, settings,
                    new RunLoss.Distillation(new KdConfig(p.MatchedTemperature, Config.Beta)), (ulong)p.Seed, Config.TeacherOf(0f, p.Seed)) { TeacherAlpha = 0f });
                if (!Config.Temperatures.Contains(p.Temperature))
                    specs.Add(new RunSpec(StudyConfig.MatchedId(arch, p.TeacherAlpha, p.Temperature, p.Seed), RunKind.Matched, settings,
                        new RunLoss.Distillation(new KdConfig(p.Temperature, Config.Beta)), (ulong)p.Seed, Config.TeacherOf(p.TeacherAlpha, p.Seed)) { TeacherAlpha = p.TeacherAlpha });
            }
        specs = specs.DistinctBy(s => s.Id).ToList();
        int trained = 0, skipped = 0;
        foreach (var spec in specs)
        {
            if (IsDone(spec.Id)) { skipped++; continue; }
            var record = Train(spec, all, studentTrainer, data.Validation, trainer);
            trained++;
            AnsiConsole.MarkupLine($"[[matched {trained + skipped}/{specs.Count}]] {Markup.Escape(spec.Id)}: {record.Status.Text()}" +
                                   (record.Last is { } l ? $", test top-1 {l.Test.Top1:F2}%" : "") + $", {record.WallSeconds:F1} s");
        }
        return (trained, skipped);
    }

    RunRecord Train(RunSpec spec, List<RunSpec> all, Trainer trainer, ImageSet validation, Trainer teacherTrainer)
    {
        Classifier? teacher = null;
        if (spec.TeacherId != null) teacher = Teacher(spec.TeacherId, all, teacherTrainer, validation);
        var s = spec.Settings;
        var info = LoadData().Info;
        var model = Nets.Models.Create(s.Model, backend, spec.Seed * 1000 + (spec.Kind == RunKind.Teacher ? 1UL : 2UL), s.Width, info.Classes.Length, info.Channels, info.Height);
        Trainer.Outcome outcome;
        if (AnsiConsole.Profile.Capabilities.Interactive)
        {
            outcome = null!;
            AnsiConsole.Progress().AutoClear(true).Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                .Start(ctx =>
                {
                    var task = ctx.AddTask(Markup.Escape(spec.Id));
                    outcome = trainer.Run(spec, model, teacher, (done, total) => { task.MaxValue = total; task.Value = done; });
                });
        }
        else outcome = trainer.Run(spec, model, teacher);

        var epochs = outcome.Epochs;
        if (validation.Count > 0 && outcome.Status == RunStatus.Finished)
        {
            // Validation accuracy of the final model, stored as an extra field of the last epoch's record.
            var v = trainer.Evaluate(model, validation, out _);
            epochs[^1] = epochs[^1] with { Validation = v };
        }
        var record = NewRecord(spec, outcome.Status, epochs, outcome.TestConfusion, outcome.Seconds, outcome.ImagesPerSecond, model.ParameterCount);
        if (outcome.Status == RunStatus.Finished)
            Checkpoint.Save(model, CheckpointPath(outDir, spec.Id), new Dictionary<string, string>(Checkpoint.ShapeMetadata(info.Classes.Length, info.Channels, info.Height))
                { ["run"] = spec.Id, ["study"] = Config.Name, ["width"] = StudyConfig.F(s.Width), ["alpha"] = StudyConfig.F(spec.Alpha) });
        AtomicFile.WriteText(RunPath(outDir, spec.Id), JsonSerializer.Serialize(record, RunRecord.Json));
        if (spec.Kind == RunKind.Teacher && outcome.Status == RunStatus.Finished) { model.Eval(); _teachers[spec.Id] = model; }
        return record;
    }

    RunRecord NewRecord(RunSpec spec, RunStatus status, List<EpochMetrics> epochs, int[] confusion, double seconds, double rate, long parameters) => new()
    {
        Id = spec.Id, Kind = spec.Kind, Model = spec.Settings.Model, Width = spec.Settings.Width, Alpha = spec.Alpha, TeacherAlpha = spec.TeacherAlpha,
        Temperature = spec.Temperature, Beta = spec.Beta, Seed = (int)spec.Seed, TeacherId = spec.TeacherId, Status = status,
        Epochs = epochs, TestConfusion = confusion, WallSeconds = seconds, TrainImagesPerSecond = rate,
        Parameters = parameters, Device = backend.ToString()!, Threads = backend.Threads, Software = Software(), Settings = spec.Settings,
    };

    sealed class TeacherDivergedException(string message) : Exception(message);

    /// <summary>The teacher for a student: from memory, from its checkpoint, or trained now if this shard lacks it.</summary>
    Classifier Teacher(string id, List<RunSpec> all, Trainer trainer, ImageSet validation)
    {
        if (_teachers.TryGetValue(id, out var t)) return t;
        var spec = all.First(r => r.Id == id);
        string path = CheckpointPath(outDir, id);
        if (!IsDone(id))
        {
            AnsiConsole.MarkupLine($"training teacher {Markup.Escape(id)} first (needed by these students)");
            var rec = Train(spec, all, trainer, validation, trainer);
            if (rec.Status != RunStatus.Finished) throw new TeacherDivergedException($"its teacher {id} diverged");
            return _teachers[id];
        }
        if (!File.Exists(path)) throw new TeacherDivergedException($"its teacher {id} diverged");
        var data = LoadData().Info;
        var model = Nets.Models.Create(spec.Settings.Model, backend, 0, spec.Settings.Width, data.Classes.Length, data.Channels, data.Height);
        try { Checkpoint.Load(model, path); }
        catch (CheckpointException e) { throw new UsageException(e.Message); }
        model.Eval();
        return _teachers[id] = model;
    }

    public static Dictionary<string, string> Software() => new()
    {
        ["lskd"] = typeof(StudyRunner).Assembly.GetName().Version?.ToString() ?? "?",
        [".NET"] = Environment.Version.ToString(),
        ["ILGPU"] = typeof(ILGPU.Context).Assembly.GetName().Version?.ToString() ?? "?",
        ["os"] = System.Runtime.InteropServices.RuntimeInformation.OSDescription,
    };
}
