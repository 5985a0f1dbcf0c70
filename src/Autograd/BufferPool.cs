using LsKd.Kernels;

namespace LsKd.Autograd;

/// <summary>Reuses device buffers by exact length. Training steps allocate the same shapes every step, so after
/// the first step no new device memory is requested. Free buffers are capped (<see cref="MaxFreeElements"/>) so that
/// shapes that vary from step to step (sequence batches) cannot grow the pool without bound.</summary>
public sealed class BufferPool : IDisposable
{
    long _freeElements;

    /// <summary>Free float and int elements kept for reuse at most; a buffer returned beyond it is released.</summary>
    public long MaxFreeElements { get; set; } = 512L << 20;

    readonly Dictionary<(IBackend, int), Stack<DeviceBuffer<float>>> _free = [];
    readonly Dictionary<(IBackend, int), Stack<DeviceBuffer<int>>> _freeInt = [];

    public long Rented { get; private set; }
    public long Allocated { get; private set; }

    public DeviceBuffer<float> Rent(IBackend backend, int length)
    {
        Rented++;
        if (_free.TryGetValue((backend, length), out var stack) && stack.Count > 0) { _freeElements -= length; return stack.Pop(); }
        Allocated++;
        return backend.Allocate(length);
    }

    public void Return(DeviceBuffer<float> buffer)
    {
        if (buffer.IsDisposed) return;
        if (_freeElements + buffer.Length > MaxFreeElements) { buffer.Dispose(); return; }
        var key = (buffer.Backend, buffer.Length);
        if (!_free.TryGetValue(key, out var stack)) _free[key] = stack = new Stack<DeviceBuffer<float>>();
        stack.Push(buffer);
        _freeElements += buffer.Length;
    }

    /// <summary>Integer buffers (max-pool indices) are pooled the same way.</summary>
    public DeviceBuffer<int> RentInt(IBackend backend, int length)
    {
        Rented++;
        if (_freeInt.TryGetValue((backend, length), out var stack) && stack.Count > 0) { _freeElements -= length; return stack.Pop(); }
        Allocated++;
        return backend.AllocateInt(length);
    }

    public void Return(DeviceBuffer<int> buffer)
    {
        if (buffer.IsDisposed) return;
        if (_freeElements + buffer.Length > MaxFreeElements) { buffer.Dispose(); return; }
        var key = (buffer.Backend, buffer.Length);
        if (!_freeInt.TryGetValue(key, out var stack)) _freeInt[key] = stack = new Stack<DeviceBuffer<int>>();
        stack.Push(buffer);
        _freeElements += buffer.Length;
    }

    public int FreeBuffers => _free.Values.Sum(s => s.Count) + _freeInt.Values.Sum(s => s.Count);

    public void Dispose()
    {
        foreach (var s in _free.Values) while (s.Count > 0) s.Pop().Dispose();
        foreach (var s in _freeInt.Values) while (s.Count > 0) s.Pop().Dispose();
        _free.Clear();
        _freeInt.Clear();
        _freeElements = 0;
    }
}
