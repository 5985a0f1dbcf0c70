using System.Text.RegularExpressions;

namespace LsKd.Tests;

/// <summary>Experiments' folders import one way: Commands → Study → Analysis (and Data). Analysis is pure
/// measurement and knows nothing of studies or the CLI; Study knows nothing of the CLI.</summary>
[TestFixture]
public class ArchitectureTests
{
    static string RepoRoot()
    {
        var dir = new DirectoryInfo(TestContext.CurrentContext.TestDirectory);
        while (dir != null && !File.Exists(Path.Combine(dir.FullName, "LsKd.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("LsKd.sln not found above the test folder");
    }

    [TestCase("Analysis", "Study", "Commands")]
    [TestCase("Study", "Commands")]
    [TestCase("Data", "Study", "Commands", "Analysis")]
    public void FolderDoesNotImport(string folder, params string[] forbidden)
    {
        var files = Directory.GetFiles(Path.Combine(RepoRoot(), "src", "Experiments", folder), "*.cs");
        Assert.That(files, Is.Not.Empty);
        foreach (var file in files)
        {
            string text = File.ReadAllText(file);
            foreach (var f in forbidden)
            {
                // A using directive or a qualified name (LsKd.Experiments.Study., Study.X, Commands.X) both count.
                var pattern = new Regex($@"\bLsKd\.Experiments\.{f}\b|(?<![\w.]){f}\.[A-Z]");
                var m = pattern.Match(text);
                Assert.That(m.Success, Is.False, $"{Path.GetFileName(file)} in {folder} refers to {f}: '{(m.Success ? m.Value : "")}'");
            }
        }
    }
}

/// <summary>`lskd bench report`: every file it promises, with the fields a reader needs (no peer: the test must
/// not depend on PyTorch).</summary>
[TestFixture, NonParallelizable]
public class BenchReportTests
{
    [Test]
    public void QuickReportWritesJsonPerCaseSummaryAndRoofline()
    {
        string root = Path.Combine(Path.GetTempPath(), "lskd-bench-" + Guid.NewGuid().ToString("N"));
        try
        {
            var err = new StringWriter(); var old = Console.Error; Console.SetError(err);
            int code;
            try { code = LsKd.Experiments.Program.Main(["bench", "report", "--device", "cpu", "--threads", "1", "--quick", "--no-peer", "--out", root]); }
            finally { Console.SetError(old); }
            Assert.That(code, Is.EqualTo(0), err.ToString());
            string dir = Directory.GetDirectories(root).Single();
            Assert.That(Path.GetFileName(dir), Does.StartWith("cpu-").And.EndWith("-1t"));
            var machine = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "machine.json"))).RootElement;
            Assert.That(machine.GetProperty("fma_peak_gflops").GetDouble(), Is.GreaterThan(1));
            Assert.That(machine.GetProperty("copy_bandwidth_gbs").GetDouble(), Is.GreaterThan(0.1));
            var cases = Directory.GetFiles(dir, "*.json").Where(f => Path.GetFileName(f) != "machine.json").ToList();
            Assert.That(cases.Select(Path.GetFileName), Has.Some.StartsWith("gemm-").And.Some.StartsWith("conv3x3").And.Some.StartsWith("kd-loss").And.Some.StartsWith("dw3x3"));
            foreach (var f in cases)
            {
                var c = System.Text.Json.JsonDocument.Parse(File.ReadAllText(f)).RootElement;
                foreach (var key in new[] { "median_ms", "p20_ms", "p80_ms", "flops", "bytes", "gflops", "intensity" })
                    Assert.That(c.GetProperty(key).GetDouble(), Is.GreaterThan(0), $"{Path.GetFileName(f)}: {key}");
                Assert.That(c.GetProperty("p20_ms").GetDouble(), Is.LessThanOrEqualTo(c.GetProperty("p80_ms").GetDouble()));
                Assert.That(c.GetProperty("machine").GetProperty("processor").GetString(), Is.Not.Empty);
                Assert.That(c.GetProperty("command").GetString(), Does.Contain("bench report"));
            }
            string md = File.ReadAllText(Path.Combine(dir, "summary.md"));
            Assert.That(md, Does.Contain("## GEMM").And.Contain("## Convolutions").And.Contain("## Fused losses").And.Contain("roofline.png"));
            using var png = SkiaSharp.SKBitmap.Decode(Path.Combine(dir, "roofline.png"));
            Assert.That(png, Is.Not.Null);
            Assert.That(png.Width, Is.GreaterThan(500));
        }
        finally { if (Directory.Exists(root)) Directory.Delete(root, true); }
    }
}
