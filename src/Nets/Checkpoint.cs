using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using LsKd.Autograd;
using LsKd.Kernels;

namespace LsKd.Nets;

/// <summary>A checkpoint that cannot be read or does not fit the model; the message names the file and tensor.</summary>
public sealed class CheckpointException(string message) : Exception(message);

/// <summary>
/// Checkpoints in the safetensors format (https://huggingface.co/docs/safetensors): an 8-byte little-endian
/// header length, a JSON header mapping each tensor name to its dtype, shape and byte range, then the raw
/// little-endian payload. The header's __metadata__ holds the model name, its configuration and the SHA-256 of
/// the payload, which loading verifies. Files are written to a temporary name and renamed, so a crash never
/// leaves a half-written checkpoint.
/// </summary>
public static class Checkpoint
{
    const long MaxHeader = 100 << 20;

    public static void Save(Module model, string path, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var state = model.StateDict().ToList();
        long offset = 0;
        var header = new Dictionary<string, object>();
        var payload = new MemoryStream();
        foreach (var (name, tensor) in state)
        {
            var data = tensor.ToArray();
            var bytes = new byte[data.Length * 4];
            for (int i = 0; i < data.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), data[i]);
            payload.Write(bytes);
            header[name] = new { dtype = "F32", shape = tensor.Shape, data_offsets = new[] { offset, offset + bytes.Length } };
            offset += bytes.Length;
        }
        var payloadBytes = payload.ToArray();
        var meta = new Dictionary<string, string>
        {
            ["format"] = "pt",
            ["model"] = model.ModelName,
            ["config"] = model.ConfigJson,
            ["payload_sha256"] = Convert.ToHexStringLower(SHA256.HashData(payloadBytes)),
        };
        if (metadata != null) foreach (var (k, v) in metadata) meta[k] = v;
        var full = new Dictionary<string, object> { ["__metadata__"] = meta };
        foreach (var (k, v) in header) full[k] = v;
        var json = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(full));
        // Pad the header with spaces to a multiple of 8 bytes, as the reference implementation does.
        int padded = (json.Length + 7) / 8 * 8;
        var headerBytes = new byte[padded];
        Array.Fill(headerBytes, (byte)' ');
        json.CopyTo(headerBytes, 0);

        AtomicFile.Write(path, stream =>
        {
            Span<byte> len = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)padded);
            stream.Write(len);
            stream.Write(headerBytes);
            stream.Write(payloadBytes);
        });
    }

    /// <summary>Reads every tensor and the metadata, verifying structure and checksum.</summary>
    public static (Dictionary<string, string> Metadata, Dictionary<string, (int[] Shape, float[] Data)> Tensors) Read(string path)
    {
        byte[] file;
        try { file = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new CheckpointException($"{path}: cannot read checkpoint: {e.Message}"); }
        if (file.Length < 8) throw new CheckpointException($"{path}: truncated checkpoint ({file.Length} bytes, no header length)");
        ulong headerLen = BinaryPrimitives.ReadUInt64LittleEndian(file);
        if (headerLen > MaxHeader || 8 + (long)headerLen > file.Length)
            throw new CheckpointException($"{path}: header length {headerLen} does not fit in the {file.Length}-byte file (truncated or not a safetensors file)");
        JsonElement root;
        try { root = JsonDocument.Parse(file.AsMemory(8, (int)headerLen)).RootElement; }
        catch (JsonException e) { throw new CheckpointException($"{path}: corrupt header JSON: {e.Message}"); }
        if (root.ValueKind != JsonValueKind.Object) throw new CheckpointException($"{path}: header is not a JSON object");

        var payload = file.AsSpan(8 + (int)headerLen);
        var metadata = new Dictionary<string, string>();
        var tensors = new Dictionary<string, (int[], float[])>();
        foreach (var prop in root.EnumerateObject())
        {
            if (prop.Name == "__metadata__")
            {
                if (prop.Value.ValueKind != JsonValueKind.Object) throw new CheckpointException($"{path}: __metadata__ is {Kind(prop.Value)}, expected an object of strings");
                foreach (var m in prop.Value.EnumerateObject())
                    metadata[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()!
                        : throw new CheckpointException($"{path}: __metadata__.{m.Name} is {Kind(m.Value)}, expected a string");
                continue;
            }
            string name = prop.Name;
            var t = prop.Value;
            if (t.ValueKind != JsonValueKind.Object) throw new CheckpointException($"{path}: tensor '{name}' is {Kind(t)}, expected an object with dtype, shape and data_offsets");
            if (!t.TryGetProperty("dtype", out var dtype) || dtype.ValueKind != JsonValueKind.String || dtype.GetString() != "F32")
                throw new CheckpointException($"{path}: tensor '{name}' has dtype {(t.TryGetProperty("dtype", out var d) ? d.GetRawText() : "(missing)")}, expected \"F32\"");
            if (!t.TryGetProperty("shape", out var shapeEl) || shapeEl.ValueKind != JsonValueKind.Array)
                throw new CheckpointException($"{path}: tensor '{name}' shape is {(t.TryGetProperty("shape", out var se) ? Kind(se) : "missing")}, expected an array of sizes");
            if (!t.TryGetProperty("data_offsets", out var offs) || offs.ValueKind != JsonValueKind.Array || offs.GetArrayLength() != 2)
                throw new CheckpointException($"{path}: tensor '{name}' data_offsets must be an array of two byte offsets");
            var shape = new int[shapeEl.GetArrayLength()];
            long count = 1;
            for (int k = 0; k < shape.Length; k++)
            {
                var e = shapeEl[k];
                if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt32(out shape[k]) || shape[k] < 0)
                    throw new CheckpointException($"{path}: tensor '{name}' shape[{k}] is {e.GetRawText()}, expected a size from 0 to {int.MaxValue}");
                // A product beyond the payload is refused before it can overflow.
                count = shape[k] == 0 ? 0 : count > payload.Length / 4 / shape[k] + 1 ? long.MaxValue / 8 : count * shape[k];
            }
            long[] range = new long[2];
            for (int k = 0; k < 2; k++)
                if (offs[k].ValueKind != JsonValueKind.Number || !offs[k].TryGetInt64(out range[k]))
                    throw new CheckpointException($"{path}: tensor '{name}' data_offsets[{k}] is {offs[k].GetRawText()}, expected a byte offset");
            long begin = range[0], end = range[1];
            if (begin < 0 || end < begin || end > payload.Length)
                throw new CheckpointException($"{path}: tensor '{name}' byte range [{begin}, {end}) lies outside the {payload.Length}-byte payload (truncated file?)");
            if (count > payload.Length / 4 || end - begin != count * 4)
                throw new CheckpointException($"{path}: tensor '{name}' has shape [{string.Join(", ", shape)}] but {end - begin} bytes of data");
            var data = new float[count];
            for (long k = 0; k < count; k++) data[k] = BinaryPrimitives.ReadSingleLittleEndian(payload.Slice((int)(begin + k * 4), 4));
            tensors[name] = (shape, data);
        }
        if (!metadata.ContainsKey("payload_sha256"))
            throw new CheckpointException($"{path}: no payload_sha256 in __metadata__, so its tensors cannot be verified; LsKd loads only checkpoints it wrote");
        if (metadata.TryGetValue("payload_sha256", out var sha) && Convert.ToHexStringLower(SHA256.HashData(payload)) != sha)
            throw new CheckpointException($"{path}: payload SHA-256 does not match the header (the file is corrupt)");
        return (metadata, tensors);
    }

    /// <summary>Metadata keys that record what a model takes and gives: classes, input channels, image size.</summary>
    public static Dictionary<string, string> ShapeMetadata(int classes, int inChannels, int imageSize) => new()
    {
        ["classes"] = classes.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["in_channels"] = inChannels.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["image_size"] = imageSize.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    static int MetaInt(Dictionary<string, string> meta, string key, int missing, int min, int max, string path)
    {
        if (!meta.TryGetValue(key, out var text)) return missing;   // checkpoints from before the key: Fashion-MNIST's shape
        return int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int v) && v >= min && v <= max ? v
            : throw new CheckpointException($"{path}: metadata {key} '{text}' is not a whole number from {min} to {max}");
    }

    static string Kind(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => "an object", JsonValueKind.Array => "an array", JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number", JsonValueKind.True or JsonValueKind.False => "a boolean", _ => "null",
    };

    /// <summary>Creates the model a checkpoint names in its metadata (model, width), loads its tensors and puts it
    /// in evaluation mode.</summary>
    public static Classifier LoadClassifier(string path, IBackend backend)
    {
        var (meta, _) = Read(path);
        if (!meta.TryGetValue("model", out var name)) throw new CheckpointException($"{path}: metadata has no model name");
        float width = meta.TryGetValue("width", out var w) && float.TryParse(w, System.Globalization.CultureInfo.InvariantCulture, out var wv) ? wv : 1f;
        if (HyperParameters.Width(width) is { } problem) throw new CheckpointException($"{path}: metadata width: {problem}");
        int classes = MetaInt(meta, "classes", 10, 2, 100_000, path), channels = MetaInt(meta, "in_channels", 1, 1, 4, path), size = MetaInt(meta, "image_size", 28, 1, 4096, path);
        Classifier model;
        try { model = Models.Create(name, backend, 0, width, classes, channels, size); }
        catch (ArgumentException e) { throw new CheckpointException($"{path}: {e.Message}"); }
        Load(model, path);
        model.Eval();
        return model;
    }

    /// <summary>Loads a checkpoint into a model of the same architecture; every tensor must be present with the
    /// same shape.</summary>
    public static Dictionary<string, string> Load(Module model, string path)
    {
        var (metadata, tensors) = Read(path);
        if (metadata.TryGetValue("model", out var saved) && saved != model.ModelName)
            throw new CheckpointException($"{path}: checkpoint is a {saved} but the model is a {model.ModelName}");
        foreach (var (name, tensor) in model.StateDict())
        {
            if (!tensors.TryGetValue(name, out var t))
                throw new CheckpointException($"{path}: tensor '{name}' is missing from the checkpoint");
            if (!t.Shape.SequenceEqual(tensor.Shape))
                throw new CheckpointException($"{path}: tensor '{name}' has shape [{string.Join(", ", t.Shape)}] but the model expects {Tensor.ShapeString(tensor.Shape)}");
            tensor.Buffer.Upload(t.Data);
        }
        return metadata;
    }
}

/// <summary>Writes a file through a temporary sibling and an atomic rename: readers see the old or the new file,
/// never a partial one.</summary>
public static class AtomicFile
{
    public static void Write(string path, Action<Stream> write)
    {
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(dir);
        string tmp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                write(fs);
                fs.Flush(flushToDisk: true);
            }
            File.Move(tmp, full, overwrite: true);
        }
        catch (IOException e) when (e is not FileNotFoundException && e is not DirectoryNotFoundException)
        {
            throw new IOException($"cannot write {full}: {e.Message.Split(" : ")[0]}", e);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }

    public static void WriteText(string path, string text) => Write(path, s => s.Write(Encoding.UTF8.GetBytes(text)));
}
