using System.Buffers.Binary;
using System.IO.Compression;

namespace LsKd.Tests;

/// <summary>
/// A small generated data set in the Fashion-MNIST format and folder layout (gzip IDX files with the Debian
/// package's names), so that every test that trains or reads data runs on a machine with only the .NET SDK.
/// Ten 28 x 28 classes: each is a smooth random template; classes of one group of the Fashion-MNIST hierarchy
/// share most of their template, so "similar" classes are similar here too. Images add a random shift, a random
/// contrast and pixel noise, so the classes are learnable in seconds but not trivially separable.
/// </summary>
public static class SyntheticData
{
    public const int TrainCount = 2400, TestCount = 600, Side = 28, Classes = 10;
    static readonly int[][] s_groups = [[0, 2, 4, 6], [5, 7, 9], [1, 3, 8]];
    static readonly Lazy<string> s_dir = new(() => Write(Path.Combine(Path.GetTempPath(), $"lskd-synthetic-{Environment.ProcessId}"), seed: 7));

    /// <summary>The folder of the shared data set, written once per test run.</summary>
    public static string Dir => s_dir.Value;

    /// <summary>Writes train-/t10k- images and labels (gzip) into dir and returns dir.</summary>
    public static string Write(string dir, int seed, int train = TrainCount, int test = TestCount, bool gzip = true)
    {
        Directory.CreateDirectory(dir);
        var rng = new Random(seed);
        var templates = Templates(rng);
        foreach (var (prefix, count) in new[] { ("train", train), ("t10k", test) })
        {
            var labels = new byte[count];
            var pixels = new byte[count * Side * Side];
            for (int i = 0; i < count; i++)
            {
                int c = i % Classes;   // balanced, interleaved so that any prefix holds every class
                labels[i] = (byte)c;
                Draw(templates[c], rng, pixels.AsSpan(i * Side * Side, Side * Side));
            }
            WriteIdx(Path.Combine(dir, $"{prefix}-labels-idx1-ubyte"), labels, [count], gzip);
            WriteIdx(Path.Combine(dir, $"{prefix}-images-idx3-ubyte"), pixels, [count, Side, Side], gzip);
        }
        return dir;
    }

    /// <summary>An IDX file of unsigned bytes: magic 0x000008DD, big-endian sizes, data (gzip when asked).</summary>
    public static void WriteIdx(string path, byte[] data, int[] dims, bool gzip)
    {
        var header = new byte[4 + 4 * dims.Length];
        BinaryPrimitives.WriteUInt32BigEndian(header, 0x0800u | (uint)dims.Length);
        for (int d = 0; d < dims.Length; d++) BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4 + 4 * d), dims[d]);
        if (!gzip) { File.WriteAllBytes(path, [.. header, .. data]); return; }
        using var file = File.Create(path + ".gz");
        using var gz = new GZipStream(file, CompressionLevel.Fastest);
        gz.Write(header); gz.Write(data);
    }

    static float[][] Templates(Random rng)
    {
        var t = new float[Classes][];
        foreach (var group in s_groups)
        {
            var shared = Blob(rng, 5);
            foreach (int c in group)
            {
                var own = Blob(rng, 3);
                t[c] = new float[Side * Side];
                for (int p = 0; p < t[c].Length; p++) t[c][p] = 0.6f * shared[p] + 0.6f * own[p];
            }
        }
        return t;
    }

    /// <summary>A sum of a few Gaussian bumps at random places, values in about [0, 1].</summary>
    static float[] Blob(Random rng, int bumps)
    {
        var b = new float[Side * Side];
        for (int k = 0; k < bumps; k++)
        {
            double cx = 6 + rng.NextDouble() * 16, cy = 6 + rng.NextDouble() * 16, s = 2 + rng.NextDouble() * 3;
            for (int y = 0; y < Side; y++)
                for (int x = 0; x < Side; x++)
                    b[y * Side + x] += (float)Math.Exp(-((x - cx) * (x - cx) + (y - cy) * (y - cy)) / (2 * s * s));
        }
        float max = b.Max();
        for (int p = 0; p < b.Length; p++) b[p] /= max;
        return b;
    }

    static void Draw(float[] template, Random rng, Span<byte> image)
    {
        int dx = rng.Next(-2, 3), dy = rng.Next(-2, 3);
        double contrast = 0.6 + 0.5 * rng.NextDouble();
        for (int y = 0; y < Side; y++)
            for (int x = 0; x < Side; x++)
            {
                int sx = x - dx, sy = y - dy;
                double v = sx is >= 0 and < Side && sy is >= 0 and < Side ? template[sy * Side + sx] * contrast : 0;
                v += 0.25 * (rng.NextDouble() - 0.5);
                image[y * Side + x] = (byte)Math.Clamp(v * 255, 0, 255);
            }
    }
}

/// <summary>Tests that need something this machine may lack (a Debian package) run when it is there and show as
/// skipped, naming the package, when it is not. CI installs everything, so CI runs them all.</summary>
public static class Requires
{
    public const string FashionMnistDir = "/usr/share/datasets/fashion-mnist";

    public static string FashionMnist()
    {
        if (!File.Exists(Path.Combine(FashionMnistDir, "train-images-idx3-ubyte.gz")) && !File.Exists(Path.Combine(FashionMnistDir, "train-images-idx3-ubyte")))
            Assert.Ignore($"needs the Debian package dataset-fashion-mnist ({FashionMnistDir}); install it with scripts/install-deps.sh");
        return FashionMnistDir;
    }
}
