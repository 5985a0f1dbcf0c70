using LsKd.Kernels;

namespace LsKd.Experiments.Analysis;

/// <summary>Penultimate-layer geometry of one model on one image set (K x K, row-major, from the backend's centroid
/// and distance kernels): centroid-to-centroid distances; the mean sample-to-sample distance between classes of
/// the projected representations (Appendix J: features with a 1 appended, on the orthonormal basis of all K
/// classes' [weights; bias] templates, as Algorithm 1 does for three); and the same without the projection, a
/// labelled extra.</summary>
public sealed record ClassDistances(int Classes, double[] Centroid, double[] Pairwise, double[] PairwiseUnprojected)
{
    public static ClassDistances Compute(IBackend backend, float[] features, int[] labels, int dim, int classes, int samplesPerClass, Projection? projection = null)
    {
        int n = labels.Length;
        using var f = backend.Allocate(n * dim); f.Upload(features);
        using var y = backend.AllocateInt(n); y.Upload(labels);
        using var c = backend.Allocate(classes * dim);
        backend.ClassCentroids(f, y, c, n, dim, classes);
        using var cd = backend.Allocate(classes * classes);
        backend.PairwiseDistances(c, c, cd, classes, classes, dim);
        var centroid = cd.ToArray().Select(v => (double)v).ToArray();

        // Pairwise version (Appendix J): the first samplesPerClass samples of each class, all pairs between classes.
        var picked = new List<int>[classes];
        for (int k = 0; k < classes; k++) picked[k] = [];
        for (int i = 0; i < n; i++) if (picked[labels[i]].Count < samplesPerClass) picked[labels[i]].Add(i);
        var order = picked.SelectMany(p => p).ToArray();
        var unprojected = MeanPairwise(backend, features, labels, order, dim, classes);
        var projected = projection == null ? unprojected : MeanPairwise(backend, projection.Project(features, order), labels, order, projection.Dimensions, classes, alreadyPicked: true);
        return new ClassDistances(classes, centroid, projected, unprojected);
    }

    /// <summary>Mean distance between samples of each pair of classes (the diagonal: distinct samples of a class).</summary>
    static double[] MeanPairwise(IBackend backend, float[] features, int[] labels, int[] order, int dim, int classes, bool alreadyPicked = false)
    {
        int m = order.Length;
        var sub = alreadyPicked ? features : new float[m * dim];
        if (!alreadyPicked) for (int i = 0; i < m; i++) Array.Copy(features, (long)order[i] * dim, sub, (long)i * dim, dim);
        using var s = backend.Allocate(Math.Max(1, m * dim)); s.Upload(sub);
        using var sd = backend.Allocate(Math.Max(1, m * m));
        backend.PairwiseDistances(s, s, sd, m, m, dim);
        var all = sd.ToArray();
        var sums = new double[classes * classes];
        var counts = new long[classes * classes];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < m; j++)
            {
                if (i == j) continue;
                int cell = labels[order[i]] * classes + labels[order[j]];
                sums[cell] += all[(long)i * m + j];
                counts[cell]++;
            }
        var pairwise = new double[classes * classes];
        for (int cell = 0; cell < pairwise.Length; cell++) pairwise[cell] = counts[cell] > 0 ? sums[cell] / counts[cell] : double.NaN;
        return pairwise;
    }

    public double[] Get(bool pairwise) => pairwise ? Pairwise : Centroid;
}

/// <summary>Sets of similar (S1) and dissimilar (S2) classes of a target class.</summary>
public sealed record ClassSets(int Target, int[] S1, int[] S2)
{
    /// <summary>From the declared hierarchy: S1 = the other members of the target's group, S2 = every class outside it.</summary>
    public static ClassSets FromHierarchy(Data.DatasetInfo info, int target)
    {
        var s1 = info.SimilarTo(target);
        var group = info.Hierarchy.First(g => g.Value.Contains(target)).Value;
        var s2 = Enumerable.Range(0, info.Classes.Length).Where(k => !group.Contains(k)).ToArray();
        return new ClassSets(target, s1, s2);
    }

    /// <summary>From feature-space distance (Appendix F.2): S1 = the similarCount classes whose centroids are nearest
    /// to the target's; S2 = the farthest 90 % of the other classes, but leaving a middle band of at least one class
    /// between S1 and S2 when there are enough classes (the paper: nearest 10 and farthest 900 of 999).</summary>
    public static ClassSets FromDistances(double[] centroidDistances, int classes, int target, int similarCount)
    {
        var others = Enumerable.Range(0, classes).Where(k => k != target).OrderBy(k => centroidDistances[target * classes + k]).ThenBy(k => k).ToArray();
        int rest = others.Length - similarCount;
        int farthest = Math.Min(rest, Math.Max(1, Math.Min((int)Math.Floor(0.9 * others.Length), rest - 1)));
        return new ClassSets(target, others.Take(similarCount).ToArray(), others[^farthest..]);
    }

    /// <summary>Table 12: |S1 ∩ S1'| / |S1| and |S2 ∩ S2'| / |S2|.</summary>
    public (double S1, double S2) Agreement(ClassSets other) =>
        (S1.Length == 0 ? double.NaN : S1.Intersect(other.S1).Count() / (double)S1.Length,
         S2.Length == 0 ? double.NaN : S2.Intersect(other.S2).Count() / (double)S2.Length);
}

/// <summary>The diffusion index (paper Eq. 1, GUIDE section 3), in percent.</summary>
public static class Diffusion
{
    /// <summary>eta(T1, T2; pi, S) = 100 / |S| sum_{k in S} (d(pi, k; T2) - d(pi, k; T1)) / d(pi, k; T1), with
    /// d(pi, k; T) = D_T[pi, k] / R(T) and R(T) = sum over k in S1 and S2 of D_T[pi, k].</summary>
    public static double Eta(double[] distancesT1, double[] distancesT2, int classes, ClassSets sets, bool similar)
    {
        var s = similar ? sets.S1 : sets.S2;
        if (s.Length == 0) return double.NaN;
        double r1 = 0, r2 = 0;
        foreach (int k in sets.S1.Concat(sets.S2)) { r1 += distancesT1[sets.Target * classes + k]; r2 += distancesT2[sets.Target * classes + k]; }
        double sum = 0;
        foreach (int k in s)
        {
            double d1 = distancesT1[sets.Target * classes + k] / r1, d2 = distancesT2[sets.Target * classes + k] / r2;
            sum += (d2 - d1) / d1;
        }
        return 100.0 * sum / s.Length;
    }
}
