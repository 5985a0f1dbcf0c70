namespace LsKd.Kernels;

/// <summary>A flat array of T that lives on one backend. Ops take buffers plus explicit sizes.</summary>
public abstract class DeviceBuffer<T> : IDisposable where T : unmanaged
{
    protected DeviceBuffer(IBackend backend, int length)
    {
        if (length < 0) throw new ArgumentOutOfRangeException(nameof(length), length, "buffer length must be >= 0");
        Backend = backend;
        Length = length;
    }

    public IBackend Backend { get; }
    public int Length { get; }
    public bool IsDisposed { get; private set; }

    /// <summary>Copies host data into the start of this buffer.</summary>
    public abstract void Upload(ReadOnlySpan<T> source);

    /// <summary>Copies the start of this buffer into host memory (synchronises the backend).</summary>
    public abstract void Download(Span<T> destination);

    public T[] ToArray()
    {
        var result = new T[Length];
        Download(result);
        return result;
    }

    public void Dispose()
    {
        if (IsDisposed) return;
        IsDisposed = true;
        Release();
        GC.SuppressFinalize(this);
    }

    protected abstract void Release();
}
