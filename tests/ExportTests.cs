using LsKd.Autograd;
using LsKd.Experiments.Analysis;
using LsKd.Experiments.Data;
using LsKd.Nets;

namespace LsKd.Tests;

/// <summary>The .npy exports the analysis reads: valid files whose logits equal features W^T + b.</summary>
[TestFixture]
public class ExportTests
{
    [Test]
    public void ExportsFeaturesLogitsLabelsAndHeadConsistently()
    {
        string dir = Path.Combine(Path.GetTempPath(), "lskd-npy-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            var be = Backends.Get("cpu-v512-2t");
            var (_, test, _) = FashionMnist.Load(SyntheticData.Dir);
            var set = test.Take(37);
            var model = Models.Create("resnet8", be, 3, width: 0.25f);
            Exporter.ExportHead(model, dir);
            Exporter.ExportSet(be, model, set, dir, "test", batch: 16);
            var (fs, f) = Npy.ReadFloat(Path.Combine(dir, "test_features.npy"));
            var (zs, z) = Npy.ReadFloat(Path.Combine(dir, "test_logits.npy"));
            var (ws, w) = Npy.ReadFloat(Path.Combine(dir, "head_weight.npy"));
            var (bs, b) = Npy.ReadFloat(Path.Combine(dir, "head_bias.npy"));
            Assert.That(fs, Is.EqualTo(new[] { 37, 16 }));
            Assert.That(zs, Is.EqualTo(new[] { 37, 10 }));
            Assert.That(ws, Is.EqualTo(new[] { 10, 16 }));
            Assert.That(bs, Is.EqualTo(new[] { 10 }));
            for (int i = 0; i < 37; i++)
                for (int k = 0; k < 10; k++)
                {
                    double expected = b[k];
                    for (int j = 0; j < 16; j++) expected += (double)f[i * 16 + j] * w[k * 16 + j];
                    Assert.That(z[i * 10 + k], Is.EqualTo(expected).Within(1e-4 + 1e-4 * Math.Abs(expected)));
                }
            // Labels are int32 with the standard header; the file is 16-byte-aligned data after a 64-byte multiple header.
            var raw = File.ReadAllBytes(Path.Combine(dir, "test_labels.npy"));
            int header = BitConverter.ToUInt16(raw, 8);
            Assert.That((10 + header) % 64, Is.EqualTo(0));
            Assert.That(System.Text.Encoding.ASCII.GetString(raw, 10, header), Does.Contain("'<i4'").And.Contain("(37,)"));
            Assert.That(raw.Length - 10 - header, Is.EqualTo(37 * 4));
            for (int i = 0; i < 37; i++) Assert.That(BitConverter.ToInt32(raw, 10 + header + 4 * i), Is.EqualTo(set.Labels[i]));
        }
        finally { Directory.Delete(dir, true); }
    }
}
