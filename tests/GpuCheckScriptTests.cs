using System.Diagnostics;
using System.Text.Json;

namespace LsKd.Tests;

/// <summary>scripts/gpu-check.sh and gpu-study.sh, the one-call GPU checks: their limits fit one 600 s call, and on
/// ILGPU's CPU accelerator (tiny shapes) the check leaves results.jsonl, one line per case, and an archive of the
/// logs within 8 files, also when it is killed half-way.</summary>
[TestFixture]
public class GpuCheckScriptTests
{
    static string Root()
    {
        for (var d = new DirectoryInfo(TestContext.CurrentContext.TestDirectory); d != null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "scripts", "gpu-check.sh"))) return d.FullName;
        throw new InvalidOperationException("scripts/gpu-check.sh not found above the test folder");
    }

    static string Lskd => Path.Combine(TestContext.CurrentContext.TestDirectory, "lskd");

    static Process Start(string script, params string[] args)
    {
        var psi = new ProcessStartInfo("setsid", ["bash", Path.Combine(Root(), "scripts", script), .. args])
            { WorkingDirectory = Root(), RedirectStandardOutput = true, RedirectStandardError = true };
        return Process.Start(psi)!;
    }

    static (int Code, string Output) Run(string script, params string[] args)
    {
        using var p = Start(script, args);
        var err = p.StandardError.ReadToEndAsync();
        string output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, output + err.Result);
    }

    /// <summary>(name, limit) per step from a --dry-run listing: " 1. smoke   30 s  lskd ...".</summary>
    static List<(string Name, int Limit)> Steps(string listing) =>
        listing.Split('\n').Select(l => l.Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(f => f.Length > 3 && f[0].EndsWith('.') && int.TryParse(f[0].TrimEnd('.'), out _))
            .Select(f => (f[1], int.Parse(f[2]))).ToList();

    [TestCase("cuda")]
    [TestCase("ilgpu-cpu")]
    public void TheCheckRunsTheSmokeFirstAndItsLimitsSumToAtMost450Seconds(string device)
    {
        var (code, output) = Run("gpu-check.sh", "--device", device, "--dry-run");
        Assert.That(code, Is.Zero, output);
        var steps = Steps(output);
        Assert.That(steps.Select(s => s.Name), Is.EqualTo(new[]
            { "smoke", "ptx", "check-gemm-conv", "gemm", "tf32", "train", "losses", "analysis", "check-rest", "layers", "report" }));
        Assert.That(steps.Sum(s => s.Limit), Is.LessThanOrEqualTo(450));
        Assert.That(steps[0].Limit, Is.LessThanOrEqualTo(30));
        Assert.That(output, Does.Contain($"--device {device}"));
        if (device == "cuda") Assert.That(output, Does.Contain("--rows 65536 --cols 1000"), "losses must not fit in the GPU's L2");
    }

    [Test]
    public void TheStudyFitsOneTenMinuteCall()
    {
        var (code, output) = Run("gpu-study.sh", "--dry-run");
        Assert.That(code, Is.Zero, output);
        var steps = Steps(output);
        Assert.That(steps.Select(s => s.Name), Is.EqualTo(new[] { "teacher", "student-T1", "student-T4" }));
        Assert.That(steps.Sum(s => s.Limit + 5), Is.LessThanOrEqualTo(600));
    }

    [Test]
    public void ABadDeviceIsRefusedInOneLine()
    {
        var (code, output) = Run("gpu-check.sh", "--device", "tpu", "--dry-run");
        Assert.That(code, Is.EqualTo(2));
        Assert.That(output.Trim(), Does.Contain("--device must be cuda or ilgpu-cpu, got 'tpu'"));
    }

    [Test]
    public void OnTheCpuAcceleratorEveryCaseIsOneJsonLineBesideOneArchive()
    {
        string outDir = Path.Combine(Path.GetTempPath(), "lskd-gpu-check-" + Guid.NewGuid().ToString("N"));
        try
        {
            var (code, output) = Run("gpu-check.sh", "--device", "ilgpu-cpu", "--lskd", Lskd, "--out", outDir, "smoke", "gemm", "losses");
            Assert.That(code, Is.Zero, output);
            Assert.That(Directory.GetFileSystemEntries(outDir).Select(Path.GetFileName).Order(), Is.EqualTo(new[] { "logs.tgz", "results.jsonl", "steps.txt" }));
            var lines = File.ReadAllLines(Path.Combine(outDir, "results.jsonl")).Select(l => JsonDocument.Parse(l).RootElement).ToList();
            var byStep = lines.GroupBy(l => l.GetProperty("step").GetString()).ToDictionary(g => g.Key!, g => g.ToList());
            Assert.That(byStep.Keys, Is.EquivalentTo(new[] { "check", "gemm", "losses" }));
            Assert.That(byStep["check"].Count, Is.GreaterThan(20), "one line per GEMM case and kernel variant");
            Assert.That(byStep["check"].All(l => l.GetProperty("passed").GetBoolean()), Is.True);
            Assert.That(byStep["gemm"].Select(l => l.GetProperty("case").GetString()), Has.Some.StartsWith("gemm 32x32x32").And.Some.StartsWith("gemm 64x48x40"));
            Assert.That(byStep["losses"].Count, Is.EqualTo(5), "memcpy, KD and LS-CE times and the two shares of copy bandwidth");
            foreach (var l in lines)
            {
                Assert.That(l.GetProperty("device").GetProperty("backend").GetString(), Is.EqualTo("ilgpu-cpu"));
                Assert.That(l.TryGetProperty("ours", out _) && l.TryGetProperty("ratio", out _) && l.TryGetProperty("peer", out _), Is.True);
            }
            var logs = TarList(Path.Combine(outDir, "logs.tgz"));
            Assert.That(logs, Has.Some.EndsWith("smoke.txt").And.Some.EndsWith("gemm.txt").And.Some.EndsWith("machine.txt"));
        }
        finally { if (Directory.Exists(outDir)) Directory.Delete(outDir, true); }
    }

    [Test]
    public void ARunKilledHalfWayKeepsWhatFinishedWithinEightFiles()
    {
        string outDir = Path.Combine(Path.GetTempPath(), "lskd-gpu-check-" + Guid.NewGuid().ToString("N"));
        try
        {
            using var p = Start("gpu-check.sh", "--device", "ilgpu-cpu", "--lskd", Lskd, "--out", outDir, "smoke", "check-gemm-conv", "train");
            string steps = Path.Combine(outDir, "steps.txt");
            var clock = Stopwatch.StartNew();
            // Kill the whole process group (the script, timeout and lskd) once the first step has finished and the
            // second is running, as the device tool's time limit would.
            while (!(File.Exists(steps) && File.ReadAllText(steps).Contains("=== check-gemm-conv (limit")) && clock.Elapsed.TotalSeconds < 120)
                Thread.Sleep(200);
            Thread.Sleep(2000);
            Assert.That(p.HasExited, Is.False, "the second step should still be running");
            Process.Start("kill", ["-KILL", "--", $"-{p.Id}"])!.WaitForExit();
            p.WaitForExit();

            var files = Directory.GetFiles(outDir, "*", SearchOption.AllDirectories);
            Assert.That(files.Length, Is.LessThanOrEqualTo(8));
            Assert.That(Directory.GetDirectories(outDir), Is.Empty);
            var lines = File.ReadAllLines(Path.Combine(outDir, "results.jsonl"));
            Assert.That(lines.Count(l => l.Contains("\"step\":\"check\"")), Is.GreaterThan(10), "the smoke step's cases are kept");
            foreach (var l in lines.SkipLast(1)) JsonDocument.Parse(l);   // only the line being written at the kill may be cut
            var logs = TarList(Path.Combine(outDir, "logs.tgz"));
            Assert.That(logs, Has.Some.EndsWith("smoke.txt"));
        }
        finally { if (Directory.Exists(outDir)) Directory.Delete(outDir, true); }
    }

    static List<string> TarList(string archive)
    {
        using var p = Process.Start(new ProcessStartInfo("tar", ["tzf", archive]) { RedirectStandardOutput = true })!;
        var names = p.StandardOutput.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries).ToList();
        p.WaitForExit();
        Assert.That(p.ExitCode, Is.Zero, $"{archive} is not a whole gzip tar");
        return names;
    }
}
