using System.Buffers.Binary;
using System.Text;

namespace LsKd.Experiments.Data.Translation;

/// <summary>One message of a catalogue: its context (or null), the English source (msgid), the plural source (or null),
/// and the translations (one, or one per plural form).</summary>
public sealed record MoEntry(string? Context, string Source, string? PluralSource, string[] Translations);

/// <summary>
/// Reader for GNU gettext's binary message catalogues (.mo): a magic 0x950412de in the file's byte order (so both
/// little- and big-endian files are read), a revision, the number of strings N, and the offsets of two tables of N
/// (length, offset) pairs, for the original and the translated strings. An original is "context\x04msgid" with a
/// context, and "msgid\0msgid_plural" for a plural message, whose translation holds the plural forms separated by
/// NUL. The entry with an empty msgid is the header, whose Content-Type names the charset of the translations.
/// Every offset and length is checked against the file, so a truncated or crafted file gives a clear error.
/// </summary>
public static class MoCatalog
{
    const uint Magic = 0x950412de;
    /// <summary>Largest catalogue read (64 MiB): the biggest Debian catalogues are a few MiB.</summary>
    const long MaxBytes = 64L << 20;

    public static (string Charset, List<MoEntry> Entries) Read(string path)
    {
        byte[] data;
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists) throw new DataException($"{path}: no such catalogue");
            if (info.Length > MaxBytes) throw new DataException($"{path}: {info.Length} bytes is larger than any message catalogue this tool reads ({MaxBytes} bytes)");
            data = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new DataException($"{path}: cannot read: {e.Message}"); }
        return Parse(path, data);
    }

    public static (string Charset, List<MoEntry> Entries) Parse(string path, byte[] data)
    {
        if (data.Length < 28) throw new DataException($"{path}: {data.Length} bytes is too short for a .mo header (28 bytes)");
        bool little = BinaryPrimitives.ReadUInt32LittleEndian(data) == Magic;
        bool big = BinaryPrimitives.ReadUInt32BigEndian(data) == Magic;
        if (!little && !big) throw new DataException($"{path}: wrong magic 0x{BinaryPrimitives.ReadUInt32LittleEndian(data):x8} (not a gettext .mo catalogue)");
        uint U32(long at) => at + 4 > data.Length ? throw new DataException($"{path}: truncated at byte {at}")
            : little ? BinaryPrimitives.ReadUInt32LittleEndian(data.AsSpan((int)at)) : BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan((int)at));
        uint revision = U32(4);
        if (revision >> 16 > 1) throw new DataException($"{path}: unsupported .mo revision {revision >> 16}.{revision & 0xffff}");
        long count = U32(8), originals = U32(12), translations = U32(16);
        if (count > data.Length / 16) throw new DataException($"{path}: header claims {count} strings, more than the {data.Length}-byte file can hold");
        if (originals + count * 8 > data.Length || translations + count * 8 > data.Length)
            throw new DataException($"{path}: string tables (at {originals} and {translations}, {count} entries of 8 bytes) run past the end of the {data.Length}-byte file (truncated)");
        byte[] Bytes(long table, long i, string which)
        {
            long length = U32(table + i * 8), offset = U32(table + i * 8 + 4);
            if (offset + length > data.Length) throw new DataException($"{path}: {which} string {i} (offset {offset}, length {length}) runs past the end of the file (truncated)");
            return data.AsSpan((int)offset, (int)length).ToArray();
        }
        // The header (empty msgid) names the charset; it is the first entry of a sorted table, but look it up anyway.
        var encoding = Encoding.UTF8;
        string charset = "UTF-8";
        var raw = new List<(byte[] Original, byte[] Translation)>((int)count);
        for (long i = 0; i < count; i++) raw.Add((Bytes(originals, i, "original"), Bytes(translations, i, "translated")));
        foreach (var (o, t) in raw)
            if (o.Length == 0)
            {
                string header = Encoding.ASCII.GetString(t);
                int at = header.IndexOf("charset=", StringComparison.OrdinalIgnoreCase);
                if (at >= 0)
                {
                    charset = new string(header[(at + 8)..].TakeWhile(c => !char.IsWhiteSpace(c) && c != ';').ToArray());
                    encoding = EncodingFor(path, charset);
                }
            }
        var entries = new List<MoEntry>((int)count);
        foreach (var (o, t) in raw)
        {
            if (o.Length == 0) continue;
            // Sources are ASCII English in practice; decode them with the catalogue's charset like the translations.
            string original = Decode(path, encoding, o), translated = Decode(path, encoding, t);
            string? context = null;
            int eot = original.IndexOf('\u0004');
            if (eot >= 0) { context = original[..eot]; original = original[(eot + 1)..]; }
            string? plural = null;
            int nul = original.IndexOf('\0');
            if (nul >= 0) { plural = original[(nul + 1)..]; original = original[..nul]; }
            entries.Add(new MoEntry(context, original, plural, translated.Split('\0')));
        }
        return (charset, entries);
    }

    static Encoding EncodingFor(string path, string charset)
    {
        string name = charset.Trim().ToUpperInvariant();
        if (name is "UTF-8" or "UTF8" or "CHARSET") return Encoding.UTF8;   // "CHARSET" is gettext's unfilled template value
        if (name is "ASCII" or "US-ASCII" or "ANSI_X3.4-1968") return Encoding.ASCII;
        if (name is "ISO-8859-1" or "LATIN1") return Encoding.Latin1;
        try
        {
            Encoding.RegisterProvider(CodePagesEncodingProvider.Instance);
            return Encoding.GetEncoding(charset.Trim());
        }
        catch (ArgumentException) { throw new DataException($"{path}: unknown charset '{charset}' in the catalogue header"); }
    }

    static string Decode(string path, Encoding encoding, byte[] bytes)
    {
        try { return (encoding is UTF8Encoding ? new UTF8Encoding(false, throwOnInvalidBytes: true) : encoding).GetString(bytes); }
        catch (DecoderFallbackException) { throw new DataException($"{path}: a string is not valid {encoding.WebName}"); }
    }

    /// <summary>Writes a catalogue (for tests and for users who build their own corpora): entries sorted by original,
    /// in the chosen byte order, UTF-8, with a header entry.</summary>
    public static byte[] Write(IEnumerable<MoEntry> entries, bool bigEndian = false, string charset = "UTF-8")
    {
        var items = new List<(byte[] O, byte[] T)> { ([], Encoding.UTF8.GetBytes($"Content-Type: text/plain; charset={charset}\n")) };
        foreach (var e in entries)
        {
            string o = (e.Context != null ? e.Context + "\u0004" : "") + e.Source + (e.PluralSource != null ? "\0" + e.PluralSource : "");
            items.Add((Encoding.UTF8.GetBytes(o), Encoding.UTF8.GetBytes(string.Join('\0', e.Translations))));
        }
        items.Sort((a, b) => a.O.AsSpan().SequenceCompareTo(b.O));
        int n = items.Count;
        long originals = 28, translations = originals + 8L * n, strings = translations + 8L * n;
        var ms = new MemoryStream();
        void W(uint v) { Span<byte> b = stackalloc byte[4]; if (bigEndian) BinaryPrimitives.WriteUInt32BigEndian(b, v); else BinaryPrimitives.WriteUInt32LittleEndian(b, v); ms.Write(b); }
        W(Magic); W(0); W((uint)n); W((uint)originals); W((uint)translations); W(0); W((uint)strings);
        long at = strings;
        var offsets = new List<(uint Len, uint Off)>();
        foreach (var (o, _) in items) { offsets.Add(((uint)o.Length, (uint)at)); at += o.Length + 1; }
        foreach (var (_, t) in items) { offsets.Add(((uint)t.Length, (uint)at)); at += t.Length + 1; }
        foreach (var (len, off) in offsets) { W(len); W(off); }
        foreach (var (o, _) in items) { ms.Write(o); ms.WriteByte(0); }
        foreach (var (_, t) in items) { ms.Write(t); ms.WriteByte(0); }
        return ms.ToArray();
    }
}
