namespace LsKd.Kernels;

/// <summary>A fitted PCA: the training mean, the top components (rows, unit length, largest-magnitude entry
/// positive), their variances and the total variance (trace of the covariance).</summary>
public sealed record PcaModel(int Dim, int Components, float[] Mean, float[] Axes, float[] Variances, double TotalVariance)
{
    public double ExplainedFraction(int component) => TotalVariance > 0 ? Variances[component] / TotalVariance : 0;
}

/// <summary>PCA on any backend: centring and covariance (<see cref="IBackend.Covariance"/>), symmetric
/// eigen-decomposition (<see cref="IBackend.SymmetricEigen"/>), projection by GEMM.</summary>
public static class Pca
{
    public static PcaModel Fit(IBackend backend, ReadOnlySpan<float> x, int n, int d, int components)
    {
        using var dx = backend.Allocate(n * d);
        dx.Upload(x);
        return Fit(backend, dx, n, d, components);
    }

    public static PcaModel Fit(IBackend backend, DeviceBuffer<float> x, int n, int d, int components)
    {
        if (components < 1 || components > d) throw new ArgumentOutOfRangeException(nameof(components), components, $"components must be in [1, {d}]");
        using var mean = backend.Allocate(d);
        using var cov = backend.Allocate(d * d);
        using var values = backend.Allocate(d);
        using var vectors = backend.Allocate(d * d);
        backend.Covariance(x, mean, cov, n, d);
        backend.SymmetricEigen(cov, values, vectors, d);
        var allValues = values.ToArray();
        double total = 0;
        foreach (float v in allValues) total += Math.Max(v, 0f);
        return new PcaModel(d, components, mean.ToArray(), vectors.ToArray().AsSpan(0, components * d).ToArray(),
            allValues.AsSpan(0, components).ToArray(), total);
    }

    public static float[] Transform(IBackend backend, PcaModel model, ReadOnlySpan<float> x, int n)
    {
        using var dx = backend.Allocate(n * model.Dim);
        dx.Upload(x);
        return Transform(backend, model, dx, n);
    }

    /// <summary>(x - mean) axes^T: [n, components].</summary>
    public static float[] Transform(IBackend backend, PcaModel model, DeviceBuffer<float> x, int n)
    {
        int d = model.Dim, k = model.Components;
        using var mean = backend.Allocate(d);
        using var axes = backend.Allocate(k * d);
        using var centred = backend.Allocate(n * d);
        using var y = backend.Allocate(n * k);
        mean.Upload(model.Mean);
        axes.Upload(model.Axes);
        backend.Binary(BinaryOp.Sub, x, mean, centred, n * d, d);
        backend.Gemm(new GemmSpec(TransA: false, TransB: true, M: n, N: k, K: d), centred, axes, y);
        return y.ToArray();
    }
}
