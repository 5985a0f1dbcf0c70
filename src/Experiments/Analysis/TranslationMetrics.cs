using System.Text.RegularExpressions;

namespace LsKd.Experiments.Analysis;

/// <summary>Corpus BLEU and chrF as sacreBLEU 2.x computes them by default, in C#.</summary>
public static class TranslationMetrics
{
    // The 13a tokenizer (mteval-v13a.pl, as sacreBLEU's tokenizer_13a): punctuation and symbols are split off,
    // periods and commas unless between digits, dashes after a digit.
    static readonly Regex Symbols = new(@"([\{-\~\[-\` -\&\(-\+\:-\@\/])", RegexOptions.Compiled);
    static readonly Regex PeriodCommaAfterNonDigit = new(@"([^0-9])([\.,])", RegexOptions.Compiled);
    static readonly Regex PeriodCommaBeforeNonDigit = new(@"([\.,])([^0-9])", RegexOptions.Compiled);
    static readonly Regex DashAfterDigit = new(@"([0-9])(-)", RegexOptions.Compiled);

    public static string[] Tokenize13a(string line)
    {
        line = line.Replace("<skipped>", "").Replace("-\n", "").Replace("\n", " ");
        if (line.Contains('&')) line = line.Replace("&quot;", "\"").Replace("&amp;", "&").Replace("&lt;", "<").Replace("&gt;", ">");
        line = " " + line + " ";
        line = Symbols.Replace(line, " $1 ");
        line = PeriodCommaAfterNonDigit.Replace(line, "$1 $2 ");
        line = PeriodCommaBeforeNonDigit.Replace(line, " $1 $2");
        line = DashAfterDigit.Replace(line, "$1 $2 ");
        return line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
    }

    /// <summary>BLEU statistics: clipped n-gram matches and hypothesis n-gram totals for n = 1..4, and lengths.</summary>
    public sealed record BleuResult(double Score, double[] Precisions, double BrevityPenalty, long HypothesisLength, long ReferenceLength, long[] Matches, long[] Totals);

    /// <summary>Corpus BLEU with one reference per sentence: 1- to 4-gram precisions (matches clipped by the reference
    /// counts, summed over the corpus), brevity penalty exp(1 - r / c) when c &lt; r, and sacreBLEU's default "exp"
    /// smoothing (the k-th precision with no match becomes 1 / (2^k total)). Tokens are 13a unless given.</summary>
    public static BleuResult CorpusBleu(IReadOnlyList<string> hypotheses, IReadOnlyList<string> references, bool tokenize = true) =>
        CorpusBleu(hypotheses.Select(h => tokenize ? Tokenize13a(h) : h.Split(' ', StringSplitOptions.RemoveEmptyEntries)).ToList(),
                   references.Select(r => tokenize ? Tokenize13a(r) : r.Split(' ', StringSplitOptions.RemoveEmptyEntries)).ToList());

    public static BleuResult CorpusBleu(IReadOnlyList<string[]> hypotheses, IReadOnlyList<string[]> references)
    {
        if (hypotheses.Count != references.Count) throw new ArgumentException($"{hypotheses.Count} hypotheses but {references.Count} references");
        const int Order = 4;
        var matches = new long[Order];
        var totals = new long[Order];
        long hypLength = 0, refLength = 0;
        for (int s = 0; s < hypotheses.Count; s++)
        {
            var hyp = hypotheses[s]; var reference = references[s];
            hypLength += hyp.Length; refLength += reference.Length;
            for (int n = 1; n <= Order; n++)
            {
                var refCounts = NGrams(reference, n);
                foreach (var (gram, count) in NGrams(hyp, n))
                {
                    totals[n - 1] += count;
                    matches[n - 1] += Math.Min(count, refCounts.GetValueOrDefault(gram));
                }
            }
        }
        var precisions = new double[Order];
        double smooth = 1;
        for (int n = 0; n < Order; n++)
        {
            if (totals[n] == 0) break;
            if (matches[n] == 0) { smooth *= 2; precisions[n] = 100.0 / (smooth * totals[n]); }
            else precisions[n] = 100.0 * matches[n] / totals[n];
        }
        double bp = hypLength >= refLength ? 1.0 : hypLength > 0 ? Math.Exp(1 - (double)refLength / hypLength) : 0.0;
        double score = precisions.All(p => p > 0) ? bp * Math.Exp(precisions.Average(p => Math.Log(p))) : 0.0;
        return new BleuResult(score, precisions, bp, hypLength, refLength, matches, totals);
    }

    static Dictionary<string, int> NGrams(string[] tokens, int n)
    {
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i + n <= tokens.Length; i++)
        {
            string gram = string.Join('\u0001', tokens, i, n);
            counts[gram] = counts.GetValueOrDefault(gram) + 1;
        }
        return counts;
    }

    /// <summary>Corpus chrF (sacreBLEU 2.x defaults: character n-grams 1..6 with whitespace removed, beta = 2): the
    /// n-gram statistics are summed over the corpus; precision and recall are averaged over the orders that occur in
    /// both hypothesis and reference, and combined as (1 + b^2) P R / (b^2 P + R).</summary>
    public static double CorpusChrF(IReadOnlyList<string> hypotheses, IReadOnlyList<string> references, int order = 6, double beta = 2)
    {
        if (hypotheses.Count != references.Count) throw new ArgumentException($"{hypotheses.Count} hypotheses but {references.Count} references");
        var stats = new long[order, 3];   // hypothesis n-grams, reference n-grams, matches
        for (int s = 0; s < hypotheses.Count; s++)
        {
            string hyp = string.Concat(hypotheses[s].Where(c => !char.IsWhiteSpace(c)));
            string reference = string.Concat(references[s].Where(c => !char.IsWhiteSpace(c)));
            for (int n = 1; n <= order; n++)
            {
                var h = CharGrams(hyp, n); var r = CharGrams(reference, n);
                stats[n - 1, 0] += h.Values.Sum();
                stats[n - 1, 1] += r.Values.Sum();
                foreach (var (gram, count) in h) stats[n - 1, 2] += Math.Min(count, r.GetValueOrDefault(gram));
            }
        }
        const double Eps = 1e-16;
        double precision = 0, recall = 0;
        int effective = 0;
        for (int n = 0; n < order; n++)
        {
            long hn = stats[n, 0], rn = stats[n, 1], m = stats[n, 2];
            precision += hn > 0 ? (double)m / hn : Eps;
            recall += rn > 0 ? (double)m / rn : Eps;
            if (hn > 0 && rn > 0) effective++;
        }
        if (effective == 0) return 0;
        precision /= effective; recall /= effective;
        double b2 = beta * beta;
        return precision + recall > 0 ? 100 * (1 + b2) * precision * recall / (b2 * precision + recall) : 0;
    }

    static Dictionary<string, int> CharGrams(string text, int n)
    {
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i + n <= text.Length; i++)
        {
            string gram = text.Substring(i, n);
            counts[gram] = counts.GetValueOrDefault(gram) + 1;
        }
        return counts;
    }
}
