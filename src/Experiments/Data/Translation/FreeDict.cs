using System.IO.Compression;
using System.Text;
using System.Text.RegularExpressions;

namespace LsKd.Experiments.Data.Translation;

/// <summary>
/// The second English->German corpus: the multi-word entries (four words or more: phrases, idioms and example
/// sentences) of the FreeDict eng-deu dictionary in dictd format (Debian's dict-freedict-eng-deu: an index of
/// headword, base-64 offset and length, and a dictzip body, which any gzip reader inflates). The source is the
/// headword without its IPA; the target is the first translation line up to its first alternative, with the
/// grammatical labels (&lt;fem&gt;, [Ös.], {...}) removed.
/// </summary>
public static partial class FreeDict
{
    public const string DefaultRoot = "/usr/share/dictd";
    public const string Name = "freedict-eng-deu";
    public const int MinWords = 4;

    public static (List<SentencePair>[] Splits, CorpusManifest Manifest) Load(string root = DefaultRoot)
    {
        string index = Path.Combine(root, Name + ".index"), body = Path.Combine(root, Name + ".dict.dz");
        foreach (var f in new[] { index, body })
            if (!File.Exists(f)) throw new DataException($"{f}: not found (install dict-freedict-eng-deu with scripts/install-deps.sh, or pass --dict-root)");
        byte[] text;
        try
        {
            using var gz = new GZipStream(File.OpenRead(body), CompressionMode.Decompress);
            using var ms = new MemoryStream();
            gz.CopyTo(ms);
            text = ms.ToArray();
        }
        catch (InvalidDataException e) { throw new DataException($"{body}: not a dictzip (gzip) file: {e.Message}"); }
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var pairs = new List<SentencePair>();
        int lineNumber = 0;
        foreach (var line in File.ReadLines(index, Encoding.UTF8))
        {
            lineNumber++;
            var fields = line.Split('\t');
            if (fields.Length != 3) throw new DataException($"{index}: line {lineNumber}: expected headword, offset and length separated by tabs");
            if (fields[0].Split(' ', StringSplitOptions.RemoveEmptyEntries).Length < MinWords) continue;
            long offset = Base64(fields[1], index, lineNumber), length = Base64(fields[2], index, lineNumber);
            if (offset + length > text.Length) throw new DataException($"{index}: line {lineNumber}: entry at {offset}+{length} lies past the end of {body} ({text.Length} bytes)");
            var pair = Parse(Encoding.UTF8.GetString(text, (int)offset, (int)length));
            if (pair == null || ParallelCorpus.Reject(pair.Source, pair.Target) != null || !seen.Add(pair.Source)) continue;
            pairs.Add(pair);
        }
        if (pairs.Count == 0) throw new DataException($"{index}: no sentence pairs of {MinWords} words or more after filtering");
        return ParallelCorpus.Build(Name, "en-de", new Dictionary<string, int> { [Name] = pairs.Count }, pairs);
    }

    /// <summary>dictd's base-64 numbers: most significant digit first, alphabet A-Z a-z 0-9 + /.</summary>
    static long Base64(string s, string file, int line)
    {
        const string digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        long v = 0;
        foreach (char c in s)
        {
            int d = digits.IndexOf(c);
            if (d < 0 || v > int.MaxValue) throw new DataException($"{file}: line {line}: '{s}' is not a dictd base-64 number");
            v = v * 64 + d;
        }
        return v;
    }

    /// <summary>One entry: "headword /ipa/" then translation lines, then indented notes ("see:", "Synonym:").</summary>
    public static SentencePair? Parse(string entry)
    {
        var lines = entry.Split('\n');
        if (lines.Length < 2) return null;
        string source = Ipa().Replace(lines[0], "").Trim();
        string first = lines[1];
        if (first.Length == 0 || char.IsWhiteSpace(first[0])) return null;
        // Alternatives are joined by "; ", or by ", " after a grammatical label ("Gardinenleiste <fem>, Karnise <fem>");
        // any other comma belongs to the sentence ("Lustig, dich hier zu treffen!").
        var cut = Alternative().Match(first);
        string target = Labels().Replace(cut.Success ? first[..(cut.Index + 1)] : first, "");
        int semi = target.IndexOf("; ", StringComparison.Ordinal);
        if (semi >= 0) target = target[..semi];
        target = Spaces().Replace(target, " ").Trim();
        return source.Length == 0 || target.Length == 0 ? null : new SentencePair(source, target);
    }

    [GeneratedRegex(@"\s/[^/]*/\s*$")] private static partial Regex Ipa();
    [GeneratedRegex(@"<[^>]*>|\[[^\]]*\]|\{[^}]*\}")] private static partial Regex Labels();
    [GeneratedRegex(@"\s+")] private static partial Regex Spaces();
    [GeneratedRegex(@"[>\]]\s*,\s")] private static partial Regex Alternative();
}
