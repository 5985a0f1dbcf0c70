using System.IO.Compression;
using LsKd.Experiments.Data;

namespace LsKd.Tests;

/// <summary>The IDX reader on the real Fashion-MNIST files (Debian's dataset-fashion-mnist, when installed) and on
/// generated files in the same format (always), intact and damaged.</summary>
[TestFixture]
public class DataTests
{
    static string Dir => SyntheticData.Dir;
    string _tmp = "";

    [SetUp]
    public void SetUp() { _tmp = Path.Combine(Path.GetTempPath(), "lskd-idx-" + Guid.NewGuid().ToString("N")); Directory.CreateDirectory(_tmp); }

    [TearDown]
    public void TearDown() => Directory.Delete(_tmp, true);

    [Test]
    public void ReadsTheRealFiles()
    {
        var (train, test, info) = FashionMnist.Load(Requires.FashionMnist());
        Assert.That(train.Count, Is.EqualTo(60000));
        Assert.That(test.Count, Is.EqualTo(10000));
        Assert.That((train.Channels, train.Height, train.Width), Is.EqualTo((1, 28, 28)));
        Assert.That(info.Classes, Has.Length.EqualTo(10));
        // Balanced classes: 6,000 training and 1,000 test images each.
        for (int c = 0; c < 10; c++)
        {
            Assert.That(train.Labels.Count(l => l == c), Is.EqualTo(6000));
            Assert.That(test.Labels.Count(l => l == c), Is.EqualTo(1000));
        }
        // Normalisation: mean about 0 and standard deviation about 1 over the training set.
        double mean = train.Images.Average(v => (double)v);
        double std = Math.Sqrt(train.Images.Average(v => ((double)v - mean) * ((double)v - mean)));
        Assert.That(mean, Is.EqualTo(0).Within(0.01));
        Assert.That(std, Is.EqualTo(1).Within(0.01));
    }

    [Test]
    public void ReadsGeneratedFiles()
    {
        var (train, test, info) = FashionMnist.Load(Dir);
        Assert.That((train.Count, test.Count), Is.EqualTo((SyntheticData.TrainCount, SyntheticData.TestCount)));
        Assert.That((train.Channels, train.Height, train.Width, train.Classes), Is.EqualTo((1, 28, 28, 10)));
        Assert.That(info.Classes, Has.Length.EqualTo(10));
        for (int c = 0; c < 10; c++) Assert.That(test.Labels.Count(l => l == c), Is.EqualTo(SyntheticData.TestCount / 10));
        // Pixel 0 maps to -mean/std and 255 to (1 - mean)/std.
        Assert.That(train.Images.Min(), Is.GreaterThanOrEqualTo(-info.Mean / info.Std - 1e-5f));
        Assert.That(train.Images.Max(), Is.LessThanOrEqualTo((1 - info.Mean) / info.Std + 1e-5f));
    }

    /// <summary>Writes a decompressed copy of the label file (and images) that tests can damage.</summary>
    (string Images, string Labels) Copy(int keepImages = 60000)
    {
        byte[] Unzip(string name)
        {
            using var gz = new GZipStream(File.OpenRead(Path.Combine(Dir, name + ".gz")), CompressionMode.Decompress);
            using var ms = new MemoryStream(); gz.CopyTo(ms); return ms.ToArray();
        }
        var images = Unzip("t10k-images-idx3-ubyte");
        var labels = Unzip("t10k-labels-idx1-ubyte");
        string ip = Path.Combine(_tmp, "t10k-images-idx3-ubyte"), lp = Path.Combine(_tmp, "t10k-labels-idx1-ubyte");
        File.WriteAllBytes(ip, images[..Math.Min(images.Length, 16 + keepImages * 784)]);
        File.WriteAllBytes(lp, labels);
        return (ip, lp);
    }

    ImageSet LoadCopy() => FashionMnist.LoadPair(_tmp, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", DatasetInfo.Load("fashion-mnist"));

    [Test]
    public void UncompressedCopyReadsTheSame()
    {
        Copy();
        var set = LoadCopy();
        var (_, test, _) = FashionMnist.Load(Dir);
        Assert.That(set.Labels, Is.EqualTo(test.Labels));
        Assert.That(set.Images, Is.EqualTo(test.Images));
    }

    [Test]
    public void TruncatedImagesAreRejected()
    {
        var (ip, _) = Copy();
        var bytes = File.ReadAllBytes(ip);
        File.WriteAllBytes(ip, bytes[..(bytes.Length - 1000)]);
        var e = Assert.Throws<DataException>(() => LoadCopy())!;
        Assert.That(e.Message, Does.Contain(ip).And.Contain("truncated"));
    }

    [Test]
    public void WrongMagicIsRejected()
    {
        var (_, lp) = Copy();
        var bytes = File.ReadAllBytes(lp);
        bytes[3] = 3;   // claims three dimensions
        File.WriteAllBytes(lp, bytes);
        var e = Assert.Throws<DataException>(() => LoadCopy())!;
        Assert.That(e.Message, Does.Contain(lp).And.Contain("magic"));
    }

    [Test]
    public void CountMismatchIsRejected()
    {
        var (ip, lp) = Copy();
        var bytes = File.ReadAllBytes(ip);
        // Keep a valid file of 500 images: rewrite the count and cut the data.
        bytes[4] = 0; bytes[5] = 0; bytes[6] = 0x01; bytes[7] = 0xF4;
        File.WriteAllBytes(ip, bytes[..(16 + 500 * 784)]);
        var e = Assert.Throws<DataException>(() => LoadCopy())!;
        Assert.That(e.Message, Does.Contain(lp).And.Contain($"{SyntheticData.TestCount} labels").And.Contain("500 images"));
    }

    [Test]
    public void LabelOutOfRangeIsRejected()
    {
        var (_, lp) = Copy();
        var bytes = File.ReadAllBytes(lp);
        bytes[8 + 123] = 10;
        File.WriteAllBytes(lp, bytes);
        var e = Assert.Throws<DataException>(() => LoadCopy())!;
        Assert.That(e.Message, Does.Contain(lp).And.Contain("label 10 at index 123"));
    }

    [Test]
    public void MissingFolderNamesTheDebianPackage()
    {
        var e = Assert.Throws<DataException>(() => FashionMnist.Load(Path.Combine(_tmp, "nowhere")))!;
        Assert.That(e.Message, Does.Contain("dataset-fashion-mnist"));
    }

    [Test]
    public void AugmentationIsDeterministicAndKeepsLabels()
    {
        var (_, test, info) = FashionMnist.Load(Dir);
        var set = test.Take(64);
        int[] idx = Enumerable.Range(0, 64).ToArray();
        float[] a = new float[64 * 784], b = new float[64 * 784];
        int[] la = new int[64], lb = new int[64];
        Batches.Fill(set, idx, a, la, true, 3, 1, -info.Mean / info.Std);
        Batches.Fill(set, idx, b, lb, true, 3, 1, -info.Mean / info.Std);
        Assert.That(a, Is.EqualTo(b));
        Assert.That(la, Is.EqualTo(set.Labels));
        Batches.Fill(set, idx, b, lb, true, 3, 2, -info.Mean / info.Std);
        Assert.That(a, Is.Not.EqualTo(b), "another epoch draws other crops and flips");
        Assert.That(Batches.Permutation(100, 3, 1), Is.EquivalentTo(Enumerable.Range(0, 100)));
    }
}
