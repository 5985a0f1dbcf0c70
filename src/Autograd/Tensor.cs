using LsKd.Kernels;

namespace LsKd.Autograd;

/// <summary>An fp32 tensor on one backend: a row-major shape over a flat device buffer, with an optional
/// gradient. Tensors made by ops inside a <see cref="Tape"/> are transient: their buffers go back to the pool
/// when the tape is reset, so a training loop does not grow.</summary>
public sealed class Tensor
{
    internal Tensor(IBackend backend, int[] shape, DeviceBuffer<float> buffer, bool requiresGrad, bool transient, string? name = null)
    {
        Backend = backend;
        Shape = shape;
        Buffer = buffer;
        RequiresGrad = requiresGrad;
        IsTransient = transient;
        Name = name;
    }

    public IBackend Backend { get; }
    public int[] Shape { get; }
    public DeviceBuffer<float> Buffer { get; private set; }
    public DeviceBuffer<float>? Grad { get; internal set; }
    public bool RequiresGrad { get; }
    public bool IsTransient { get; }
    public string? Name { get; }
    internal Node? Creator { get; set; }

    public int Size => ShapeSize(Shape);
    public int Rank => Shape.Length;
    public int Rows => Shape.Length == 0 ? 1 : Shape[0];
    /// <summary>Elements per leading index (the "columns" of a 2-D view).</summary>
    public int RowSize => Shape.Length <= 1 ? 1 : Size / Shape[0];

    public static int ShapeSize(int[] shape)
    {
        long n = 1;
        foreach (int d in shape) n *= d;
        if (n > int.MaxValue) throw new ArgumentException($"shape {ShapeString(shape)} has more than {int.MaxValue} elements");
        return (int)n;
    }

    public static string ShapeString(int[] shape) => "[" + string.Join(", ", shape) + "]";
    public override string ToString() => $"Tensor{ShapeString(Shape)}{(Name != null ? " " + Name : "")} on {Backend.Name}";

    /// <summary>A persistent tensor (a parameter or data), not returned to the pool by the tape.</summary>
    public static Tensor Create(IBackend backend, int[] shape, bool requiresGrad = false, string? name = null)
    {
        foreach (int d in shape) if (d < 0) throw new ArgumentException($"negative dimension in shape {ShapeString(shape)}");
        return new Tensor(backend, (int[])shape.Clone(), backend.Allocate(ShapeSize(shape)), requiresGrad, transient: false, name);
    }

    public static Tensor FromArray(IBackend backend, float[] data, int[] shape, bool requiresGrad = false, string? name = null)
    {
        if (data.Length != ShapeSize(shape))
            throw new ArgumentException($"data has {data.Length} elements but shape {ShapeString(shape)} needs {ShapeSize(shape)}");
        var t = Create(backend, shape, requiresGrad, name);
        t.Buffer.Upload(data);
        return t;
    }

    public float[] ToArray()
    {
        var r = new float[Size];
        Buffer.Download(r);
        return r;
    }

    /// <summary>Gradient buffer, allocated and zeroed on first use.</summary>
    internal DeviceBuffer<float> EnsureGrad(out bool fresh)
    {
        fresh = Grad == null;
        Grad ??= IsTransient ? Tape.Current.Pool.Rent(Backend, Size) : Backend.Allocate(Size);
        return Grad;
    }

    public void ZeroGrad()
    {
        if (Grad != null) Backend.Fill(Grad, 0, Size, 0f);
    }

    public float[] GradToArray()
    {
        if (Grad == null) throw new InvalidOperationException($"{this} has no gradient (did backward reach it?)");
        var r = new float[Size];
        Grad.Download(r);
        return r;
    }

    /// <summary>Same buffer, new shape (no copy). Gradients flow back through the view.</summary>
    public Tensor Reshape(params int[] shape) => Ops.Reshape(this, shape);

    /// <summary>The batch statistics of this convolution output ([mean per channel, biased variance per channel]),
    /// formed by the convolution as it wrote the output; a following batch norm in training uses them.</summary>
    internal Tensor? ChannelStats { get; set; }

    internal void ReleaseTo(BufferPool pool)
    {
        ChannelStats = null;
        if (!IsTransient) return;
        if (!_viewOfOther) pool.Return(Buffer);
        if (Grad != null) pool.Return(Grad);
        Grad = null;
    }

    internal bool _viewOfOther;

    /// <summary>Moves a persistent tensor onto other memory of the same size (the optimiser's parameter arena).</summary>
    internal void Rebind(DeviceBuffer<float> buffer, DeviceBuffer<float>? grad)
    {
        if (buffer.Length != Size || (grad != null && grad.Length != Size)) throw new ArgumentException($"{this}: rebinding needs buffers of {Size}");
        Buffer = buffer;
        Grad = grad;
    }
}
