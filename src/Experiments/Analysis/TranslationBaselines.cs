using LsKd.Experiments.Data.Translation;

namespace LsKd.Experiments.Analysis;

/// <summary>
/// Two honest baselines a trained translator must beat: copying the source (program messages share names, numbers
/// and loan words with their translations), and translation memory, the target of the training pair whose source is
/// most similar by character 3-gram overlap (Dice coefficient of the 3-gram sets; ties go to the earlier pair).
/// </summary>
public sealed class TranslationMemory
{
    readonly List<SentencePair> _train;
    readonly Dictionary<string, List<int>> _postings = new(StringComparer.Ordinal);
    readonly int[] _gramCounts;

    public TranslationMemory(IReadOnlyList<SentencePair> train)
    {
        _train = train.ToList();
        _gramCounts = new int[_train.Count];
        for (int i = 0; i < _train.Count; i++)
        {
            var grams = Trigrams(_train[i].Source);
            _gramCounts[i] = grams.Count;
            foreach (var g in grams)
            {
                if (!_postings.TryGetValue(g, out var list)) _postings[g] = list = [];
                list.Add(i);
            }
        }
    }

    /// <summary>The distinct character 3-grams of a sentence padded with one space on each side, lower-cased.</summary>
    public static HashSet<string> Trigrams(string text)
    {
        string s = " " + text.ToLowerInvariant() + " ";
        var set = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i + 3 <= s.Length; i++) set.Add(s.Substring(i, 3));
        return set;
    }

    /// <summary>The index of the most similar training source, or -1 when none shares a 3-gram.</summary>
    public int Nearest(string source)
    {
        var grams = Trigrams(source);
        var shared = new Dictionary<int, int>();
        foreach (var g in grams)
            if (_postings.TryGetValue(g, out var list))
                foreach (int i in list) shared[i] = shared.GetValueOrDefault(i) + 1;
        int best = -1;
        double bestScore = -1;
        foreach (var (i, n) in shared)
        {
            double dice = 2.0 * n / (grams.Count + _gramCounts[i]);
            if (dice > bestScore || (dice == bestScore && i < best)) { best = i; bestScore = dice; }
        }
        return best;
    }

    /// <summary>The translation memory's hypothesis: the nearest training pair's target (empty when nothing matches).</summary>
    public string Translate(string source) => Nearest(source) is var i and >= 0 ? _train[i].Target : "";
}
