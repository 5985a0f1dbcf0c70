using LsKd.Experiments.Data;

namespace LsKd.Tests;

/// <summary>`lskd pack-data`: the Brotli-packed copy of an IDX data set loads to the same images and labels, is
/// smaller than the gzip files, and bad input is a one-line usage error.</summary>
[TestFixture]
public class PackDataTests
{
    string _tmp = "";

    [SetUp] public void SetUp() => _tmp = Directory.CreateTempSubdirectory("lskd-pack-").FullName;
    [TearDown] public void TearDown() => Directory.Delete(_tmp, recursive: true);

    [Test]
    public void PackedDataLoadsToTheSameImagesAndIsSmaller()
    {
        string packed = Path.Combine(_tmp, "packed");
        var (code, error) = CliRunner.Run("pack-data", "--data-dir", SyntheticData.Dir, "--out", packed, "--quality", "5");
        Assert.That(code, Is.Zero, error);
        Assert.That(Directory.GetFiles(packed, "*.br"), Has.Length.EqualTo(4));
        Assert.That(Directory.GetFiles(packed).Where(f => !f.EndsWith(".br")), Is.Empty, "only the packed files");
        var original = FashionMnist.Load(SyntheticData.Dir);
        var copy = FashionMnist.Load(packed);
        Assert.That(copy.Train.Images, Is.EqualTo(original.Train.Images));
        Assert.That(copy.Train.Labels, Is.EqualTo(original.Train.Labels));
        Assert.That(copy.Test.Images, Is.EqualTo(original.Test.Images));
        Assert.That(copy.Test.Labels, Is.EqualTo(original.Test.Labels));
        long Size(string dir, string pattern) => Directory.GetFiles(dir, pattern).Sum(f => new FileInfo(f).Length);
        Assert.That(Size(packed, "*.br"), Is.LessThan(Size(SyntheticData.Dir, "*.gz")));
    }

    [Test]
    public void ACorruptPackedFileIsADataErrorNamingIt()
    {
        string dir = Path.Combine(_tmp, "bad");
        Assert.That(CliRunner.Run("pack-data", "--data-dir", SyntheticData.Dir, "--out", dir, "--quality", "1").Code, Is.Zero);
        string file = Path.Combine(dir, "train-images-idx3-ubyte.br");
        var bytes = File.ReadAllBytes(file);
        File.WriteAllBytes(file, bytes[..(bytes.Length / 2)]);
        var e = Assert.Throws<DataException>(() => FashionMnist.Load(dir));
        Assert.That(e!.Message, Does.StartWith(file));
    }

    [TestCase("--quality", "12", "--quality must be from 0 to 11")]
    [TestCase("--data-dir", "/nonexistent/lskd", "/nonexistent/lskd")]
    public void BadInputIsAOneLineUsageError(string option, string value, string fragment)
    {
        string[] args = option == "--quality"
            ? ["pack-data", "--data-dir", SyntheticData.Dir, "--out", Path.Combine(_tmp, "o"), option, value]
            : ["pack-data", option, value, "--out", Path.Combine(_tmp, "o")];
        var (code, error) = CliRunner.Run(args);
        Assert.That(code, Is.EqualTo(2), error);
        Assert.That(error.Trim().Split('\n'), Has.Length.EqualTo(1), error);
        Assert.That(error, Does.Contain(fragment));
    }
}
