using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using LsKd.Experiments;
using LsKd.Experiments.Study;
using LsKd.Nets;

namespace LsKd.Tests;

/// <summary>
/// Bad input and faults, one test per class of docs/STUDY.md's promise: every crafted config, checkpoint and data
/// file gets one line and exit code 2, nothing is written outside --out, nothing already written changes, a study
/// folder has one writer, a disk that fills up is reported in one line and a resume completes.
/// </summary>
[TestFixture, NonParallelizable]
public class FaultTests
{
    string _root = "";

    [SetUp]
    public void SetUp() { _root = Path.Combine(Path.GetTempPath(), "lskd-fault-" + Guid.NewGuid().ToString("N")); Directory.CreateDirectory(_root); }

    [TearDown]
    public void TearDown() { if (Directory.Exists(_root)) Directory.Delete(_root, true); }

    static string LastError = "";

    /// <summary>Runs the CLI in-process; returns the exit code, keeps stderr in LastError.</summary>
    static int Cli(params string[] args)
    {
        (int code, LastError) = CliRunner.Run(args);
        return code;
    }

    /// <summary>Exit code 2 and exactly one line on stderr that contains every given fragment.</summary>
    static void AssertOneLine(int code, params string[] fragments)
    {
        Assert.That(code, Is.EqualTo(2), LastError);
        var lines = LastError.Trim().Split('\n');
        Assert.That(lines, Has.Length.EqualTo(1), LastError);
        Assert.That(LastError, Does.Not.Contain("   at "), "no stack trace");
        foreach (var f in fragments) Assert.That(LastError, Does.Contain(f));
    }

    /// <summary>Every file under dir with its SHA-256, to check that nothing changed.</summary>
    static Dictionary<string, string> Snapshot(string dir) => !Directory.Exists(dir) ? [] :
        Directory.GetFiles(dir, "*", SearchOption.AllDirectories).Where(f => Path.GetFileName(f) != StudyLock.FileName)
            .ToDictionary(f => f, f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f))));

    /// <summary>Eight short runs: two teachers, four students, two baselines.</summary>
    static object TinyConfig(string name = "tiny") => new
    {
        name, trainImages = 256, testImages = 100, trainEvalImages = 64,
        teacher = new { model = "resnet8", width = 0.25, epochs = 1, batch = 32, lr = 0.05 },
        student = new { epochs = 1, batch = 32, lr = 0.05 },
        students = new[] { new { model = "resnet8", width = 0.25 } },
        temperatures = new[] { 1.0, 4.0 }, classWiseTemperatures = new[] { 4.0 },
        analysis = new { trainImages = 64, testImages = 50, etaPairs = new[] { new[] { 1.0, 4.0 } }, matchTemperatures = Array.Empty<double>(), visTrainPoints = 10, visValidationPoints = 5, pairwiseSamplesPerClass = 4 },
    };

    string WriteConfig(object config, string file = "config-in.json")
    {
        string path = Path.Combine(_root, file);
        File.WriteAllText(path, config as string ?? JsonSerializer.Serialize(config));
        return path;
    }

    int Study(string configPath, string outDir, params string[] more) =>
        Cli(["study", "--config", configPath, "--out", outDir, "--data-dir", SyntheticData.Dir, "--device", "cpu", "--threads", "2", "--no-analysis", .. more]);

    // ---- files outside --out ------------------------------------------------------------------------------

    [TestCase("..")]
    [TestCase(".")]
    [TestCase("a\nb")]
    [TestCase("../escape")]
    [TestCase(".hidden")]
    [TestCase("")]
    public void AStudyNameCannotLeadOutsideOut(string name)
    {
        string outDir = Path.Combine(_root, "out");
        Directory.CreateDirectory(outDir);
        var before = Snapshot(_root);
        string cfg = WriteConfig(JsonSerializer.Serialize(new { name }));
        before = Snapshot(_root);
        AssertOneLine(Study(cfg, outDir), "name", "plain folder name");
        Assert.That(Snapshot(_root), Is.EqualTo(before), "nothing written anywhere");
    }

    // ---- validation before the first write ------------------------------------------------------------------

    static IEnumerable<TestCaseData> BadConfigs()
    {
        yield return new TestCaseData("{\"temperatures\": []}", "temperatures must not be empty").SetName("empty temperatures");
        yield return new TestCaseData("{\"alphas\": [0, 0.1, 0.1]}", "alphas: 0.1 appears more than once").SetName("duplicate alpha");
        yield return new TestCaseData("{\"alphas\": [0, 0.0001]}", "").SetName("alpha 0.0001 is its own run");
        yield return new TestCaseData("{\"seeds\": [1, 1]}", "seeds: 1 appears more than once").SetName("duplicate seed");
        yield return new TestCaseData("{\"temperatures\": [1, 2, 2]}", "temperatures: 2 appears more than once").SetName("duplicate temperature");
        yield return new TestCaseData("{\"students\": [{\"model\": \"resnet8\", \"width\": 0.5}, {\"model\": \"resnet8\", \"width\": 0.5}]}", "students: resnet8 at width 0.5 appears more than once").SetName("duplicate student");
        yield return new TestCaseData("{\"analysis\": {\"triple\": [\"Shirt\", \"Shirt\", \"Sneaker\"]}}", "triple: Shirt appears more than once").SetName("duplicate triple class");
        yield return new TestCaseData("{\"trainImages\": -5}", "image counts must be >= 0").SetName("negative image count");
        yield return new TestCaseData("{\"trainImages\": 999999}", "trainImages 999999 exceeds").SetName("more images than the data");
        yield return new TestCaseData("{\"testImages\": 999999}", "testImages 999999 exceeds").SetName("more test images than the data");
        yield return new TestCaseData("{\"trainImages\": 100, \"teacher\": {\"batch\": 128}}", "teacher.batch 128 exceeds").SetName("batch larger than the data");
        yield return new TestCaseData("{\"teacher\": {\"width\": 1e30}}", "width 1E+30 is outside").SetName("huge width");
        yield return new TestCaseData("{\"teacher\": {\"width\": \"Infinity\"}}", "expected a number").SetName("width as a string");
        yield return new TestCaseData("{\"alphas\": [\"a\"]}", "invalid value at $.alphas[0]").SetName("alpha as a string");
        yield return new TestCaseData("{\"beta\": 2}", "beta 2 is outside [0, 1]").SetName("beta above 1");
    }

    [TestCaseSource(nameof(BadConfigs))]
    public void BadConfigurationIsRefusedBeforeAnythingIsWritten(string json, string fragment)
    {
        // Start from the tiny study so that only the field under test is wrong.
        var node = System.Text.Json.Nodes.JsonNode.Parse(JsonSerializer.Serialize(TinyConfig()))!.AsObject();
        foreach (var (k, v) in System.Text.Json.Nodes.JsonNode.Parse(json)!.AsObject())
        {
            if (v is System.Text.Json.Nodes.JsonObject o && node[k] is System.Text.Json.Nodes.JsonObject existing)
                foreach (var (k2, v2) in o) existing[k2] = v2?.DeepClone();
            else node[k] = v?.DeepClone();
        }
        string cfg = WriteConfig(node.ToJsonString());
        string outDir = Path.Combine(_root, "out");
        int code = Study(cfg, outDir);
        if (fragment.Length == 0)
        {
            Assert.That(code, Is.EqualTo(0), LastError);
            return;
        }
        AssertOneLine(code, fragment);
        Assert.That(Directory.Exists(outDir) ? Directory.GetFileSystemEntries(outDir, "*", SearchOption.AllDirectories).Where(f => Path.GetFileName(f) != StudyLock.FileName) : [], Is.Empty, "nothing written");
    }

    [Test]
    public void ExactRunIdsKeepCloseAlphasApart()
    {
        var c = StudyConfig.Preset("smoke") with { Alphas = [0f, 0.0001f] };
        var ids = c.Runs().Select(r => r.Id).ToList();
        Assert.That(ids, Is.Unique);
        Assert.That(ids, Does.Contain("teacher-a0.0001-s1"));
    }

    [TestCase("train-teacher", "--train-images", "-5", "--train-images must be >= 0")]
    [TestCase("train-teacher", "--train-images", "999999", "--train-images 999999 exceeds")]
    [TestCase("train-teacher", "--width", "1e30", "width 1E+30 is outside")]
    [TestCase("train-teacher", "--width", "Infinity", "width Infinity is outside")]
    [TestCase("train-teacher", "--threads", "2147483647", "--threads must be from 0")]
    [TestCase("train-teacher", "--alpha", "1", "label smoothing alpha 1 is outside [0, 1)")]
    public void BadFlagsGiveOneLine(string command, string flag, string value, string fragment)
    {
        string outDir = Path.Combine(_root, "single");
        AssertOneLine(Cli(command, "--data-dir", SyntheticData.Dir, "--out", outDir, "--epochs", "1", flag, value), fragment);
        Assert.That(Directory.Exists(outDir) ? Directory.GetFiles(outDir, "*", SearchOption.AllDirectories) : [], Is.Empty);
    }

    [Test]
    public void TrainTeacherChecksOutBeforeTraining()
    {
        var sw = Stopwatch.StartNew();
        AssertOneLine(Cli("train-teacher", "--data-dir", SyntheticData.Dir, "--out", "/proc/lskd-no", "--epochs", "50"), "--out", "/proc/lskd-no");
        Assert.That(sw.Elapsed.TotalSeconds, Is.LessThan(30), "refused at once, not after 50 epochs");
    }

    // ---- divergence everywhere -----------------------------------------------------------------------------

    [TestCase("student")]
    [TestCase("teacher")]
    public void AStudyWhereEveryRunOfAKindDivergesStillWritesItsReport(string kind)
    {
        var node = System.Text.Json.Nodes.JsonNode.Parse(JsonSerializer.Serialize(TinyConfig()))!.AsObject();
        node[kind]!["lr"] = 1e30;
        node[kind]!["momentum"] = 0;
        string cfg = WriteConfig(node.ToJsonString());
        string outDir = Path.Combine(_root, "out");
        int code = Cli("study", "--config", cfg, "--out", outDir, "--data-dir", SyntheticData.Dir, "--device", "cpu", "--threads", "2");
        Assert.That(code, Is.EqualTo(0), LastError);
        string dir = Path.Combine(outDir, "tiny");
        Assert.That(File.ReadAllText(Path.Combine(dir, "report.md")), Does.Contain("## Diverged runs"));
        Assert.That(File.ReadAllLines(Path.Combine(dir, "runs.csv")), Has.Length.EqualTo(9));
        // And again: the rerun resumes everything and writes the same report.
        Assert.That(Cli("study", "--config", cfg, "--out", outDir, "--data-dir", SyntheticData.Dir, "--device", "cpu", "--threads", "2"), Is.EqualTo(0), LastError);
    }

    // ---- crafted checkpoints --------------------------------------------------------------------------------

    /// <summary>A valid checkpoint whose header JSON is rewritten (the payload hash stays right).</summary>
    string Crafted(string name, Func<System.Text.Json.Nodes.JsonObject, System.Text.Json.Nodes.JsonNode?> edit)
    {
        string good = Path.Combine(_root, "good.safetensors");
        if (!File.Exists(good))
        {
            var model = Models.Create("mlp", Backends.Get("cpu-v512-2t"), 1, 0.25f);
            Checkpoint.Save(model, good, new Dictionary<string, string> { ["width"] = "0.25" });
        }
        var bytes = File.ReadAllBytes(good);
        int headerLen = (int)BitConverter.ToUInt64(bytes, 0);
        var header = System.Text.Json.Nodes.JsonNode.Parse(Encoding.UTF8.GetString(bytes, 8, headerLen))!.AsObject();
        var edited = edit(header) ?? header;
        var newHeader = Encoding.UTF8.GetBytes(edited.ToJsonString());
        string path = Path.Combine(_root, name + ".safetensors");
        using var f = File.Create(path);
        f.Write(BitConverter.GetBytes((ulong)newHeader.Length));
        f.Write(newHeader);
        f.Write(bytes.AsSpan(8 + headerLen));
        return path;
    }

    static string FirstTensor(System.Text.Json.Nodes.JsonObject h) => h.Select(kv => kv.Key).First(k => k != "__metadata__");

    static IEnumerable<TestCaseData> CraftedHeaders()
    {
        // Each header field with each wrong JSON kind.
        var kinds = new (string Name, Func<System.Text.Json.Nodes.JsonNode?> Value)[]
        {
            ("number", () => System.Text.Json.Nodes.JsonValue.Create(7)), ("string", () => System.Text.Json.Nodes.JsonValue.Create("x")),
            ("null", () => null), ("array", () => new System.Text.Json.Nodes.JsonArray(1, 2)), ("object", () => new System.Text.Json.Nodes.JsonObject()),
            ("boolean", () => System.Text.Json.Nodes.JsonValue.Create(true)),
        };
        foreach (var (kind, value) in kinds)
        {
            if (kind != "object") yield return new TestCaseData("tensor entry", kind, value).SetName($"tensor entry as {kind}");
            if (kind != "array") yield return new TestCaseData("shape", kind, value).SetName($"shape as {kind}");
            if (kind != "array") yield return new TestCaseData("data_offsets", kind, value).SetName($"data_offsets as {kind}");
            if (kind != "string") yield return new TestCaseData("dtype", kind, value).SetName($"dtype as {kind}");
            if (kind != "object") yield return new TestCaseData("__metadata__", kind, value).SetName($"metadata as {kind}");
            yield return new TestCaseData("shape[0]", kind, value).SetName($"shape element as {kind}");
            yield return new TestCaseData("data_offsets[0]", kind, value).SetName($"offset as {kind}");
        }
        yield return new TestCaseData("shape[0]", "huge", (Func<System.Text.Json.Nodes.JsonNode?>)(() => System.Text.Json.Nodes.JsonValue.Create(2147483647))).SetName("huge shape");
        yield return new TestCaseData("shape[0]", "negative", (Func<System.Text.Json.Nodes.JsonNode?>)(() => System.Text.Json.Nodes.JsonValue.Create(-4))).SetName("negative shape");
        yield return new TestCaseData("shape", "overflow", (Func<System.Text.Json.Nodes.JsonNode?>)(() => new System.Text.Json.Nodes.JsonArray(65536, 65536, 65536, 65536))).SetName("shape product overflowing int64");
        yield return new TestCaseData("shape[0]", "too long", (Func<System.Text.Json.Nodes.JsonNode?>)(() => System.Text.Json.Nodes.JsonValue.Create(1e20))).SetName("shape beyond int");
        yield return new TestCaseData("hash", "missing", (Func<System.Text.Json.Nodes.JsonNode?>)(() => null)).SetName("no payload hash");
    }

    [TestCaseSource(nameof(CraftedHeaders))]
    public void CraftedCheckpointHeadersGiveOneLineEverywhere(string field, string kind, Func<System.Text.Json.Nodes.JsonNode?> value)
    {
        string path = Crafted("crafted", h =>
        {
            string t = FirstTensor(h);
            switch (field)
            {
                case "tensor entry": h[t] = value(); break;
                case "__metadata__": h["__metadata__"] = value(); break;
                case "hash": h["__metadata__"]!.AsObject().Remove("payload_sha256"); break;
                case "shape[0]": h[t]!["shape"]!.AsArray()[0] = value(); break;
                case "data_offsets[0]": h[t]!["data_offsets"]!.AsArray()[0] = value(); break;
                default: h[t]![field] = value(); break;
            }
            return h;
        });
        var study = Path.Combine(_root, "study");
        foreach (var args in new[]
                 {
                     new[] { "eval", "--checkpoint", path, "--data-dir", SyntheticData.Dir },
                     new[] { "advise", "--teacher", path, "--data-dir", SyntheticData.Dir },
                     new[] { "distill", "--teacher", path, "--data-dir", SyntheticData.Dir, "--out", Path.Combine(_root, "d"), "--epochs", "1" },
                 })
            AssertOneLine(Cli(args), path);
        Assert.Throws<CheckpointException>(() => Checkpoint.Read(path));
    }

    [Test]
    public void ACraftedCheckpointInAStudyFolderGivesOneLineOnResumeAndExport()
    {
        string cfg = WriteConfig(TinyConfig());
        string outDir = Path.Combine(_root, "out");
        string dir = Path.Combine(outDir, "tiny");
        Assert.That(Study(cfg, outDir), Is.EqualTo(0), LastError);
        // The teacher's checkpoint gets a header with a string shape; a student must be retrained, so the resume loads it.
        string teacher = Path.Combine(dir, "checkpoints", "teacher-a0-s1.safetensors");
        var bytes = File.ReadAllBytes(teacher);
        int headerLen = (int)BitConverter.ToUInt64(bytes, 0);
        var header = System.Text.Json.Nodes.JsonNode.Parse(Encoding.UTF8.GetString(bytes, 8, headerLen))!.AsObject();
        header[FirstTensor(header)]!["shape"] = "[16]";
        var newHeader = Encoding.UTF8.GetBytes(header.ToJsonString());
        File.WriteAllBytes(teacher, [.. BitConverter.GetBytes((ulong)newHeader.Length), .. newHeader, .. bytes.AsSpan(8 + headerLen)]);
        string student = Directory.GetFiles(Path.Combine(dir, "runs"), "student-*a0-T1*.json").Single();
        File.Delete(student);
        AssertOneLine(Study(cfg, outDir), teacher, "shape");
        AssertOneLine(Cli("export", "--out", dir, "--data-dir", SyntheticData.Dir, "--train-images", "10"), teacher, "shape");
    }

    // ---- data files ---------------------------------------------------------------------------------------

    [Test]
    public void AGzipMemberThatInflatesBeyondItsHeaderIsRefusedWithoutReadingItAll()
    {
        string dir = Path.Combine(_root, "bomb");
        SyntheticData.Write(dir, seed: 3, train: 100, test: 50);
        // A label file whose header promises 50 labels, followed by 200 MB of zeros (gzip shrinks them to ~200 KB).
        string labels = Path.Combine(dir, "t10k-labels-idx1-ubyte.gz");
        using (var f = File.Create(labels))
        using (var gz = new System.IO.Compression.GZipStream(f, System.IO.Compression.CompressionLevel.Fastest))
        {
            gz.Write([0, 0, 8, 1, 0, 0, 0, 50]);
            var zeros = new byte[1 << 20];
            for (int i = 0; i < 200; i++) gz.Write(zeros);
        }
        long before = GC.GetTotalAllocatedBytes(true);
        var e = Assert.Throws<LsKd.Experiments.Data.DataException>(() => LsKd.Experiments.Data.Idx.Read(labels, 1))!;
        Assert.That(e.Message, Does.Contain(labels).And.Contain("holds more"));
        Assert.That(GC.GetTotalAllocatedBytes(true) - before, Is.LessThan(20 << 20), "the member is not inflated whole");
        AssertOneLine(Cli("eval", "--checkpoint", Path.Combine(_root, "none.safetensors"), "--data-dir", dir), "none.safetensors");
    }

    [Test]
    public void AnIdxHeaderPromisingTooMuchIsRefused()
    {
        string path = Path.Combine(_root, "big-idx3-ubyte");
        File.WriteAllBytes(path, [0, 0, 8, 3, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0x10, 0, 0, 0, 0x10, 0]);
        var e = Assert.Throws<LsKd.Experiments.Data.DataException>(() => LsKd.Experiments.Data.Idx.Read(path, 3))!;
        Assert.That(e.Message, Does.Contain(path).And.Contain("more than this tool reads"));
    }

    // ---- one writer per folder, resume checks ---------------------------------------------------------------

    [Test]
    public void ASecondWriterIsRefusedWhileTheFirstHoldsTheFolder()
    {
        string cfg = WriteConfig(TinyConfig());
        string outDir = Path.Combine(_root, "out");
        string dir = Path.Combine(outDir, "tiny");
        // Another process holds the lock: a child that opens the lock file with FileShare.None semantics (flock).
        if (!File.Exists("/usr/bin/flock")) Assert.Ignore("needs flock(1) from Debian's util-linux to hold the lock from another process");
        Directory.CreateDirectory(dir);
        using var holder = Process.Start(new ProcessStartInfo("flock", ["-x", Path.Combine(dir, StudyLock.FileName), "sleep", "30"]) { RedirectStandardError = true })!;
        Thread.Sleep(500);
        try
        {
            AssertOneLine(Study(cfg, outDir), "in use by another lskd process", dir);
            Assert.That(Directory.GetFiles(dir), Is.EquivalentTo(new[] { Path.Combine(dir, StudyLock.FileName) }), "nothing written by the refused run");
        }
        finally { holder.Kill(entireProcessTree: true); holder.WaitForExit(); }
        Assert.That(Study(cfg, outDir), Is.EqualTo(0), LastError);
    }

    [Test]
    public void AResumeWithOtherThreadsOrDataIsRefusedAndStrayTemporariesAreRemoved()
    {
        string cfg = WriteConfig(TinyConfig());
        string outDir = Path.Combine(_root, "out");
        string dir = Path.Combine(outDir, "tiny");
        Assert.That(Study(cfg, outDir), Is.EqualTo(0), LastError);
        var before = Snapshot(dir);
        AssertOneLine(Cli("study", "--config", cfg, "--out", outDir, "--data-dir", SyntheticData.Dir, "--device", "cpu", "--threads", "1", "--no-analysis"),
            "1 thread(s)", "2 thread(s)", "--threads");
        string other = SyntheticData.Write(Path.Combine(_root, "other-data"), seed: 99, train: 300, test: 120);
        AssertOneLine(Cli("study", "--config", cfg, "--out", outDir, "--data-dir", other, "--device", "cpu", "--threads", "2", "--no-analysis"), "--data-dir", other);
        Assert.That(Snapshot(dir), Is.EqualTo(before), "refused resumes change nothing");
        // A killed writer's temporary files go when the next run takes the lock.
        string stray = Path.Combine(dir, "runs", $".x.json.{12345}.{Guid.NewGuid():N}.tmp");
        File.WriteAllText(stray, "{ half");
        Assert.That(Study(cfg, outDir), Is.EqualTo(0), LastError);
        Assert.That(File.Exists(stray), Is.False);
    }

    [Test]
    public void AFinishedRunWhoseCheckpointIsGoneIsTrainedAgain()
    {
        string cfg = WriteConfig(TinyConfig());
        string outDir = Path.Combine(_root, "out");
        string dir = Path.Combine(outDir, "tiny");
        Assert.That(Study(cfg, outDir), Is.EqualTo(0), LastError);
        var ckpt = Directory.GetFiles(Path.Combine(dir, "checkpoints")).First(f => Path.GetFileName(f).StartsWith("baseline", StringComparison.Ordinal));
        var bytes = File.ReadAllBytes(ckpt);
        File.Delete(ckpt);
        Assert.That(Study(cfg, outDir), Is.EqualTo(0), LastError);
        Assert.That(File.ReadAllBytes(ckpt), Is.EqualTo(bytes), "retrained, bit-identical");
    }

    [Test]
    public void ARunRecordHoldingNullIsReported()
    {
        string cfg = WriteConfig(TinyConfig());
        string outDir = Path.Combine(_root, "out");
        string dir = Path.Combine(outDir, "tiny");
        Assert.That(Study(cfg, outDir), Is.EqualTo(0), LastError);
        string record = Directory.GetFiles(Path.Combine(dir, "runs")).First();
        File.WriteAllText(record, "null");
        AssertOneLine(Cli("report", "--out", dir), record, "null");
    }

    [Test]
    public void ARefusedDifferentStudyCreatesNothing()
    {
        string outDir = Path.Combine(_root, "out");
        string dir = Path.Combine(outDir, "tiny");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), "{}");
        AssertOneLine(Study(WriteConfig(TinyConfig()), outDir), "different configuration");
        Assert.That(Directory.GetFileSystemEntries(dir), Is.EquivalentTo(new[] { Path.Combine(dir, "config.json") }));
    }

    // ---- a full disk --------------------------------------------------------------------------------------

    /// <summary>The study runs in a private mount namespace on a 120 KiB tmpfs: it fails with one line when the disk
    /// fills, leaves every finished file intact, and a resume after the tmpfs grows completes with every run.</summary>
    [Test]
    public void AFullDiskGivesOneLineAndAResumeAfterFreeingSpaceCompletes()
    {
        if (Environment.UserName != "root" || !File.Exists("/usr/bin/unshare"))
            Assert.Ignore("needs root and unshare (util-linux) for a tmpfs in a private mount namespace");
        string lskd = Path.Combine(TestContext.CurrentContext.TestDirectory, "lskd.dll");
        string cfg = WriteConfig(TinyConfig());
        string mnt = Path.Combine(_root, "mnt");
        Directory.CreateDirectory(mnt);
        string log = Path.Combine(_root, "log");
        string study = $"dotnet {lskd} study --config {cfg} --out {mnt} --data-dir {SyntheticData.Dir} --device cpu --threads 2 --no-analysis";
        string script = $"""
            set -u
            mount -t tmpfs -o size=120k tmpfs {mnt} || exit 90
            {study} > {log}.out1 2> {log}.err1; echo $? > {log}.rc1
            ls {mnt}/tiny/runs > {log}.runs1
            sha256sum {mnt}/tiny/checkpoints/* > {log}.sha1 2>/dev/null
            mount -o remount,size=64m {mnt}
            sha256sum --quiet -c {log}.sha1 > {log}.check 2>&1; echo $? > {log}.rc-check
            {study} > {log}.out2 2> {log}.err2; echo $? > {log}.rc2
            ls {mnt}/tiny/runs > {log}.runs2
            ls -a {mnt}/tiny/runs {mnt}/tiny/checkpoints | grep -c '\.tmp$' > {log}.tmp2
            """;
        var p = Process.Start(new ProcessStartInfo("unshare", ["--mount", "--propagation", "private", "sh", "-c", script]) { RedirectStandardError = true })!;
        string err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode == 90) Assert.Ignore($"cannot mount a tmpfs here: {err}");
        string R(string suffix) => File.ReadAllText(log + suffix).Trim();
        Assert.That(R(".rc1"), Is.EqualTo("2"), R(".err1"));
        Assert.That(R(".err1").Split('\n'), Has.Length.EqualTo(1), R(".err1"));
        Assert.That(R(".err1"), Does.Contain("No space left on device").And.Contain("rerun to resume"));
        Assert.That(R(".rc-check"), Is.EqualTo("0"), "checkpoints written before the disk filled are intact: " + R(".check"));
        Assert.That(R(".rc2"), Is.EqualTo("0"), R(".err2"));
        Assert.That(R(".runs2").Split('\n'), Has.Length.EqualTo(8), "every run finished after the resume");
        Assert.That(R(".runs1").Split('\n', StringSplitOptions.RemoveEmptyEntries).Length, Is.LessThan(8), "the disk filled before the end");
        Assert.That(R(".tmp2"), Is.EqualTo("0"), "no temporary files left");
    }
}
