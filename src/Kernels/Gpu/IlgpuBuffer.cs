using ILGPU;
using ILGPU.Runtime;

namespace LsKd.Kernels.Gpu;

/// <summary>A device allocation on an ILGPU accelerator.</summary>
public sealed class IlgpuBuffer<T> : DeviceBuffer<T> where T : unmanaged
{
    readonly MemoryBuffer1D<T, Stride1D.Dense>? _buffer;
    readonly ArrayView1D<T, Stride1D.Dense> _view;
    readonly IlgpuBackend _backend;

    internal IlgpuBuffer(IlgpuBackend backend, int length) : base(backend, length)
    {
        _backend = backend;
        _buffer = length == 0 ? null : backend.Accelerator.Allocate1D<T>(length);
        _view = _buffer == null ? default : _buffer.View;
    }

    /// <summary>A slice: part of another buffer's memory, owned by that buffer.</summary>
    internal IlgpuBuffer(IlgpuBackend backend, ArrayView1D<T, Stride1D.Dense> view, long offset) : base(backend, (int)view.Length)
    {
        _backend = backend;
        _view = view;
        Offset = offset;
    }

    /// <summary>Elements from the start of the allocation (which is aligned) to this buffer's first: 0 unless a slice.</summary>
    public long Offset { get; }

    /// <summary>The whole buffer as a dense view (an empty view for a zero-length buffer).</summary>
    public ArrayView1D<T, Stride1D.Dense> View => _view;

    public override void Upload(ReadOnlySpan<T> source)
    {
        if (source.Length > Length) throw new ArgumentException($"cannot upload {source.Length} elements into a buffer of {Length}", nameof(source));
        if (source.Length == 0) return;
        _backend.Synchronize();
        View.SubView(0, source.Length).AsContiguous().CopyFromCPU(source);
    }

    public override void Download(Span<T> destination)
    {
        int n = Math.Min(destination.Length, Length);
        if (n == 0) return;
        _backend.Synchronize();
        View.SubView(0, n).AsContiguous().CopyToCPU(destination[..n]);
    }

    // Synchronise first: a queued kernel may still read this memory (GUIDE practice 6).
    protected override void Release()
    {
        if (_buffer == null) return;
        _backend.Synchronize();
        _buffer.Dispose();
    }
}
