using System.Reflection;
using System.Text.Json;

namespace LsKd.Experiments.Data;

/// <summary>Class names and the class hierarchy of a dataset, from its data file (Data/&lt;name&gt;.json).</summary>
public sealed record DatasetInfo(string Name, string DebianPackage, string DefaultDir, Dictionary<string, string> Files,
    float Mean, float Std, string[] Classes, Dictionary<string, int[]> Hierarchy, string[]? ResidualGroups = null)
{
    /// <summary>Image shape the models are built for.</summary>
    public int Channels { get; init; } = 1;
    public int Height { get; init; } = 28;
    public int Width { get; init; } = 28;
    /// <summary>Where the data came from, for reports ("Debian's dataset-fashion-mnist", "image folder /data/x").</summary>
    public string Source { get; init; } = "";
    /// <summary>True when a class hierarchy (groups of similar classes) is known; without one the analysis uses
    /// feature-distance sets alone.</summary>
    public bool HasHierarchy => Hierarchy.Count > 0;

    static readonly JsonSerializerOptions s_json = new() { PropertyNameCaseInsensitive = true };

    public static DatasetInfo Load(string name)
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream($"LsKd.Experiments.Data.{name}.json")
            ?? throw new DataException($"unknown dataset '{name}'; known: fashion-mnist");
        return JsonSerializer.Deserialize<DatasetInfo>(stream, s_json)!;
    }

    /// <summary>The group (from the hierarchy) each class belongs to.</summary>
    public string GroupOf(int cls) => Hierarchy.FirstOrDefault(g => g.Value.Contains(cls)).Key ?? "";

    /// <summary>Semantically similar classes of a class (S1 of the diffusion index): the other members of its
    /// hierarchy group, or none for a residual group ("everything else", whose members are not alike).</summary>
    public int[] SimilarTo(int cls)
    {
        var group = Hierarchy.FirstOrDefault(g => g.Value.Contains(cls));
        if (group.Value == null) return [];
        return ResidualGroups?.Contains(group.Key) == true ? [] : group.Value.Where(k => k != cls).ToArray();
    }
}

/// <summary>A labelled image set held in memory: images normalised to zero mean and unit variance (per-dataset
/// constants), [count, channels, height, width] row-major.</summary>
public sealed class ImageSet
{
    public ImageSet(float[] images, int[] labels, int channels, int height, int width, int classes)
    {
        Images = images; Labels = labels; Channels = channels; Height = height; Width = width; Classes = classes;
    }

    public float[] Images { get; }
    public int[] Labels { get; }
    public int Channels { get; }
    public int Height { get; }
    public int Width { get; }
    public int Classes { get; }
    public int Count => Labels.Length;
    public int ImageSize => Channels * Height * Width;

    /// <summary>The first n images (or all), as a new set sharing nothing.</summary>
    public ImageSet Take(int n) => Slice(0, Math.Min(n, Count));

    public ImageSet Slice(int start, int count) =>
        new(Images.AsSpan(start * ImageSize, count * ImageSize).ToArray(), Labels.AsSpan(start, count).ToArray(), Channels, Height, Width, Classes);
}

public static class FashionMnist
{
    /// <summary>The IDX layout's descriptor: Debian's Fashion-MNIST, or the dataset.json in dir.</summary>
    public static DatasetInfo Info(string? dir) =>
        dir != null && File.Exists(Path.Combine(dir, Datasets.DescriptorFile)) ? Datasets.ReadDescriptor(Path.Combine(dir, Datasets.DescriptorFile))
            : DatasetInfo.Load("fashion-mnist");

    /// <summary>Writes every IDX file of the data set in dir Brotli-compressed (name.br, about 13 % smaller than the
    /// gzip files: what lets the whole training set travel beside the binary to a lent GPU), plus its dataset.json
    /// and classes.json. Each file is checked by parsing it first and written atomically.</summary>
    public static IReadOnlyList<(string File, long Bytes)> Pack(string? dir, string outDir, int quality = 11)
    {
        var info = Info(dir);
        dir ??= info.DefaultDir;
        Directory.CreateDirectory(outDir);
        var written = new List<(string, long)>();
        foreach (var (key, stem) in info.Files)
        {
            var (dims, data) = Idx.Read(Find(dir, stem, info), key.EndsWith("Images", StringComparison.Ordinal) ? 3 : 1);
            var raw = new byte[4 + 4 * dims.Length + data.Length];
            raw[2] = 0x08; raw[3] = (byte)dims.Length;
            for (int i = 0; i < dims.Length; i++) System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(raw.AsSpan(4 + 4 * i), dims[i]);
            data.CopyTo(raw, 4 + 4 * dims.Length);
            var packed = new byte[System.IO.Compression.BrotliEncoder.GetMaxCompressedLength(raw.Length)];
            if (!System.IO.Compression.BrotliEncoder.TryCompress(raw, packed, out int length, quality, 24))
                throw new DataException($"{stem}: Brotli compression failed");
            string path = Path.Combine(outDir, stem + ".br");
            LsKd.Nets.AtomicFile.Write(path, s => s.Write(packed, 0, length));
            written.Add((path, length));
        }
        foreach (var extra in new[] { Datasets.DescriptorFile, Datasets.HierarchyFile })
            if (File.Exists(Path.Combine(dir, extra))) File.Copy(Path.Combine(dir, extra), Path.Combine(outDir, extra), overwrite: true);
        return written;
    }

    /// <summary>Loads the training and test sets from dir (the Debian package's folder by default), checking
    /// every file.</summary>
    public static (ImageSet Train, ImageSet Test, DatasetInfo Info) Load(string? dir = null, DatasetInfo? descriptor = null)
    {
        var info = descriptor ?? DatasetInfo.Load("fashion-mnist") with { Source = "Debian's dataset-fashion-mnist layout" };
        dir ??= info.DefaultDir;
        if (!Directory.Exists(dir))
            throw new DataException($"{dir}: data folder not found; install the Debian package {info.DebianPackage} (scripts/install-deps.sh) or pass --data-dir");
        var train = LoadPair(dir, info.Files["trainImages"], info.Files["trainLabels"], info);
        var test = LoadPair(dir, info.Files["testImages"], info.Files["testLabels"], info);
        return (train, test, info);
    }

    internal static string Find(string dir, string stem, DatasetInfo info)
    {
        foreach (var candidate in new[] { stem + ".gz", stem + ".br", stem })
        {
            var p = Path.Combine(dir, candidate);
            if (File.Exists(p)) return p;
        }
        throw new DataException($"{Path.Combine(dir, stem)}(.gz, .br): file not found; " +
            (info.DebianPackage.Length > 0 ? $"install the Debian package {info.DebianPackage} or pass --data-dir" : $"name it in the files of {Path.Combine(dir, Datasets.DescriptorFile)}"));
    }

    public static ImageSet LoadPair(string dir, string imageStem, string labelStem, DatasetInfo info)
    {
        string imagePath = Find(dir, imageStem, info), labelPath = Find(dir, labelStem, info);
        var (idims, pixels) = Idx.Read(imagePath, 3);
        var (ldims, labelBytes) = Idx.Read(labelPath, 1);
        if (idims[0] != ldims[0])
            throw new DataException($"{labelPath}: {ldims[0]} labels but {imagePath} holds {idims[0]} images");
        int classes = info.Classes.Length;
        var labels = new int[ldims[0]];
        for (int i = 0; i < labels.Length; i++)
        {
            labels[i] = labelBytes[i];
            if (labels[i] >= classes) throw new DataException($"{labelPath}: label {labels[i]} at index {i} is outside [0, {classes})");
        }
        var images = new float[pixels.Length];
        float scale = 1f / (255f * info.Std), shift = -info.Mean / info.Std;
        for (int i = 0; i < pixels.Length; i++) images[i] = pixels[i] * scale + shift;
        return new ImageSet(images, labels, 1, idims[1], idims[2], classes);
    }
}
