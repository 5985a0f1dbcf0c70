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
    /// <summary>Largest data part accepted (1 GiB): far above any image set this tool trains on, and a bound on what
    /// a crafted header or gzip member can make it allocate.</summary>
    public const long MaxDataBytes = 1L << 30;

    /// <summary>Reads an IDX file of unsigned bytes with the expected number of dimensions. A gzip file (by its magic)
    /// or a Brotli file (name ending .br, as `lskd pack-data` writes) is read as a stream and never inflated beyond what
    /// its header promises.</summary>
    public static (int[] Dims, byte[] Data) Read(string path, int expectedDims)
    {
        try
        {
            using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
            bool gzip = file.Length >= 2 && file.ReadByte() == 0x1f && file.ReadByte() == 0x8b;
            file.Position = 0;
            bool brotli = path.EndsWith(".br", StringComparison.Ordinal);
            using Stream stream = gzip ? new GZipStream(file, CompressionMode.Decompress) : brotli ? new BrotliStream(file, CompressionMode.Decompress) : file;
            return Parse(path, stream, expectedDims);
        }
        catch (FileNotFoundException) { throw new DataException($"{path}: file not found"); }
        catch (DirectoryNotFoundException) { throw new DataException($"{path}: file not found"); }
        catch (InvalidDataException e) { throw new DataException($"{path}: corrupt compressed stream ({e.Message})"); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new DataException($"{path}: cannot read: {e.Message}"); }
    }

    static (int[] Dims, byte[] Data) Parse(string path, Stream stream, int expectedDims)
    {
        var magicBytes = new byte[4];
        int got = stream.ReadAtLeast(magicBytes, 4, throwOnEndOfStream: false);
        if (got < 4) throw new DataException($"{path}: truncated IDX file ({got} bytes, no magic number)");
        uint magic = BinaryPrimitives.ReadUInt32BigEndian(magicBytes);
        uint expectedMagic = 0x0800u | (uint)expectedDims;
        if (magic != expectedMagic)
            throw new DataException($"{path}: wrong magic number 0x{magic:X8}, expected 0x{expectedMagic:X8} (unsigned-byte IDX with {expectedDims} dimension(s))");
        var sizes = new byte[4 * expectedDims];
        if (stream.ReadAtLeast(sizes, sizes.Length, throwOnEndOfStream: false) < sizes.Length) throw new DataException($"{path}: truncated IDX header");
        var dims = new int[expectedDims];
        long count = 1;
        for (int d = 0; d < expectedDims; d++)
        {
            dims[d] = BinaryPrimitives.ReadInt32BigEndian(sizes.AsSpan(4 * d));
            if (dims[d] <= 0) throw new DataException($"{path}: dimension {d} is {dims[d]}, must be positive");
            count *= dims[d];
            if (count > MaxDataBytes)
                throw new DataException($"{path}: header promises more than {MaxDataBytes} bytes of data ({string.Join(" x ", dims[..(d + 1)])}...), more than this tool reads");
        }
        var data = new byte[count];
        int read = stream.ReadAtLeast(data, data.Length, throwOnEndOfStream: false);
        if (read < count)
            throw new DataException($"{path}: header promises {count} bytes of data ({string.Join(" x ", dims)}) but the file holds {read} (truncated)");
        if (stream.ReadByte() >= 0)
            throw new DataException($"{path}: header promises {count} bytes of data ({string.Join(" x ", dims)}) but the file holds more (padded, or not this data set)");
        return (dims, data);
    }
}
