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
