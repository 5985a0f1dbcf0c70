namespace LsKd.Kernels;

/// <summary>Argument checks shared by every backend, run before any kernel is queued.</summary>
public static class Validation
{
    public static void SameBackend<T>(IBackend backend, DeviceBuffer<T> buffer, string name) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(buffer, name);
        if (buffer.IsDisposed) throw new ObjectDisposedException(name, $"buffer '{name}' was disposed");
        if (!ReferenceEquals(buffer.Backend, backend))
            throw new ArgumentException($"buffer '{name}' lives on backend '{buffer.Backend.Name}' but the op runs on '{backend.Name}'", name);
    }

    public static void Fits<T>(IBackend backend, DeviceBuffer<T> buffer, long needed, string name) where T : unmanaged
    {
        SameBackend(backend, buffer, name);
        if (needed > buffer.Length)
            throw new ArgumentException($"buffer '{name}' holds {buffer.Length} elements but the op needs {needed}", name);
    }

    public static void NonNegative(long value, string name)
    {
        if (value < 0) throw new ArgumentOutOfRangeException(name, value, $"{name} must be >= 0, got {value}");
    }

    public static void Positive(long value, string name)
    {
        if (value <= 0) throw new ArgumentOutOfRangeException(name, value, $"{name} must be > 0, got {value}");
    }

    public static void Temperature(float t)
    {
        if (HyperParameters.Temperature(t) is { } problem) throw new ArgumentOutOfRangeException("temperature", t, problem);
    }

    public static void Alpha(float alpha)
    {
        if (HyperParameters.Alpha(alpha) is { } problem) throw new ArgumentOutOfRangeException("alpha", alpha, problem);
    }

    public static void Gemm(IBackend backend, in GemmSpec s, DeviceBuffer<float> a, DeviceBuffer<float> b, DeviceBuffer<float> c)
    {
        NonNegative(s.M, "M"); NonNegative(s.N, "N"); NonNegative(s.K, "K"); Positive(s.BatchCount, "batchCount"); Positive(s.Heads, "heads");
        if (s.Lda < 0 || s.Ldb < 0 || s.Ldc < 0 || (s.Lda > 0 && s.Lda < (s.TransA ? s.M : s.K)) || (s.Ldb > 0 && s.Ldb < (s.TransB ? s.K : s.N)) || (s.Ldc > 0 && s.Ldc < s.N))
            throw new ArgumentException($"GEMM {s}: a leading dimension is shorter than its row (A rows of {(s.TransA ? s.M : s.K)}, B rows of {(s.TransB ? s.K : s.N)}, C rows of {s.N})");
        Fits(backend, a, s.ExtentA, "A"); Fits(backend, b, s.ExtentB, "B"); Fits(backend, c, s.ExtentC, "C");
    }
}
