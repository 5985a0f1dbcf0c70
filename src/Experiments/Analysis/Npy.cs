using System.Buffers.Binary;
using System.Text;
using LsKd.Nets;

namespace LsKd.Experiments.Analysis;

/// <summary>Writes and reads numpy .npy files (format version 1.0, little-endian float32 '&lt;f4' or int32 '&lt;i4',
/// C order), so exported arrays open with numpy.load.</summary>
public static class Npy
{
    public static void Write(string path, float[] data, int[] shape) => Write(path, "<f4", shape, data.Length, (span, i) => BinaryPrimitives.WriteSingleLittleEndian(span, data[i]));

    public static void Write(string path, int[] data, int[] shape) => Write(path, "<i4", shape, data.Length, (span, i) => BinaryPrimitives.WriteInt32LittleEndian(span, data[i]));

    delegate void ElementWriter(Span<byte> destination, int index);

    static void Write(string path, string dtype, int[] shape, int count, ElementWriter write)
    {
        long expected = shape.Aggregate(1L, (a, b) => a * b);
        if (expected != count) throw new ArgumentException($"{path}: shape ({string.Join(", ", shape)}) needs {expected} values, got {count}");
        string dims = shape.Length == 1 ? $"{shape[0]}," : string.Join(", ", shape);
        string header = $"{{'descr': '{dtype}', 'fortran_order': False, 'shape': ({dims}), }}";
        // Magic (6) + version (2) + header length (2) + header, padded with spaces and a newline to a multiple of 64.
        int total = (10 + header.Length + 1 + 63) / 64 * 64;
        header = header.PadRight(total - 10 - 1) + "\n";
        var bytes = new byte[total + 4L * count];
        bytes[0] = 0x93;
        Encoding.ASCII.GetBytes("NUMPY").CopyTo(bytes, 1);
        bytes[6] = 1; bytes[7] = 0;
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(8), (ushort)header.Length);
        Encoding.ASCII.GetBytes(header).CopyTo(bytes, 10);
        for (int i = 0; i < count; i++) write(bytes.AsSpan(total + 4 * i, 4), i);
        AtomicFile.Write(path, s => s.Write(bytes));
    }

    /// <summary>Reads a float32 .npy written by <see cref="Write(string, float[], int[])"/> (tests and tools).</summary>
    public static (int[] Shape, float[] Data) ReadFloat(string path)
    {
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < 10 || bytes[0] != 0x93 || Encoding.ASCII.GetString(bytes, 1, 5) != "NUMPY")
            throw new InvalidDataException($"{path}: not a .npy file");
        int headerLen = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(8));
        string header = Encoding.ASCII.GetString(bytes, 10, headerLen);
        if (!header.Contains("'<f4'")) throw new InvalidDataException($"{path}: dtype is not <f4");
        int open = header.IndexOf("'shape': (", StringComparison.Ordinal) + 10, close = header.IndexOf(')', open);
        var shape = header[open..close].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(int.Parse).ToArray();
        int offset = 10 + headerLen, count = (bytes.Length - offset) / 4;
        var data = new float[count];
        for (int i = 0; i < count; i++) data[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(offset + 4 * i));
        return (shape, data);
    }
}
