using System.Buffers.Binary;
using LsKd.Experiments;
using LsKd.Experiments.Data;
using LsKd.Nets;
using SkiaSharp;

namespace LsKd.Tests;

/// <summary>A study on the user's own data: an image folder written by the test (PNG, three classes with distinct
/// patterns, RGB), end to end through study (with its analysis) and advise; crafted files refused in one line with
/// nothing written; the decode cache used and rebuilt.</summary>
[TestFixture, NonParallelizable]
public class OwnDataTests
{
    string _root = "";

    [SetUp]
    public void SetUp() { _root = Path.Combine(Path.GetTempPath(), "lskd-own-" + Guid.NewGuid().ToString("N")); Directory.CreateDirectory(_root); }

    [TearDown]
    public void TearDown() { if (Directory.Exists(_root)) Directory.Delete(_root, true); }

    static readonly string[] Classes = ["circles", "stripes", "waves"];

    /// <summary>Writes DIR/{train,test}/&lt;class&gt;/*.png: 32 x 32 RGB (a few 30 x 30, resized to the most common size).</summary>
    static string WriteFolder(string dir, int perClassTrain = 40, int perClassTest = 20, int seed = 1)
    {
        var rng = new Random(seed);
        foreach (var (split, count) in new[] { ("train", perClassTrain), ("test", perClassTest) })
            for (int c = 0; c < Classes.Length; c++)
            {
                string folder = Path.Combine(dir, split, Classes[c]);
                Directory.CreateDirectory(folder);
                for (int i = 0; i < count; i++)
                {
                    int size = i % 10 == 9 ? 30 : 32;
                    using var bmp = new SKBitmap(new SKImageInfo(size, size, SKColorType.Rgba8888, SKAlphaType.Unpremul));
                    double phase = rng.NextDouble() * 6;
                    for (int y = 0; y < size; y++)
                        for (int x = 0; x < size; x++)
                        {
                            double v = c switch
                            {
                                0 => Math.Sin(Math.Sqrt((x - 16) * (x - 16) + (y - 16) * (y - 16)) * 0.8 + phase),
                                1 => Math.Sin(x * 0.9 + phase),
                                _ => Math.Sin(y * 0.5 + Math.Sin(x * 0.3) * 2 + phase),
                            };
                            byte b = (byte)Math.Clamp(128 + 100 * v + rng.Next(-20, 21), 0, 255);
                            bmp.SetPixel(x, y, c == 0 ? new SKColor(b, 60, 60) : c == 1 ? new SKColor(60, b, 60) : new SKColor(60, 60, b));
                        }
                    using var image = SKImage.FromBitmap(bmp);
                    using var png = image.Encode(SKEncodedImageFormat.Png, 100);
                    File.WriteAllBytes(Path.Combine(folder, $"{i:D3}.png"), png.ToArray());
                }
            }
        return dir;
    }

    static string LastError = "";

    static int Cli(params string[] args)
    {
        (int code, LastError) = CliRunner.Run(args);
        return code;
    }

    string Config()
    {
        string path = Path.Combine(_root, "own.json");
        File.WriteAllText(path, System.Text.Json.JsonSerializer.Serialize(new
        {
            name = "own", trainEvalImages = 60,
            teacher = new { model = "resnet8", width = 0.5, epochs = 3, batch = 16, lr = 0.05 },
            student = new { epochs = 2, batch = 16, lr = 0.05 },
            students = new[] { new { model = "resnet8", width = 0.25 } },
            temperatures = new[] { 1.0, 4.0 }, classWiseTemperatures = new[] { 4.0 },
            analysis = new { trainImages = 60, testImages = 60, etaPairs = new[] { new[] { 1.0, 4.0 } }, matchTemperatures = new[] { 1.0 }, visTrainPoints = 5, visValidationPoints = 5, pairwiseSamplesPerClass = 4 },
        }));
        return path;
    }

    [Test]
    public void AnImageFolderTrainsAboveChanceThroughStudyAnalyzeAndAdvise()
    {
        string data = WriteFolder(Path.Combine(_root, "data"));
        string outDir = Path.Combine(_root, "results");
        Assert.That(Cli("study", "--config", Config(), "--out", outDir, "--data-dir", data, "--device", "cpu", "--threads", "2"), Is.EqualTo(0), LastError);
        string dir = Path.Combine(outDir, "own");
        var runs = LsKd.Experiments.Study.Report.LoadRuns([dir]);
        var teachers = runs.Where(r => r.Kind == LsKd.Experiments.Study.RunKind.Teacher).ToList();
        Assert.That(teachers, Has.Count.EqualTo(2));
        foreach (var t in teachers) Assert.That(t.Last!.Test.Top1, Is.GreaterThan(60), $"{t.Id}: chance is 33 %");
        Assert.That(teachers[0].Last!.Test.PerClass, Has.Length.EqualTo(3));
        string report = File.ReadAllText(Path.Combine(dir, "report.md"));
        Assert.That(report, Does.Contain("circles").And.Contain("no class hierarchy").And.Contain("## Verdict"));
        var (meta, tensors) = Checkpoint.Read(Path.Combine(dir, "checkpoints", "teacher-a0.1-s1.safetensors"));
        Assert.That((meta["classes"], meta["in_channels"], meta["image_size"]), Is.EqualTo(("3", "3", "32")));
        var info = LsKd.Experiments.Study.StudyRunner.StudyDataset(dir, LsKd.Experiments.Study.StudyConfig.FromFile(Path.Combine(dir, "config.json")));
        Assert.That(info.Classes, Is.EqualTo(Classes));
        Assert.That((info.Channels, info.Height), Is.EqualTo((3, 32)));
        // advise and eval read the folder at the checkpoint's size.
        Assert.That(Cli("advise", "--teacher", Path.Combine(dir, "checkpoints", "teacher-a0.1-s1.safetensors"), "--data-dir", data, "--train-images", "60", "--study", dir), Is.EqualTo(0), LastError);
        Assert.That(Cli("eval", "--checkpoint", Path.Combine(dir, "checkpoints", "teacher-a0-s1.safetensors"), "--data-dir", data), Is.EqualTo(0), LastError);
        // A checkpoint of another data set is refused in one line.
        Assert.That(Cli("eval", "--checkpoint", Path.Combine(dir, "checkpoints", "teacher-a0-s1.safetensors"), "--data-dir", SyntheticData.Dir), Is.EqualTo(2));
        Assert.That(LastError, Does.Contain("3 outputs").And.Contain("10 classes"));
    }

    /// <summary>The case: a folder of 1,200 PNGs (three classes, 300 training and 100 test images each) is
    /// smaller than the presets' counts; smoke and quick fit their counts to it, say so once per count, record the
    /// fitted counts in config.json (a resume is exact) and finish.</summary>
    [Test]
    public void PresetsFitTheirCountsToASmallFolderAndSaySo()
    {
        string data = WriteFolder(Path.Combine(_root, "data"), 300, 100);
        string outDir = Path.Combine(_root, "results");
        var (code, output, error) = CliRunner.RunWithOutput("study", "--preset", "smoke", "--out", outDir, "--data-dir", data, "--device", "cpu", "--threads", "2");
        Assert.That(code, Is.EqualTo(0), error);
        Assert.That(output, Does.Contain("data: trainImages 1024 -> 900: the data holds 900 training images").And.Contain("data: testImages 500 -> 300: the data holds 300 test images"));
        Assert.That(output, Does.Not.Contain("trainEvalImages").And.Not.Contain("analysis.trainImages"), "counts that fit are not changed");
        var smoke = LsKd.Experiments.Study.StudyConfig.FromFile(Path.Combine(outDir, "smoke", "config.json"));
        Assert.That((smoke.TrainImages, smoke.TestImages, smoke.TrainEvalImages), Is.EqualTo((900, 300, 256)));
        Assert.That(File.Exists(Path.Combine(outDir, "smoke", "report.md")));
        var teacher = LsKd.Experiments.Study.Report.LoadRuns([Path.Combine(outDir, "smoke")]).First(r => r.Kind == LsKd.Experiments.Study.RunKind.Teacher);
        var perClass = Enumerable.Range(0, 3).Select(k => teacher.TestConfusion.Skip(3 * k).Take(3).Sum());   // rows: the true class
        Assert.That(perClass, Is.EqualTo(new[] { 100, 100, 100 }), "every class's test images");
        // The same preset on the same folder resumes: the fitted config.json matches.
        (code, output, error) = CliRunner.RunWithOutput("study", "--preset", "smoke", "--out", outDir, "--data-dir", data, "--device", "cpu", "--threads", "2", "--no-analysis");
        Assert.That(code, Is.EqualTo(0), error);
        Assert.That(output, Does.Contain("already finished were skipped"));

        (code, output, error) = CliRunner.RunWithOutput("study", "--preset", "quick", "--out", outDir, "--data-dir", data, "--device", "cpu", "--threads", "2");
        Assert.That(code, Is.EqualTo(0), error);
        foreach (var notice in new[] { "studentTrainImages 20000 -> 900", "testImages 10000 -> 300", "trainEvalImages 2000 -> 900", "analysis.trainImages 2000 -> 900", "analysis.testImages 2000 -> 300" })
            Assert.That(output, Does.Contain("data: " + notice), notice);
        var quick = LsKd.Experiments.Study.StudyConfig.FromFile(Path.Combine(outDir, "quick", "config.json"));
        Assert.That((quick.StudentTrainImages, quick.TestImages, quick.Analysis.TrainImages, quick.Analysis.TestImages), Is.EqualTo((900, 300, 900, 300)));
        Assert.That(File.ReadAllText(Path.Combine(outDir, "quick", "report.md")), Does.Contain("## Verdict"));
    }

    [Test]
    public void AClassWithOneTestImageIsRefusedInOneLine()
    {
        string data = WriteFolder(Path.Combine(_root, "data"), 30, 10);
        foreach (var f in Directory.GetFiles(Path.Combine(data, "test", "waves")).Skip(1)) File.Delete(f);
        string outDir = Path.Combine(_root, "results");
        Assert.That(Cli("study", "--preset", "smoke", "--out", outDir, "--data-dir", data, "--device", "cpu", "--threads", "1"), Is.EqualTo(2), LastError);
        Assert.That(LastError.Trim().Split('\n'), Has.Length.EqualTo(1), LastError);
        Assert.That(LastError, Does.Contain("class 'waves' has 1 image(s) in the test split"));
        Assert.That(Directory.Exists(Path.Combine(outDir, "smoke")), Is.False, "nothing written");
    }

    [Test]
    public void AnExplicitCountAboveTheDataIsRefusedNamingTheField()
    {
        string data = WriteFolder(Path.Combine(_root, "data"), 40, 20);
        string config = Config();
        File.WriteAllText(config, File.ReadAllText(config).Replace("\"trainEvalImages\":60", "\"trainEvalImages\":60,\"testImages\":500"));
        string outDir = Path.Combine(_root, "results");
        Assert.That(Cli("study", "--config", config, "--out", outDir, "--data-dir", data, "--device", "cpu", "--threads", "1"), Is.EqualTo(2), LastError);
        Assert.That(LastError.Trim().Split('\n'), Has.Length.EqualTo(1), LastError);
        Assert.That(LastError, Does.Contain("testImages 500 exceeds the 60 test images"));
        Assert.That(Directory.Exists(Path.Combine(outDir, "own")), Is.False, "nothing written");
    }

    [Test]
    public void AClassesFileGivesTheHierarchy()
    {
        string data = WriteFolder(Path.Combine(_root, "data"), 4, 2);
        File.WriteAllText(Path.Combine(data, Datasets.HierarchyFile), "{\"groups\": {\"periodic\": [\"stripes\", \"waves\"], \"round\": [\"circles\"]}}");
        var d = Datasets.Load(data);
        Assert.That(d.Info.HasHierarchy);
        Assert.That(d.Info.SimilarTo(1), Is.EqualTo(new[] { 2 }));
        File.WriteAllText(Path.Combine(data, Datasets.HierarchyFile), "{\"groups\": {\"periodic\": [\"stripes\", \"squares\"]}}");
        Assert.That(Assert.Throws<DataException>(() => Datasets.Load(data))!.Message, Does.Contain("'squares' is not a class"));
    }

    [Test]
    public void AnIdxSetWithItsOwnDescriptor()
    {
        string data = SyntheticData.Write(Path.Combine(_root, "idx"), seed: 4, train: 100, test: 50);
        File.WriteAllText(Path.Combine(data, Datasets.DescriptorFile), "{\"name\": \"digits\", \"classes\": [\"0\",\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\"], \"mean\": 0.2, \"std\": 0.3}");
        var d = Datasets.Load(data);
        Assert.That(d.Info.Name, Is.EqualTo("digits"));
        Assert.That(d.Info.HasHierarchy, Is.False);
        Assert.That(d.Train.Images.Min(), Is.EqualTo(-0.2f / 0.3f).Within(1e-5), "pixel 0 maps to -mean/std of the descriptor");
    }

    [Test]
    public void TheDecodeCacheIsUsedAndRebuiltWhenASourceChanges()
    {
        string data = WriteFolder(Path.Combine(_root, "data"), 6, 3);
        string cache = Path.Combine(_root, "cache");
        var first = ImageFolder.Load(data, new ImageOptions(), cache);
        Assert.That(first.Info.Source, Does.Not.Contain("from the cache"));
        Assert.That(Directory.GetFiles(cache), Has.Length.EqualTo(1));
        var second = ImageFolder.Load(data, new ImageOptions(), cache);
        Assert.That(second.Info.Source, Does.Contain("from the cache"));
        Assert.That(second.Train.Images, Is.EqualTo(first.Train.Images));
        // Touch a source file: the cache no longer matches and is rebuilt.
        string file = Directory.GetFiles(Path.Combine(data, "train", "waves"))[0];
        File.SetLastWriteTimeUtc(file, DateTime.UtcNow.AddMinutes(5));
        Assert.That(ImageFolder.Load(data, new ImageOptions(), cache).Info.Source, Does.Not.Contain("from the cache"));
        Assert.That(ImageFolder.Load(data, new ImageOptions(), cache).Info.Source, Does.Contain("from the cache"));
        // A damaged cache is ignored, not trusted.
        var path = Directory.GetFiles(cache)[0];
        var bytes = File.ReadAllBytes(path); bytes[^1] ^= 0xFF; File.WriteAllBytes(path, bytes);
        Assert.That(ImageFolder.Load(data, new ImageOptions(), cache).Info.Source, Does.Not.Contain("from the cache"));
    }

    static uint Crc32(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? 0xEDB88320 ^ (crc >> 1) : crc >> 1;
        }
        return ~crc;
    }

    static IEnumerable<TestCaseData> Crafted()
    {
        yield return new TestCaseData("truncated", "cannot be decoded").SetName("truncated PNG");
        yield return new TestCaseData("huge", "100000 x 100000 pixels is more than the limit").SetName("PNG header claiming 100000 x 100000");
        yield return new TestCaseData("text", "not a readable PNG or JPEG").SetName("text file named .jpg");
        yield return new TestCaseData("empty", "has no .png, .jpg or .jpeg images").SetName("empty class folder");
        yield return new TestCaseData("mismatch", "differ from train's").SetName("mismatched class sets");
    }

    [TestCaseSource(nameof(Crafted))]
    public void CraftedFilesGiveOneLineAndWriteNothing(string kind, string fragment)
    {
        string data = WriteFolder(Path.Combine(_root, "data"), 4, 2);
        string victim = Directory.GetFiles(Path.Combine(data, "train", "stripes"))[0];
        switch (kind)
        {
            case "truncated": File.WriteAllBytes(victim, File.ReadAllBytes(victim)[..200]); break;
            case "huge":
                {
                    var png = File.ReadAllBytes(victim);   // IHDR data starts at 16: width, height (big-endian), CRC over type + data at 29
                    BinaryPrimitives.WriteInt32BigEndian(png.AsSpan(16), 100000);
                    BinaryPrimitives.WriteInt32BigEndian(png.AsSpan(20), 100000);
                    BinaryPrimitives.WriteUInt32BigEndian(png.AsSpan(29), Crc32(png.AsSpan(12, 17)));
                    File.WriteAllBytes(victim, png);
                    break;
                }
            case "text": File.WriteAllText(Path.Combine(data, "train", "stripes", "notes.jpg"), "not an image"); victim = Path.Combine(data, "train", "stripes", "notes.jpg"); break;
            case "empty": foreach (var f in Directory.GetFiles(Path.Combine(data, "test", "waves"))) File.Delete(f); victim = Path.Combine(data, "test", "waves"); break;
            case "mismatch": Directory.Move(Path.Combine(data, "test", "waves"), Path.Combine(data, "test", "ripples")); victim = Path.Combine(data, "test"); break;
        }
        string outDir = Path.Combine(_root, "results");
        Assert.That(Cli("study", "--config", Config(), "--out", outDir, "--data-dir", data, "--device", "cpu", "--threads", "1"), Is.EqualTo(2), LastError);
        Assert.That(LastError.Trim().Split('\n'), Has.Length.EqualTo(1), LastError);
        Assert.That(LastError, Does.Contain(victim).And.Contain(fragment));
        Assert.That(Directory.Exists(Path.Combine(outDir, "own")), Is.False, "nothing written");
    }
}
