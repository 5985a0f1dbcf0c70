namespace LsKd.Kernels.Cpu;

/// <summary>A pinned managed array, so kernels can use raw pointers without pinning on every call.</summary>
public sealed unsafe class CpuBuffer<T> : DeviceBuffer<T> where T : unmanaged
{
    internal CpuBuffer(IBackend backend, int length) : base(backend, length)
    {
        Array = GC.AllocateArray<T>(length, pinned: true);
        Pointer = length == 0 ? null : (T*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref Array[0]);
    }

    public T[] Array { get; }
    public T* Pointer { get; }
    public Span<T> Span => Array;

    public override void Upload(ReadOnlySpan<T> source)
    {
        if (source.Length > Length) throw new ArgumentException($"cannot upload {source.Length} elements into a buffer of {Length}", nameof(source));
        source.CopyTo(Array);
    }

    public override void Download(Span<T> destination)
    {
        int n = Math.Min(destination.Length, Length);
        Array.AsSpan(0, n).CopyTo(destination);
    }

    protected override void Release() { }
}
