using System.Text.Json;
using LsKd.Experiments;
using LsKd.Experiments.Data;
using LsKd.Experiments.Study;

namespace LsKd.Tests;

/// <summary>The study end to end: the smoke preset, resuming after a kill, shard merging, divergence and bad input.</summary>
[TestFixture, NonParallelizable]
public class StudyTests
{
    string _root = "";
    static readonly DatasetInfo Info = DatasetInfo.Load("fashion-mnist");

    [SetUp]
    public void SetUp() { _root = Path.Combine(Path.GetTempPath(), "lskd-study-" + Guid.NewGuid().ToString("N")); Directory.CreateDirectory(_root); }

    [TearDown]
    public void TearDown() { if (Directory.Exists(_root)) Directory.Delete(_root, true); }

    /// <summary>Eight runs of a second or less: two teachers, four students, two baselines.</summary>
    static StudyConfig Tiny(string name = "tiny") => new()
    {
        Name = name, TrainImages = 512, TestImages = 200, TrainEvalImages = 64,
        Teacher = new TrainSettings { Model = "resnet8", Width = 0.25f, Epochs = 1, Batch = 32, Lr = 0.05f },
        Student = new TrainSettings { Epochs = 1, Batch = 32, Lr = 0.05f },
        Students = [new StudentArch("resnet8", 0.25f)],
        Temperatures = [1f, 4f], ClassWiseTemperatures = [4f],
        Analysis = new LsKd.Experiments.Analysis.AnalysisSettings { TrainImages = 64, TestImages = 50, EtaPairs = [[1f, 4f]] },
    };

    static (int, int, int) RunStudy(StudyConfig c, string dir, (int, int)? shard = null)
    {
        using var runner = new StudyRunner(c, dir, Backends.Get("cpu-v512-2t"), SyntheticData.Dir, shard);
        return runner.Run();
    }

    static string Tables(string dir, StudyConfig c, params string[] more)
    {
        var runs = Report.LoadRuns([dir, .. more]);
        string md = Report.Write(c, runs, dir, Info);
        return md[..md.IndexOf("## Timing", StringComparison.Ordinal)];
    }

    [Test]
    public void SharedTeachersServeEverySeed()
    {
        Assert.That(StudyConfig.Preset("standard").Runs().Count(r => r.Kind == RunKind.Teacher), Is.EqualTo(6), "the standard preset: a teacher per seed and alpha");
        var c = StudyConfig.Preset("standard") with { ShareTeacher = true };
        var runs = c.Runs();
        Assert.That(runs.Where(r => r.Kind == RunKind.Teacher).Select(r => r.Id), Is.EqualTo(new[] { "teacher-a0-s1", "teacher-a0.1-s1" }));
        var students = runs.Where(r => r.Kind == RunKind.Student).ToList();
        Assert.That(students.Select(r => r.Seed).Distinct(), Is.EquivalentTo(new ulong[] { 1, 2, 3 }));
        Assert.That(students.All(r => r.TeacherId == $"teacher-a{StudyConfig.F(r.TeacherAlpha)}-s1"));
        Assert.That((Tiny() with { Seeds = [1, 2] }).Runs().Count(r => r.Kind == RunKind.Teacher), Is.EqualTo(4), "without sharing, a teacher per seed");
    }

    [Test]
    public void SmokePresetRunsEndToEnd()
    {
        var c = StudyConfig.Preset("smoke");
        string dir = Path.Combine(_root, "smoke");
        var (trained, skipped, diverged) = RunStudy(c, dir);
        int expected = c.Runs().Count;
        Assert.That((trained, skipped, diverged), Is.EqualTo((expected, 0, 0)));
        Assert.That(File.Exists(Path.Combine(dir, "config.json")));
        Assert.That(Directory.GetFiles(Path.Combine(dir, "runs"), "*.json"), Has.Length.EqualTo(expected));
        Assert.That(Directory.GetFiles(Path.Combine(dir, "checkpoints"), "*.safetensors"), Has.Length.EqualTo(expected));
        var runs = Report.LoadRuns([dir]);
        foreach (var r in runs)
        {
            Assert.That(r.Epochs, Has.Count.EqualTo(r.Settings.Epochs), r.Id);
            foreach (var e in r.Epochs)
            {
                Assert.That(double.IsFinite(e.TrainLoss) && double.IsFinite(e.Test.Top1) && double.IsFinite(e.Test.Top5), r.Id);
                Assert.That(e.Test.PerClass, Has.Length.EqualTo(10));
            }
            Assert.That(r.TestConfusion.Sum(), Is.EqualTo(500), r.Id);
            Assert.That(r.Software, Contains.Key(".NET"));
        }
        // Above chance (10 % for ten classes): the teachers learn something even in seconds.
        foreach (var t in runs.Where(r => r.Kind == RunKind.Teacher)) Assert.That(t.Last!.Test.Top1, Is.GreaterThan(15), t.Id);
        string md = Report.Write(c, runs, dir, Info);
        Assert.That(md, Does.Contain("## Teachers").And.Contain("Student T = 4").And.Contain("Class-wise").And.Contain("Students: mobilenetv2"));
        Assert.That(md, Does.Not.Contain("n/a"), "every table cell is filled");
        Assert.That(File.ReadAllLines(Path.Combine(dir, "runs.csv")), Has.Length.EqualTo(expected + 1));
    }

    /// <summary>Without augmentation a student reads its teacher's logits from a cache made once per run; it must train
    /// exactly as with the teacher run on every batch (the same losses, fp32 rounding apart).</summary>
    [Test]
    public void CachedTeacherLogitsTrainTheSameStudentAsTheTeacherOnEveryBatch()
    {
        var be = Backends.Get("cpu-v512-2t");
        var (train, test, _) = LsKd.Experiments.Data.FashionMnist.Load(SyntheticData.Dir);
        train = train.Take(512); test = test.Take(100);
        var teacher = LsKd.Nets.Models.Create("resnet8", be, 7, 0.25f);
        var spec = new RunSpec("student", RunKind.Student, new TrainSettings { Epochs = 2, Batch = 32, Lr = 0.05f },
            new RunLoss.Distillation(new LsKd.Kernels.KdConfig(4f)), 3, "teacher");
        List<EpochMetrics> Run(bool cache)
        {
            var student = LsKd.Nets.Models.Create("resnet8", be, 11, 0.25f);
            var trainer = new Trainer(be, train, train.Take(64), test, augment: false, 0f) { CacheTeacherLogits = cache };
            return trainer.Run(spec, student, teacher).Epochs;
        }
        var cached = Run(true);
        var direct = Run(false);
        for (int e = 0; e < 2; e++)
        {
            Assert.That(cached[e].TrainLoss, Is.EqualTo(direct[e].TrainLoss).Within(1e-4 * direct[e].TrainLoss), $"epoch {e + 1} loss");
            Assert.That(cached[e].Test.Top1, Is.EqualTo(direct[e].Test.Top1).Within(2.0), $"epoch {e + 1} test top-1");
        }
    }

    [Test]
    public void ResumesAfterAKillWithoutRetrainingFinishedRuns()
    {
        var c = Tiny();
        string dir = Path.Combine(_root, "tiny");
        RunStudy(c, dir);
        string before = Tables(dir, c);
        // A kill during run X leaves no record of X (it is written last) and maybe a temporary file.
        string victim = c.Runs()[4].Id;
        File.Delete(StudyRunner.RunPath(dir, victim));
        File.Delete(StudyRunner.CheckpointPath(dir, victim));
        File.WriteAllText(Path.Combine(dir, "runs", $".{victim}.json.123.tmp"), "{ half-writ");
        var (trained, skipped, _) = RunStudy(c, dir);
        Assert.That((trained, skipped), Is.EqualTo((1, c.Runs().Count - 1)));
        Assert.That(Tables(dir, c), Is.EqualTo(before), "the resumed sweep reproduces the same results");
    }

    [Test]
    public void MergedShardsGiveTheSameTablesAsOneRun()
    {
        var c = Tiny();
        string whole = Path.Combine(_root, "whole"), a = Path.Combine(_root, "a"), b = Path.Combine(_root, "b");
        RunStudy(c, whole);
        RunStudy(c, a, (0, 2));
        RunStudy(c, b, (1, 2));
        Assert.That(Report.LoadRuns([a]).Count, Is.LessThan(c.Runs().Count), "a shard trains only part of the sweep (plus teachers it needs)");
        Assert.That(Tables(a, c, b), Is.EqualTo(Tables(whole, c)));
    }

    [Test]
    public void DivergedRunsAreRecordedAndTheSweepGoesOn()
    {
        var c = Tiny() with { Student = new TrainSettings { Epochs = 1, Batch = 32, Lr = 1e30f, Momentum = 0f } };
        string dir = Path.Combine(_root, "diverge");
        var (trained, _, diverged) = RunStudy(c, dir);
        Assert.That(trained, Is.EqualTo(c.Runs().Count));
        Assert.That(diverged, Is.GreaterThan(0));
        var runs = Report.LoadRuns([dir]);
        Assert.That(runs.Where(r => r.Kind == RunKind.Teacher).All(r => r.Status == RunStatus.Finished));
        Assert.That(runs.Any(r => r.Status == RunStatus.Diverged));
        Assert.That(Report.Write(c, runs, dir, Info), Does.Contain("## Diverged runs"));
    }

    [Test]
    public void AFolderHoldingAnotherStudyIsRefusedAndKept()
    {
        var c = Tiny();
        string dir = Path.Combine(_root, "keep");
        RunStudy(c, dir);
        var files = Directory.GetFiles(dir, "*", SearchOption.AllDirectories).ToDictionary(f => f, File.ReadAllBytes);
        var e = Assert.Throws<UsageException>(() => RunStudy(c with { Alphas = [0f, 0.2f] }, dir))!;
        Assert.That(e.Message, Does.Contain("different configuration"));
        foreach (var (f, bytes) in files) Assert.That(File.ReadAllBytes(f), Is.EqualTo(bytes), f);
    }

    static int Cli(params string[] args)
    {
        (int code, LastError) = CliRunner.Run(args);
        return code;
    }

    static string LastError = "";

    [Test]
    public void BadInputGivesOneLineAndExitCode2()
    {
        string cfg = Path.Combine(_root, "bad.json");
        File.WriteAllText(cfg, JsonSerializer.Serialize(new { name = "x", alphas = new[] { 0.0 }, temperaturez = new[] { 1.0 } }));
        Assert.That(Cli("study", "--config", cfg, "--out", _root), Is.EqualTo(2));
        Assert.That(LastError, Does.Contain("temperaturez").And.Contain(cfg));
        Assert.That(LastError.Trim().Split('\n'), Has.Length.EqualTo(1));

        File.WriteAllText(cfg, JsonSerializer.Serialize(new { name = "x", alphas = new[] { 1.0 } }));
        Assert.That(Cli("study", "--config", cfg, "--out", _root), Is.EqualTo(2));
        Assert.That(LastError, Does.Contain("alpha 1 is outside [0, 1)"));

        File.WriteAllText(cfg, JsonSerializer.Serialize(new { name = "x", temperatures = new[] { 0.0 } }));
        Assert.That(Cli("study", "--config", cfg, "--out", _root), Is.EqualTo(2));
        Assert.That(LastError, Does.Contain("temperature 0 is not a finite positive number"));

        File.WriteAllText(cfg, JsonSerializer.Serialize(new { name = "x", students = new[] { new { model = "resnet9", width = 1 } } }));
        Assert.That(Cli("study", "--config", cfg, "--out", _root), Is.EqualTo(2));
        Assert.That(LastError, Does.Contain("unknown model 'resnet9'"));

        Assert.That(Cli("study", "--preset", "huge", "--out", _root), Is.EqualTo(2));
        Assert.That(LastError, Does.Contain("unknown preset 'huge'"));

        Assert.That(Cli("study", "--preset", "smoke", "--out", "/proc/lskd-cannot-write", "--data-dir", SyntheticData.Dir), Is.EqualTo(2));
        Assert.That(LastError, Does.Contain("/proc/lskd-cannot-write"));

        Assert.That(Cli("study", "--preset", "smoke", "--out", _root, "--data-dir", Path.Combine(_root, "nothing")), Is.EqualTo(2));
        Assert.That(LastError, Does.Contain("dataset-fashion-mnist"));

        Assert.That(Cli("distill", "--teacher", Path.Combine(_root, "missing.safetensors"), "--temperature", "2"), Is.EqualTo(2));
        Assert.That(LastError, Does.Contain("missing.safetensors"));
        Assert.That(Cli("distill", "--teacher", "x", "--temperature", "-1"), Is.EqualTo(2));
        Assert.That(LastError, Does.Contain("--temperature"));
    }
}
