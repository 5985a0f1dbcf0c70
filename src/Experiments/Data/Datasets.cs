using System.Text.Json;

namespace LsKd.Experiments.Data;

/// <summary>A data set as read: training and test images, an optional validation split of its own, its description.</summary>
public sealed record LoadedData(ImageSet Train, ImageSet Test, ImageSet? Validation, DatasetInfo Info);

/// <summary>
/// Reads a data set from --data-dir, detecting the layout: an image folder (train/&lt;class&gt;/..., test/&lt;class&gt;/...,
/// see <see cref="ImageFolder"/>), an IDX folder with its own descriptor (dataset.json: name, classes, mean, std,
/// optionally files), or an IDX folder in the Fashion-MNIST layout (the built-in descriptor; the Debian package's
/// folder when no --data-dir is given). An optional classes.json beside the data names groups of similar classes
/// (S1 of the diffusion index): {"groups": {"footwear": ["Sandal", "Sneaker"], ...}, "residual": ["other"]}.
/// </summary>
public static class Datasets
{
    public const string DescriptorFile = "dataset.json", HierarchyFile = "classes.json";
    static readonly JsonSerializerOptions s_json = new() { PropertyNameCaseInsensitive = true, ReadCommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true };

    public static LoadedData Load(string? dir, ImageOptions? images = null, string? cacheDir = null)
    {
        LoadedData data;
        if (dir != null && ImageFolder.IsImageFolder(dir))
        {
            var (train, test, valid, info) = ImageFolder.Load(dir, images ?? new ImageOptions(), cacheDir);
            data = new LoadedData(train, test, valid, info);
        }
        else if (dir != null && File.Exists(Path.Combine(dir, DescriptorFile)))
        {
            var info = Descriptor(Path.Combine(dir, DescriptorFile));
            var (train, test, _) = FashionMnist.Load(dir, info);
            data = new LoadedData(train, test, null, info with { Height = train.Height, Width = train.Width });
        }
        else
        {
            var (train, test, info) = FashionMnist.Load(dir);
            data = new LoadedData(train, test, null, info);
        }
        string? hierarchy = dir == null ? null : Path.Combine(dir, HierarchyFile);
        return hierarchy != null && File.Exists(hierarchy) ? data with { Info = WithHierarchy(data.Info, hierarchy) } : data;
    }

    sealed record DescriptorJson(string? Name, string[]? Classes, float? Mean, float? Std, Dictionary<string, string>? Files);

    /// <summary>An IDX set's own description; files default to the MNIST names.</summary>
    internal static DatasetInfo ReadDescriptor(string path) => Descriptor(path);

    static DatasetInfo Descriptor(string path)
    {
        DescriptorJson? d;
        try { d = JsonSerializer.Deserialize<DescriptorJson>(File.ReadAllText(path), s_json); }
        catch (JsonException e) { throw new DataException($"{path}: {JsonErrors.Describe(e)}"); }
        if (d?.Classes is not { Length: >= 2 } classes) throw new DataException($"{path}: classes must list at least two class names");
        if (classes.Distinct().Count() != classes.Length) throw new DataException($"{path}: classes repeat a name");
        if (d.Mean is not { } mean || !float.IsFinite(mean)) throw new DataException($"{path}: mean (of the pixels scaled to [0, 1]) is required");
        if (d.Std is not { } std || !(std > 0f) || !float.IsFinite(std)) throw new DataException($"{path}: std must be a positive number");
        var files = d.Files ?? new Dictionary<string, string>
        {
            ["trainImages"] = "train-images-idx3-ubyte", ["trainLabels"] = "train-labels-idx1-ubyte",
            ["testImages"] = "t10k-images-idx3-ubyte", ["testLabels"] = "t10k-labels-idx1-ubyte",
        };
        foreach (var key in new[] { "trainImages", "trainLabels", "testImages", "testLabels" })
            if (!files.ContainsKey(key)) throw new DataException($"{path}: files.{key} is missing");
        return new DatasetInfo(d.Name ?? new DirectoryInfo(Path.GetDirectoryName(path)!).Name, "", Path.GetDirectoryName(path)!, files, mean, std, classes, [])
        {
            Source = $"IDX files described by {path}",
        };
    }

    sealed record HierarchyJson(Dictionary<string, string[]>? Groups, string[]? Residual);

    /// <summary>Groups of similar classes by name; every class at most once; unnamed classes form no group.</summary>
    static DatasetInfo WithHierarchy(DatasetInfo info, string path)
    {
        HierarchyJson? h;
        try { h = JsonSerializer.Deserialize<HierarchyJson>(File.ReadAllText(path), s_json); }
        catch (JsonException e) { throw new DataException($"{path}: {JsonErrors.Describe(e)}"); }
        if (h?.Groups is not { Count: > 0 } groups) throw new DataException($"{path}: groups must name at least one group of classes");
        var seen = new HashSet<string>();
        var hierarchy = new Dictionary<string, int[]>();
        foreach (var (name, members) in groups)
        {
            var indices = new List<int>();
            foreach (var m in members ?? [])
            {
                int k = Array.IndexOf(info.Classes, m);
                if (k < 0) throw new DataException($"{path}: groups.{name}: '{m}' is not a class of the data ({string.Join(", ", info.Classes)})");
                if (!seen.Add(m)) throw new DataException($"{path}: class '{m}' is in more than one group");
                indices.Add(k);
            }
            hierarchy[name] = [.. indices];
        }
        foreach (var r in h.Residual ?? [])
            if (!groups.ContainsKey(r)) throw new DataException($"{path}: residual group '{r}' is not among the groups");
        return info with { Hierarchy = hierarchy, ResidualGroups = h.Residual, Source = info.Source + $", hierarchy from {path}" };
    }
}
