using LsKd.Kernels;
using MathNet.Numerics.LinearAlgebra;

namespace LsKd.Tests;

/// <summary>QR, covariance, symmetric eigen-decomposition and PCA on every backend against MathNet.Numerics, odd
/// sizes. Tolerances: 1e-5 absolute on orthonormal factors, 1e-5 relative to the scale of R, the covariance and
/// the spectrum.</summary>
[TestFixture]
public class LinalgKernelTests
{
    static IEnumerable<string> BackendNames() => Backends.Names;




    [TestCaseSource(nameof(BackendNames))]
    public void QrMatchesMathNetAndReconstructs(string backend)
    {
        var be = Backends.Get(backend);
        foreach (var (m, n) in new[] { (37, 5), (9, 9), (101, 7), (150, 45) })
        {
            var a = Matrices.Random(m, n, m + n);
            using var da = be.Allocate(m * n); da.Upload(Matrices.RowMajor(a));
            using var dq = be.Allocate(m * n); using var dr = be.Allocate(n * n);
            be.HouseholderQr(da, dq, dr, m, n);
            var q = Matrices.FromRowMajor(dq.ToArray(), m, n);
            var r = Matrices.FromRowMajor(dr.ToArray(), n, n);

            Assert.That((q.TransposeThisAndMultiply(q) - Matrix<double>.Build.DenseIdentity(n)).Enumerate().Max(Math.Abs), Is.LessThan(1e-5), $"{m}x{n}: Q^T Q = I");
            Assert.That((q * r - a).Enumerate().Max(Math.Abs), Is.LessThan(1e-5 * a.FrobeniusNorm()), $"{m}x{n}: QR = A");
            for (int i = 0; i < n; i++)
            {
                Assert.That(r[i, i], Is.GreaterThanOrEqualTo(0), $"{m}x{n}: R[{i},{i}] non-negative");
                for (int j = 0; j < i; j++) Assert.That(r[i, j], Is.EqualTo(0), $"{m}x{n}: R[{i},{j}] below the diagonal");
            }
            // MathNet's thin QR, with the same sign convention, must give the same factors.
            var qr = a.QR(MathNet.Numerics.LinearAlgebra.Factorization.QRMethod.Thin);
            var mq = qr.Q.Clone(); var mr = qr.R.Clone();
            for (int j = 0; j < n; j++)
                if (mr[j, j] < 0) { mr.SetRow(j, -mr.Row(j)); mq.SetColumn(j, -mq.Column(j)); }
            Assert.That((q - mq).Enumerate().Max(Math.Abs), Is.LessThan(1e-5), $"{m}x{n}: Q vs MathNet");
            Assert.That((r - mr).Enumerate().Max(Math.Abs), Is.LessThan(1e-5 * mr.Enumerate().Max(Math.Abs)), $"{m}x{n}: R vs MathNet");
        }
    }

    [Test]
    public void GpuQrAllocatesItsWorkspaceOnceForShapesThatFit()
    {
        // The 60,000 x 512 features' QR needs 123 MB of reflectors: allocated once, not per call.
        using var be = (LsKd.Kernels.Gpu.IlgpuBackend)LsKd.Kernels.Devices.Create("ilgpu-cpu", 1);
        void Qr(int m, int n)
        {
            using var da = be.Allocate(m * n); da.Upload(Matrices.RowMajor(Matrices.Random(m, n, 3)));
            using var dq = be.Allocate(m * n); using var dr = be.Allocate(n * n);
            be.HouseholderQr(da, dq, dr, m, n);
        }
        Qr(40, 6);
        int first = be.QrWorkspaceAllocations;
        Assert.That(first, Is.EqualTo(3), "reflectors, one Householder vector, dot products");
        Qr(40, 6); Qr(20, 3); Qr(33, 6);
        Assert.That(be.QrWorkspaceAllocations, Is.EqualTo(first), "smaller or equal shapes reuse the workspace");
        Qr(80, 6);
        Assert.That(be.QrWorkspaceAllocations, Is.EqualTo(first + 2), "a taller matrix grows the reflectors and the vector");
    }

    [TestCaseSource(nameof(BackendNames))]
    public void CovarianceMatchesMathNet(string backend)
    {
        var be = Backends.Get(backend);
        int n = 203, d = 11;
        var x = Matrices.Random(n, d, 5);
        using var dx = be.Allocate(n * d); dx.Upload(Matrices.RowMajor(x));
        using var mean = be.Allocate(d); using var cov = be.Allocate(d * d);
        be.Covariance(dx, mean, cov, n, d);
        var gotMean = mean.ToArray(); var gotCov = cov.ToArray();
        for (int j = 0; j < d; j++)
        {
            Assert.That(gotMean[j], Is.EqualTo(MathNet.Numerics.Statistics.Statistics.Mean(x.Column(j))).Within(1e-5), $"mean {j}");
            for (int k = 0; k < d; k++)
            {
                double expected = MathNet.Numerics.Statistics.Correlation.Pearson(x.Column(j), x.Column(k))
                                  * MathNet.Numerics.Statistics.Statistics.StandardDeviation(x.Column(j)) * MathNet.Numerics.Statistics.Statistics.StandardDeviation(x.Column(k));
                Assert.That(gotCov[j * d + k], Is.EqualTo(expected).Within(1e-5 + 1e-4 * Math.Abs(expected)), $"cov ({j}, {k})");
            }
        }
    }

    [TestCaseSource(nameof(BackendNames))]
    public void SymmetricEigenMatchesMathNet(string backend)
    {
        var be = Backends.Get(backend);
        foreach (int d in new[] { 1, 2, 7, 16 })
        {
            var b = Matrices.Random(d, d, 20 + d);
            var a = b + b.Transpose();
            using var da = be.Allocate(d * d); da.Upload(Matrices.RowMajor(a));
            using var values = be.Allocate(d); using var vectors = be.Allocate(d * d);
            be.SymmetricEigen(da, values, vectors, d);
            var evd = Matrices.FromRowMajor(Matrices.RowMajor(a), d, d).Evd(Symmetricity.Symmetric);
            var expected = evd.EigenValues.Select(c => c.Real).OrderByDescending(v => v).ToArray();
            var got = values.ToArray(); var vec = Matrices.FromRowMajor(vectors.ToArray(), d, d);
            double scale = expected.Max(Math.Abs);
            for (int k = 0; k < d; k++)
            {
                Assert.That(got[k], Is.EqualTo(expected[k]).Within(1e-5 * scale), $"d={d} eigenvalue {k}");
                var v = vec.Row(k);
                Assert.That(v.L2Norm(), Is.EqualTo(1).Within(1e-5), $"d={d} vector {k} unit");
                Assert.That((a * v - got[k] * v).L2Norm(), Is.LessThan(1e-4 * scale), $"d={d} A v = lambda v for {k}");
            }
            Assert.That((vec * vec.Transpose() - Matrix<double>.Build.DenseIdentity(d)).Enumerate().Max(Math.Abs), Is.LessThan(1e-5), $"d={d} orthonormal");
        }
    }

    /// <summary>A repeated eigenvalue (2 I + u u^T: 2 eight times, 2 + |u|^2 once) and a zero matrix: eigenvectors are
    /// not unique there, so the checks are the values, orthonormality and A v = lambda v.</summary>
    [TestCaseSource(nameof(BackendNames))]
    public void SymmetricEigenHandlesRepeatedEigenvalues(string backend)
    {
        var be = Backends.Get(backend);
        int d = 9;
        var u = Vector<double>.Build.Dense(d, i => 0.5 + 0.1 * i);
        foreach (var a in new[] { 2 * Matrix<double>.Build.DenseIdentity(d) + u.OuterProduct(u), Matrix<double>.Build.Dense(d, d) })
        {
            using var da = be.Allocate(d * d); da.Upload(Matrices.RowMajor(a));
            using var values = be.Allocate(d); using var vectors = be.Allocate(d * d);
            be.SymmetricEigen(da, values, vectors, d);
            var got = values.ToArray(); var vec = Matrices.FromRowMajor(vectors.ToArray(), d, d);
            var expected = a.Evd(Symmetricity.Symmetric).EigenValues.Select(c => c.Real).OrderByDescending(v => v).ToArray();
            for (int k = 0; k < d; k++)
            {
                Assert.That(got[k], Is.EqualTo(expected[k]).Within(1e-5 * (1 + Math.Abs(expected[0]))), $"eigenvalue {k}");
                Assert.That((a * vec.Row(k) - got[k] * vec.Row(k)).L2Norm(), Is.LessThan(1e-4 * (1 + Math.Abs(expected[0]))), $"A v = lambda v for {k}");
            }
            Assert.That((vec * vec.Transpose() - Matrix<double>.Build.DenseIdentity(d)).Enumerate().Max(Math.Abs), Is.LessThan(1e-5), "orthonormal");
        }
    }

    /// <summary>PCA's axes against MathNet's SVD of the centred data (right singular vectors, up to sign) and its
    /// variances against s^2 / (n - 1).</summary>
    [TestCaseSource(nameof(BackendNames))]
    public void PcaMatchesMathNetSvdUpToSign(string backend)
    {
        var be = Backends.Get(backend);
        int n = 151, d = 9, k = 3;
        var x = Matrices.Random(n, d, 9);
        for (int j = 0; j < d; j++) x.SetColumn(j, x.Column(j) * (1 + j) + j);   // distinct variances, non-zero means
        var model = Pca.Fit(be, Matrices.RowMajor(x), n, d, k);
        var centred = x.Clone();
        for (int j = 0; j < d; j++) centred.SetColumn(j, x.Column(j) - x.Column(j).Average());
        var svd = centred.Svd(computeVectors: true);
        for (int c = 0; c < k; c++)
        {
            var axis = Vector<double>.Build.Dense(d, j => model.Axes[c * d + j]);
            var expected = svd.VT.Row(c);
            double sign = Math.Sign(axis.DotProduct(expected));
            Assert.That((axis - sign * expected).AbsoluteMaximum(), Is.LessThan(1e-4), $"axis {c}");
            double variance = svd.S[c] * svd.S[c] / (n - 1);
            Assert.That(model.Variances[c], Is.EqualTo(variance).Within(1e-4 * variance), $"variance {c}");
        }
        var projected = Pca.Transform(be, model, Matrices.RowMajor(x), n);
        var expectedProjection = centred * Matrix<double>.Build.Dense(d, k, (j, c) => model.Axes[c * d + j]);
        for (int i = 0; i < n; i++)
            for (int c = 0; c < k; c++)
                Assert.That(projected[i * k + c], Is.EqualTo(expectedProjection[i, c]).Within(1e-4 * (1 + Math.Abs(expectedProjection[i, c]))), $"projection ({i}, {c})");
    }
}
