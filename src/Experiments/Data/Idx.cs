using System.Buffers.Binary;
using System.IO.Compression;

namespace LsKd.Experiments.Data;

/// <summary>A file that cannot be used as data; the message names the file and the problem (CLI exit code 2).</summary>
public sealed class DataException(string message) : Exception(message);

/// <summary>
/// Reader for the IDX format of MNIST and Fashion-MNIST (raw or gzip): a big-endian magic 0x0000TTDD (TT = 0x08
/// for unsigned bytes, DD = number of dimensions), DD big-endian int32 sizes, then the data.
/// </summary>
public static class Idx
{
    /// <summary>Reads an IDX file of unsigned bytes with the expected number of dimensions.</summary>
    public static (int[] Dims, byte[] Data) Read(string path, int expectedDims)
    {
        byte[] raw;
        try { raw = File.ReadAllBytes(path); }
        catch (FileNotFoundException) { throw new DataException($"{path}: file not found"); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new DataException($"{path}: cannot read: {e.Message}"); }
        if (raw.Length >= 2 && raw[0] == 0x1f && raw[1] == 0x8b)
        {
            try
            {
                using var gz = new GZipStream(new MemoryStream(raw), CompressionMode.Decompress);
                using var ms = new MemoryStream();
                gz.CopyTo(ms);
                raw = ms.ToArray();
            }
            catch (InvalidDataException e) { throw new DataException($"{path}: corrupt gzip stream ({e.Message})"); }
        }
        if (raw.Length < 4) throw new DataException($"{path}: truncated IDX file ({raw.Length} bytes, no magic number)");
        uint magic = BinaryPrimitives.ReadUInt32BigEndian(raw);
        uint expectedMagic = 0x0800u | (uint)expectedDims;
        if (magic != expectedMagic)
            throw new DataException($"{path}: wrong magic number 0x{magic:X8}, expected 0x{expectedMagic:X8} (unsigned-byte IDX with {expectedDims} dimension(s))");
        int headerLen = 4 + 4 * expectedDims;
        if (raw.Length < headerLen) throw new DataException($"{path}: truncated IDX header");
        var dims = new int[expectedDims];
        long count = 1;
        for (int d = 0; d < expectedDims; d++)
        {
            dims[d] = BinaryPrimitives.ReadInt32BigEndian(raw.AsSpan(4 + 4 * d));
            if (dims[d] <= 0) throw new DataException($"{path}: dimension {d} is {dims[d]}, must be positive");
            count *= dims[d];
        }
        if (raw.Length - headerLen != count)
            throw new DataException($"{path}: header promises {count} bytes of data ({string.Join(" x ", dims)}) but the file holds {raw.Length - headerLen} (truncated or padded)");
        return (dims, raw[headerLen..]);
    }
}
