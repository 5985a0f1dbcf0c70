namespace LsKd.Autograd;

/// <summary>A recorded op: its output, inputs and how to push the output gradient to the inputs.</summary>
internal sealed class Node(Tensor output, Tensor[] inputs, Action<Tensor> backward)
{
    public Tensor Output { get; } = output;
    public Tensor[] Inputs { get; } = inputs;
    public Action<Tensor> Backward { get; } = backward;
}

/// <summary>Define-by-run tape. Ops record nodes while gradients are enabled; <see cref="Backward"/> walks them in
/// reverse topological order, accumulating gradients; <see cref="Reset"/> returns every transient buffer to the
/// pool. One tape per thread.</summary>
public sealed class Tape : IDisposable
{
    [ThreadStatic] static Tape? t_current;
    readonly List<Tensor> _transients = [];
    readonly List<Kernels.DeviceBuffer<int>> _intTransients = [];
    int _noGradDepth;

    public static Tape Current => t_current ??= new Tape();

    public BufferPool Pool { get; } = new();
    public bool GradEnabled => _noGradDepth == 0;
    public int TransientCount => _transients.Count;

    /// <summary>Disables recording (teachers and evaluation run under this).</summary>
    public static IDisposable NoGrad() => new NoGradScope(Current);

    sealed class NoGradScope : IDisposable
    {
        readonly Tape _tape;
        bool _done;
        public NoGradScope(Tape tape) { _tape = tape; tape._noGradDepth++; }
        public void Dispose() { if (!_done) { _tape._noGradDepth--; _done = true; } }
    }

    internal Tensor NewTransient(Kernels.IBackend backend, int[] shape, bool requiresGrad)
    {
        var t = new Tensor(backend, shape, Pool.Rent(backend, Tensor.ShapeSize(shape)), requiresGrad && GradEnabled, transient: true);
        _transients.Add(t);
        return t;
    }

    internal void TrackView(Tensor view) => _transients.Add(view);

    /// <summary>Integer data (token ids, masks) uploaded into a buffer that lives until the next reset, so the
    /// backward pass can still read it.</summary>
    public Kernels.DeviceBuffer<int> Ints(Kernels.IBackend backend, ReadOnlySpan<int> values)
    {
        var b = NewIntTransient(backend, Math.Max(1, values.Length));
        b.Upload(values);
        return b;
    }

    /// <summary>Float data (cached teacher logits) uploaded into a tensor without gradient that lives until the next
    /// reset.</summary>
    public Tensor Floats(Kernels.IBackend backend, ReadOnlySpan<float> values, int[] shape)
    {
        if (values.Length != Tensor.ShapeSize(shape))
            throw new ArgumentException($"data has {values.Length} elements but shape {Tensor.ShapeString(shape)} needs {Tensor.ShapeSize(shape)}");
        var t = NewTransient(backend, (int[])shape.Clone(), requiresGrad: false);
        t.Buffer.Upload(values);
        return t;
    }

    /// <summary>An integer scratch buffer that lives until the next reset (max-pool indices for backward).</summary>
    internal Kernels.DeviceBuffer<int> NewIntTransient(Kernels.IBackend backend, int length)
    {
        var b = Pool.RentInt(backend, length);
        _intTransients.Add(b);
        return b;
    }

    internal void Record(Tensor output, Tensor[] inputs, Action<Tensor> backward)
    {
        if (!output.RequiresGrad) return;
        output.Creator = new Node(output, inputs, backward);
    }

    /// <summary>Back-propagates from a scalar loss (seed gradient 1) or from a given output gradient.</summary>
    public static void Backward(Tensor loss, float seed = 1f)
    {
        if (!loss.RequiresGrad) throw new InvalidOperationException($"{loss} does not require grad: nothing to differentiate");
        var order = new List<Tensor>();
        var visited = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
        // Iterative DFS post-order: deep networks must not overflow the stack.
        var stack = new Stack<(Tensor T, bool Expanded)>();
        stack.Push((loss, false));
        while (stack.Count > 0)
        {
            var (t, expanded) = stack.Pop();
            if (expanded) { order.Add(t); continue; }
            if (!visited.Add(t)) continue;
            stack.Push((t, true));
            if (t.Creator != null)
                foreach (var input in t.Creator.Inputs)
                    if (input.RequiresGrad && !visited.Contains(input)) stack.Push((input, false));
        }
        var g = loss.EnsureGrad(out _);
        loss.Backend.Fill(g, 0, loss.Size, seed);
        for (int i = order.Count - 1; i >= 0; i--)
        {
            var t = order[i];
            if (t.Creator != null && t.Grad != null) t.Creator.Backward(t);
        }
    }

    /// <summary>Returns all transient buffers made since the last reset to the pool.</summary>
    public void Reset()
    {
        foreach (var t in _transients) { t.ReleaseTo(Pool); t.Creator = null; }
        _transients.Clear();
        foreach (var b in _intTransients) Pool.Return(b);
        _intTransients.Clear();
    }

    public void Dispose()
    {
        Reset();
        Pool.Dispose();
        if (ReferenceEquals(t_current, this)) t_current = null;
    }
}
