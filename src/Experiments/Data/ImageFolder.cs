using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using SkiaSharp;
using Spectre.Console;

namespace LsKd.Experiments.Data;

/// <summary>How an image folder is read: the size every image is resized to (0: the most common size of the
/// training images) and the largest image accepted, in pixels (checked from the file's header, before decoding).</summary>
public sealed record ImageOptions(int ImageSize = 0, long MaxPixels = 4096L * 4096);

/// <summary>
/// torchvision's ImageFolder layout: DIR/train/&lt;class&gt;/*.png|jpg|jpeg, DIR/test/&lt;class&gt;/..., optionally
/// DIR/valid/&lt;class&gt;/...; class names are the folder names in ordinal order and every split must have the same
/// classes. Images are decoded with SkiaSharp (in parallel), kept as grayscale when every training image is
/// grayscale and as RGB otherwise, resized (bilinear) to one square size, and normalised with the mean and standard
/// deviation of the training split's pixels. Decoded pixels can be cached in one file, checksummed and checked
/// against the source files' sizes and modification times, so a second study on the same folder does not decode.
/// </summary>
public static class ImageFolder
{
    static readonly string[] s_extensions = [".png", ".jpg", ".jpeg"];

    public static bool IsImageFolder(string dir) => Directory.Exists(Path.Combine(dir, "train")) && Directory.Exists(Path.Combine(dir, "test"));

    /// <summary>2: files in the class-interleaved order of <see cref="List"/>.</summary>
    const int CacheVersion = 2;

    sealed record FileEntry(string Path, int Label, long Size, long ModifiedTicks);

    sealed record CacheHeader(int Version, string[] Classes, int Channels, int Size, string[] Splits, int[] Counts, FileManifest[] Files, string PayloadSha256);

    public sealed record FileManifest(string Path, long Size, long ModifiedTicks);

    public static (ImageSet Train, ImageSet Test, ImageSet? Validation, DatasetInfo Info) Load(string dir, ImageOptions options, string? cacheDir)
    {
        dir = System.IO.Path.GetFullPath(dir);
        var splits = new List<string> { "train", "test" };
        if (Directory.Exists(System.IO.Path.Combine(dir, "valid"))) splits.Add("valid");
        string[] classes = ClassFolders(dir, "train");
        foreach (var split in splits.Skip(1))
        {
            var other = ClassFolders(dir, split);
            if (!other.SequenceEqual(classes))
                throw new DataException($"{System.IO.Path.Combine(dir, split)}: classes ({string.Join(", ", other)}) differ from train's ({string.Join(", ", classes)})");
        }
        var files = splits.Select(split => List(dir, split, classes)).ToList();

        string? cachePath = cacheDir == null ? null : System.IO.Path.Combine(cacheDir, $"{new DirectoryInfo(dir).Name}-{Hash(dir + "|" + options)[..12]}.lskd-cache");
        var manifest = files.SelectMany(f => f).Select(f => new FileManifest(System.IO.Path.GetRelativePath(dir, f.Path), f.Size, f.ModifiedTicks)).ToArray();
        (int Channels, int Size, byte[][] Pixels)? decoded = cachePath != null ? ReadCache(cachePath, classes, manifest) : null;
        bool fromCache = decoded != null;
        if (decoded == null)
        {
            decoded = Decode(files, options);
            if (cachePath != null) WriteCache(cachePath, classes, splits, files, manifest, decoded.Value);
        }
        else AnsiConsole.MarkupLine($"images: decoded pixels from the cache {Markup.Escape(cachePath!)}");
        var (channels, size, pixels) = decoded.Value;

        // Normalisation from the training split, one mean and standard deviation over all channels.
        double sum = 0, sumSq = 0;
        foreach (byte p in pixels[0]) { double v = p / 255.0; sum += v; sumSq += v * v; }
        long n = pixels[0].Length;
        float mean = (float)(sum / n), std = (float)Math.Sqrt(Math.Max(sumSq / n - (sum / n) * (sum / n), 1e-12));
        ImageSet Set(int i)
        {
            var labels = files[i].Select(f => f.Label).ToArray();
            var images = new float[pixels[i].Length];
            float scale = 1f / (255f * std), shift = -mean / std;
            for (int k = 0; k < images.Length; k++) images[k] = pixels[i][k] * scale + shift;
            return new ImageSet(images, labels, channels, size, size, classes.Length);
        }
        var info = new DatasetInfo(new DirectoryInfo(dir).Name, "", dir, [], mean, std, classes, [])
        {
            Channels = channels, Height = size, Width = size,
            Source = $"image folder {dir}{(fromCache ? " (decoded pixels from the cache)" : "")}, mean {mean:F4} and std {std:F4} of the training pixels",
        };
        return (Set(0), Set(1), splits.Count > 2 ? Set(2) : null, info);
    }

    static string[] ClassFolders(string dir, string split)
    {
        string path = System.IO.Path.Combine(dir, split);
        if (!Directory.Exists(path)) throw new DataException($"{path}: folder not found (an image folder needs train/<class>/ and test/<class>/)");
        var classes = Directory.GetDirectories(path).Select(d => System.IO.Path.GetFileName(d)!).Order(StringComparer.Ordinal).ToArray();
        if (classes.Length < 2) throw new DataException($"{path}: needs at least two class folders, found {classes.Length}");
        return classes;
    }

    /// <summary>A split's files, classes interleaved in proportion to their sizes (the i-th of a class of n images sits
    /// at (i + 0.5) / n of the way through): the study takes its subsets (trainImages, the analysis images, a validation
    /// split from the end) as prefixes or suffixes, and a prefix of class-sorted files would hold the first classes only.</summary>
    static List<FileEntry> List(string dir, string split, string[] classes)
    {
        var keyed = new List<(double Position, FileEntry File)>();
        for (int c = 0; c < classes.Length; c++)
        {
            string folder = System.IO.Path.Combine(dir, split, classes[c]);
            var images = Directory.GetFiles(folder).Where(f => s_extensions.Contains(System.IO.Path.GetExtension(f).ToLowerInvariant())).Order(StringComparer.Ordinal).ToList();
            if (images.Count == 0) throw new DataException($"{folder}: class '{classes[c]}' has no .png, .jpg or .jpeg images");
            for (int i = 0; i < images.Count; i++)
            {
                var fi = new FileInfo(images[i]);
                keyed.Add(((i + 0.5) / images.Count, new FileEntry(images[i], c, fi.Length, fi.LastWriteTimeUtc.Ticks)));
            }
        }
        return keyed.OrderBy(k => k.Position).ThenBy(k => k.File.Label).Select(k => k.File).ToList();
    }

    /// <summary>Reads every image's header first (size, colour type; nothing decoded), then decodes in parallel.</summary>
    static (int Channels, int Size, byte[][] Pixels) Decode(List<List<FileEntry>> files, ImageOptions options)
    {
        var all = files.SelectMany(f => f).ToList();
        var headers = new (int W, int H, bool Gray)[all.Count];
        Parallel(all.Count, i =>
        {
            using var codec = OpenCodec(all[i].Path);
            var inf = codec.Info;
            if ((long)inf.Width * inf.Height > options.MaxPixels)
                throw new DataException($"{all[i].Path}: {inf.Width} x {inf.Height} pixels is more than the limit of {options.MaxPixels} pixels");
            headers[i] = (inf.Width, inf.Height, inf.ColorType == SKColorType.Gray8);
        });
        int trainCount = files[0].Count;
        int channels = headers.Take(trainCount).All(h => h.Gray) ? 1 : 3;
        // A colour image among grayscale training images would be silently greyed: name it instead.
        for (int i = trainCount; i < all.Count && channels == 1; i++)
            if (!headers[i].Gray) throw new DataException($"{all[i].Path}: a colour image, but every training image is grayscale (1 channel); convert it or add colour training images");
        int size = options.ImageSize > 0 ? options.ImageSize
            : headers.Take(trainCount).GroupBy(h => Math.Max(h.W, h.H)).OrderByDescending(g => g.Count()).ThenBy(g => g.Key).First().Key;
        var pixels = files.Select(f => new byte[(long)f.Count * channels * size * size]).ToArray();
        int done = 0;
        var report = new Action<int>(_ => { });
        void Work()
        {
            int offset = 0;
            for (int s = 0; s < files.Count; s++)
            {
                int start = offset, split = s;
                Parallel(files[s].Count, i =>
                {
                    DecodeInto(files[split][i].Path, channels, size, pixels[split].AsSpan(i * channels * size * size, channels * size * size));
                    report(Interlocked.Increment(ref done));
                });
                offset += files[s].Count;
            }
        }
        if (AnsiConsole.Profile.Capabilities.Interactive)
            AnsiConsole.Progress().AutoClear(true).Start(ctx =>
            {
                var task = ctx.AddTask("decoding images", maxValue: all.Count);
                report = d => task.Value = d;
                Work();
            });
        else Work();
        AnsiConsole.MarkupLine($"images: decoded {all.Count} files to {channels} channel(s) at {size} x {size}");
        return (channels, size, pixels);
    }

    /// <summary>Parallel.For that surfaces the first data error itself (not wrapped in an AggregateException).</summary>
    static void Parallel(int count, Action<int> body)
    {
        try { System.Threading.Tasks.Parallel.For(0, count, body); }
        catch (AggregateException e) when (e.InnerExceptions.FirstOrDefault(x => x is DataException) is { } data) { throw data; }
    }

    static SKCodec OpenCodec(string path)
    {
        SKCodec? codec;
        try { codec = SKCodec.Create(path, out var result); if (codec == null) throw new DataException($"{path}: not a readable PNG or JPEG image ({result})"); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new DataException($"{path}: cannot read: {e.Message}"); }
        return codec;
    }

    static void DecodeInto(string path, int channels, int size, Span<byte> dst)
    {
        using var codec = OpenCodec(path);
        var info = new SKImageInfo(codec.Info.Width, codec.Info.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        using var bitmap = new SKBitmap(info);
        var result = codec.GetPixels(info, bitmap.GetPixels());
        if (result != SKCodecResult.Success) throw new DataException($"{path}: the image cannot be decoded ({result}: truncated or corrupt)");
        using var resized = info.Width == size && info.Height == size ? null
            : bitmap.Resize(new SKImageInfo(size, size, SKColorType.Rgba8888, SKAlphaType.Unpremul), new SKSamplingOptions(SKFilterMode.Linear, SKMipmapMode.None));
        var src = (resized ?? bitmap).GetPixelSpan();
        int plane = size * size;
        for (int p = 0; p < plane; p++)
        {
            byte r = src[4 * p], g = src[4 * p + 1], b = src[4 * p + 2];
            if (channels == 1) dst[p] = (byte)Math.Round(0.299 * r + 0.587 * g + 0.114 * b);
            else { dst[p] = r; dst[plane + p] = g; dst[2 * plane + p] = b; }
        }
    }

    static string Hash(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));

    static void WriteCache(string path, string[] classes, List<string> splits, List<List<FileEntry>> files, FileManifest[] manifest, (int Channels, int Size, byte[][] Pixels) d)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var p in d.Pixels) sha.AppendData(p);
        var header = new CacheHeader(CacheVersion, classes, d.Channels, d.Size, [.. splits], files.Select(f => f.Count).ToArray(), manifest, Convert.ToHexStringLower(sha.GetHashAndReset()));
        var json = JsonSerializer.SerializeToUtf8Bytes(header);
        try
        {
            Nets.AtomicFile.Write(path, s =>
            {
                Span<byte> len = stackalloc byte[8];
                BinaryPrimitives.WriteInt64LittleEndian(len, json.Length);
                s.Write(len); s.Write(json);
                foreach (var p in d.Pixels) s.Write(p);
            });
        }
        catch (IOException e) { AnsiConsole.MarkupLine($"[yellow]images: cache not written[/] ({Markup.Escape(e.Message)})"); }
    }

    /// <summary>The cached pixels when the cache matches the source files exactly and its checksum holds; else null.</summary>
    static (int Channels, int Size, byte[][] Pixels)? ReadCache(string path, string[] classes, FileManifest[] manifest)
    {
        try
        {
            if (!File.Exists(path)) return null;
            using var s = File.OpenRead(path);
            Span<byte> len = stackalloc byte[8];
            if (s.Read(len) != 8) return null;
            long headerLength = BinaryPrimitives.ReadInt64LittleEndian(len);
            if (headerLength <= 0 || headerLength > s.Length) return null;
            var json = new byte[headerLength];
            s.ReadExactly(json);
            var h = JsonSerializer.Deserialize<CacheHeader>(json);
            if (h == null || h.Version != CacheVersion || !h.Classes.SequenceEqual(classes) || !h.Files.SequenceEqual(manifest)) return null;
            long plane = (long)h.Channels * h.Size * h.Size;
            if (s.Length - 8 - headerLength != h.Counts.Sum(c => c * plane)) return null;
            var pixels = h.Counts.Select(c => new byte[c * plane]).ToArray();
            using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            foreach (var p in pixels) { s.ReadExactly(p); sha.AppendData(p); }
            return Convert.ToHexStringLower(sha.GetHashAndReset()) == h.PayloadSha256 ? (h.Channels, h.Size, pixels) : null;
        }
        catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException) { return null; }
    }
}
