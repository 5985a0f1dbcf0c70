namespace LsKd.Experiments.Data.Translation;

/// <summary>Text to token ids and back: ids 0-3 are PAD, BOS, EOS and UNK.</summary>
public interface ITokenizer
{
    int Size { get; }
    int[] Encode(string text);
    string Decode(IEnumerable<int> ids);
}

/// <summary>
/// Byte-pair-encoding subwords learned on a training split (Sennrich et al.): words are the runs between spaces, each
/// word after the first carries a leading space marker so that decoding restores the text exactly; starting from
/// characters, the most frequent adjacent pair of symbols (ties: the ordinally first) is merged, <c>merges</c> times.
/// Encoding applies the merges in the order they were learned.
/// </summary>
public sealed class SubwordVocabulary : ITokenizer
{
    const char Space = '\u2581';   // "▁" marks a word that follows a space
    readonly Dictionary<(string, string), int> _rank = [];
    readonly Dictionary<string, int> _ids = new(StringComparer.Ordinal);
    readonly Dictionary<string, int[]> _cache = new(StringComparer.Ordinal);

    public SubwordVocabulary(IEnumerable<string> texts, int merges)
    {
        if (merges < 0) throw new ArgumentOutOfRangeException(nameof(merges), merges, "must not be negative");
        var wordCounts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var t in texts)
            foreach (var w in Words(t)) wordCounts[w] = wordCounts.GetValueOrDefault(w) + 1;
        var words = wordCounts.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => (Symbols: kv.Key.Select(c => c.ToString()).ToList(), Count: kv.Value)).ToList();
        var symbols = new SortedSet<string>(words.SelectMany(w => w.Symbols), StringComparer.Ordinal);
        var learned = new List<string>();
        // Pair counts and, per pair, the words holding it: a merge only revisits the words it changes.
        var counts = new Dictionary<(string, string), long>();
        var holders = new Dictionary<(string, string), HashSet<int>>();
        void Count(int w, int sign)
        {
            var (sym, n) = words[w];
            for (int i = 0; i + 1 < sym.Count; i++)
            {
                var key = (sym[i], sym[i + 1]);
                counts[key] = counts.GetValueOrDefault(key) + sign * n;
                if (sign > 0) { if (!holders.TryGetValue(key, out var set)) holders[key] = set = []; set.Add(w); }
            }
        }
        for (int w = 0; w < words.Count; w++) Count(w, +1);
        for (int m = 0; m < merges; m++)
        {
            (string, string) best = ("", "");
            long bestCount = 1;
            bool found = false;
            foreach (var (key, n) in counts)
                if (n > bestCount || (n == bestCount && found && Ordinal(key, best) < 0)) { best = key; bestCount = n; found = true; }
            if (!found) break;   // no pair occurs twice
            _rank[best] = m;
            learned.Add(best.Item1 + best.Item2);
            foreach (int w in holders[best].ToArray())
            {
                Count(w, -1);
                Merge(words[w].Symbols, best.Item1, best.Item2);
                Count(w, +1);
            }
            counts.Remove(best);
            holders.Remove(best);
        }
        Symbols = symbols.Concat(learned.Where(l => !symbols.Contains(l)).Distinct()).ToArray();
        for (int i = 0; i < Symbols.Length; i++) _ids[Symbols[i]] = i + 4;
        Merges = _rank.Count;
    }

    /// <summary>The symbols with ids 4, 5, ...: the characters (ordinal order), then the merged symbols in the order
    /// they were learned.</summary>
    public string[] Symbols { get; }
    public int Merges { get; }
    public int Size => Symbols.Length + 4;

    static int Ordinal((string, string) a, (string, string) b)
    {
        int c = string.CompareOrdinal(a.Item1, b.Item1);
        return c != 0 ? c : string.CompareOrdinal(a.Item2, b.Item2);
    }

    static IEnumerable<string> Words(string text)
    {
        var parts = text.Split(' ');
        for (int i = 0; i < parts.Length; i++)
        {
            string w = i == 0 ? parts[i] : Space + parts[i];
            if (w.Length > 0) yield return w;
        }
    }

    static void Merge(List<string> s, string a, string b)
    {
        for (int i = 0; i + 1 < s.Count; i++)
            if (s[i] == a && s[i + 1] == b) { s[i] = a + b; s.RemoveAt(i + 1); }
    }

    public int[] Encode(string text)
    {
        var result = new List<int>();
        foreach (var w in Words(text))
        {
            if (!_cache.TryGetValue(w, out var ids))
            {
                var s = w.Select(c => c.ToString()).ToList();
                while (true)
                {
                    int bestRank = int.MaxValue, at = -1;
                    for (int i = 0; i + 1 < s.Count; i++)
                        if (_rank.TryGetValue((s[i], s[i + 1]), out int r) && r < bestRank) { bestRank = r; at = i; }
                    if (at < 0) break;
                    string a = s[at], b = s[at + 1];
                    Merge(s, a, b);
                }
                ids = s.Select(x => _ids.TryGetValue(x, out int id) ? id : CharVocabulary.Unk).ToArray();
                lock (_cache) _cache[w] = ids;
            }
            result.AddRange(ids);
        }
        return result.ToArray();
    }

    public string Decode(IEnumerable<int> ids) =>
        string.Concat(ids.Where(i => i >= 4 || i == CharVocabulary.Unk).Select(i => i == CharVocabulary.Unk || i - 4 >= Symbols.Length ? "\uFFFD" : Symbols[i - 4])).Replace(Space, ' ');
}
