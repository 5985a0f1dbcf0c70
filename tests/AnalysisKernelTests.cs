using LsKd.Kernels;
using MathNet.Numerics.LinearAlgebra;

namespace LsKd.Tests;

/// <summary>Feature-geometry kernels against MathNet.Numerics on every backend: class centroids and pairwise
/// Euclidean distances, odd sizes. Tolerance 1e-5 + 1e-5 |expected|.</summary>
[TestFixture]
public class AnalysisKernelTests
{
    static IEnumerable<string> BackendNames() => Backends.Names;



    [TestCaseSource(nameof(BackendNames))]
    public void CentroidsMatchMathNet(string backend)
    {
        var be = Backends.Get(backend);
        int n = 53, d = 19, k = 6;
        var f = Matrices.Random(n, d, 1);
        var rng = new Random(2);
        var labels = Enumerable.Range(0, n).Select(_ => rng.Next(k - 1)).ToArray();   // class k-1 stays empty
        using var df = be.Allocate(n * d); df.Upload(Matrices.RowMajor(f));
        using var dl = be.AllocateInt(n); dl.Upload(labels);
        using var dc = be.Allocate(k * d);
        be.ClassCentroids(df, dl, dc, n, d, k);
        var got = dc.ToArray();
        for (int c = 0; c < k; c++)
        {
            var rows = Enumerable.Range(0, n).Where(i => labels[i] == c).ToArray();
            var expected = rows.Length == 0 ? Vector<double>.Build.Dense(d) : rows.Select(i => f.Row(i)).Aggregate((a, b) => a + b) / rows.Length;
            for (int j = 0; j < d; j++) Assert.That(got[c * d + j], Is.EqualTo(expected[j]).Within(1e-5 + 1e-5 * Math.Abs(expected[j])), $"class {c} column {j}");
        }
    }

    [TestCaseSource(nameof(BackendNames))]
    public void DistancesMatchMathNet(string backend)
    {
        var be = Backends.Get(backend);
        int m = 7, n = 5, d = 41;
        var a = Matrices.Random(m, d, 3); var b = Matrices.Random(n, d, 4);
        using var da = be.Allocate(m * d); da.Upload(Matrices.RowMajor(a));
        using var db = be.Allocate(n * d); db.Upload(Matrices.RowMajor(b));
        using var dd = be.Allocate(m * n);
        be.PairwiseDistances(da, db, dd, m, n, d);
        var got = dd.ToArray();
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double expected = MathNet.Numerics.Distance.Euclidean(a.Row(i).ToArray(), b.Row(j).ToArray());
                Assert.That(got[i * n + j], Is.EqualTo(expected).Within(1e-5 + 1e-5 * expected), $"pair ({i}, {j})");
            }
    }
}
