using LsKd.Kernels;

namespace LsKd.Autograd;

/// <summary>An optimiser over persistent parameter tensors. Where the backend can slice buffers (the GPU), the
/// parameters and their gradients move into two contiguous arenas when the optimiser is made, so a step is one fused
/// kernel over all of them and zeroing the gradients one fill (a ResNet-20 has 65 parameter tensors: 130 launches
/// fewer per step); they move back into buffers of their own when it is disposed. Elsewhere each tensor is stepped
/// on its own, as CPU dispatch costs nothing worth fusing.</summary>
public abstract class Optimizer : IDisposable
{
    protected Optimizer(IReadOnlyList<Tensor> parameters, bool fuse = true)
    {
        foreach (var p in parameters)
            if (!p.RequiresGrad || p.IsTransient) throw new ArgumentException($"{p} is not a trainable parameter");
        Parameters = parameters;
        if (fuse) Arena = ParameterArena.TryCreate(parameters);
    }

    public IReadOnlyList<Tensor> Parameters { get; }
    public float LearningRate { get; set; }

    /// <summary>The contiguous parameters and gradients, when the backend allows them (null otherwise).</summary>
    protected ParameterArena? Arena { get; }

    /// <summary>Whether steps run as one fused kernel over all parameters.</summary>
    public bool Fused => Arena != null;

    public void ZeroGrad()
    {
        if (Arena != null) { Arena.ZeroGrad(); return; }
        foreach (var p in Parameters) p.ZeroGrad();
    }

    public abstract void Step();

    /// <summary>A zeroed state buffer per parameter, or one for the whole arena.</summary>
    protected DeviceBuffer<float>[] ZeroState()
    {
        DeviceBuffer<float> Zero(IBackend b, int n) { var v = b.Allocate(n); b.Fill(v, 0, n, 0f); return v; }
        return Arena != null ? [Zero(Arena.Backend, Arena.Length)] : Parameters.Select(p => Zero(p.Backend, p.Size)).ToArray();
    }

    public virtual void Dispose()
    {
        Arena?.Dispose();
        GC.SuppressFinalize(this);
    }
}

/// <summary>Parameters and gradients of one backend, laid end to end in two buffers; each tensor is rebound to its
/// slice of them. Disposing moves every tensor back into buffers of its own, so models outlive their optimiser.</summary>
public sealed class ParameterArena : IDisposable
{
    readonly IReadOnlyList<Tensor> _parameters;
    readonly DeviceBuffer<float> _values, _grads;

    ParameterArena(BackendBase backend, IReadOnlyList<Tensor> parameters, int length)
    {
        Backend = backend;
        _parameters = parameters;
        Length = length;
        _values = backend.Allocate(length);
        _grads = backend.Allocate(length);
        backend.Fill(_grads, 0, length, 0f);
        int offset = 0;
        foreach (var p in parameters)
        {
            var value = backend.Slice(_values, offset, p.Size);
            var grad = backend.Slice(_grads, offset, p.Size);
            backend.Copy(p.Buffer, 0, value, 0, p.Size);
            if (p.Grad != null) backend.Copy(p.Grad, 0, grad, 0, p.Size);
            var (oldValue, oldGrad) = (p.Buffer, p.Grad);
            p.Rebind(value, grad);
            oldValue.Dispose();
            oldGrad?.Dispose();
            offset += p.Size;
        }
    }

    /// <summary>An arena, or null where the parameters' backend cannot slice or they live on several backends.</summary>
    public static ParameterArena? TryCreate(IReadOnlyList<Tensor> parameters)
    {
        parameters = parameters.Distinct().ToList();   // a tied weight is one tensor, stepped once
        if (parameters.Count < 2 || parameters[0].Backend is not BackendBase { SupportsSlices: true } backend) return null;
        if (parameters.Any(p => p.Backend != backend)) return null;
        long length = parameters.Sum(p => (long)p.Size);
        return length > int.MaxValue ? null : new ParameterArena(backend, parameters, (int)length);
    }

    public BackendBase Backend { get; }
    public int Length { get; }
    public DeviceBuffer<float> Values => _values;
    public DeviceBuffer<float> Grads => _grads;

    public void ZeroGrad() => Backend.Fill(_grads, 0, Length, 0f);

    public void Dispose()
    {
        if (_values.IsDisposed) return;
        foreach (var p in _parameters)
        {
            var value = Backend.Allocate(p.Size);
            var grad = Backend.Allocate(p.Size);
            Backend.Copy(p.Buffer, 0, value, 0, p.Size);
            Backend.Copy(p.Grad!, 0, grad, 0, p.Size);
            p.Rebind(value, grad);
        }
        _values.Dispose();
        _grads.Dispose();
    }
}

public sealed class Sgd : Optimizer
{
    readonly DeviceBuffer<float>[] _velocity;
    readonly SgdConfig _config;

    public Sgd(IReadOnlyList<Tensor> parameters, SgdConfig config, bool fuse = true) : base(parameters, fuse)
    {
        _config = config;
        LearningRate = config.LearningRate;
        _velocity = ZeroState();
    }

    public override void Step()
    {
        var cfg = _config with { LearningRate = LearningRate };
        if (Arena != null) { Arena.Backend.SgdStep(Arena.Values, Arena.Grads, _velocity[0], Arena.Length, cfg); return; }
        for (int i = 0; i < Parameters.Count; i++)
        {
            var p = Parameters[i];
            if (p.Grad == null) continue;
            p.Backend.SgdStep(p.Buffer, p.Grad, _velocity[i], p.Size, cfg);
        }
    }

    public override void Dispose() { foreach (var v in _velocity) v.Dispose(); base.Dispose(); }
}

public sealed class AdamW : Optimizer
{
    readonly DeviceBuffer<float>[] _m, _v;
    readonly AdamWConfig _config;
    int _step;

    public AdamW(IReadOnlyList<Tensor> parameters, AdamWConfig config, bool fuse = true) : base(parameters, fuse)
    {
        _config = config;
        LearningRate = config.LearningRate;
        _m = ZeroState();
        _v = ZeroState();
    }

    public override void Step()
    {
        _step++;
        var cfg = _config with { LearningRate = LearningRate };
        if (Arena != null) { Arena.Backend.AdamWStep(Arena.Values, Arena.Grads, _m[0], _v[0], Arena.Length, cfg, _step); return; }
        for (int i = 0; i < Parameters.Count; i++)
        {
            var p = Parameters[i];
            if (p.Grad == null) continue;
            p.Backend.AdamWStep(p.Buffer, p.Grad, _m[i], _v[i], p.Size, cfg, _step);
        }
    }

    public override void Dispose() { foreach (var b in _m.Concat(_v)) b.Dispose(); base.Dispose(); }
}

/// <summary>Learning-rate schedules of Transformer training, as functions of the 1-based update step.</summary>
public static class LearningRateSchedules
{
    /// <summary>Linear warm-up to <paramref name="peak"/> over <paramref name="warmup"/> steps, then decay with the
    /// inverse square root of the step (Vaswani et al.; fairseq's inverse_sqrt): peak * min(step / warmup, sqrt(warmup / step)).</summary>
    public static float InverseSqrt(int step, int warmup, float peak)
    {
        if (step < 1) throw new ArgumentOutOfRangeException(nameof(step), step, "steps count from 1");
        if (warmup < 1) throw new ArgumentOutOfRangeException(nameof(warmup), warmup, "warm-up must be at least 1 step");
        return (float)(peak * Math.Min((double)step / warmup, Math.Sqrt((double)warmup / step)));
    }

    /// <summary>Linear warm-up over <paramref name="warmup"/> steps, then a cosine from peak down to
    /// <paramref name="floor"/> at step <paramref name="total"/> (and floor after it).</summary>
    public static float WarmupCosine(int step, int warmup, int total, float peak, float floor = 0f)
    {
        if (step < 1) throw new ArgumentOutOfRangeException(nameof(step), step, "steps count from 1");
        if (warmup < 0 || total <= warmup) throw new ArgumentOutOfRangeException(nameof(total), total, $"total steps {total} must exceed the warm-up {warmup}");
        if (step <= warmup) return peak * step / warmup;
        double t = Math.Min(1.0, (double)(step - warmup) / (total - warmup));
        return (float)(floor + (peak - floor) * 0.5 * (1 + Math.Cos(Math.PI * t)));
    }
}

/// <summary>Global-norm gradient clipping (PyTorch's clip_grad_norm_ with the L2 norm).</summary>
public static class GradientClipping
{
    /// <summary>Scales every gradient by maxNorm / norm when the L2 norm over all of them exceeds maxNorm; returns the
    /// norm before clipping (infinite or NaN gradients give a non-finite norm and are left as they are, so the caller
    /// can skip the step).</summary>
    public static double ClipGlobalNorm(IReadOnlyList<Tensor> parameters, float maxNorm)
    {
        if (!(maxNorm > 0f)) throw new ArgumentOutOfRangeException(nameof(maxNorm), maxNorm, "the maximum gradient norm must be > 0");
        double sumSquares = 0;
        foreach (var p in parameters)
        {
            if (p.Grad == null) continue;
            var be = p.Backend;
            using var squares = be.Allocate(p.Size);
            using var total = be.Allocate(1);
            be.Unary(UnaryOp.Square, p.Grad, squares, p.Size);
            be.Reduce(ReduceOp.Sum, squares, total, 1, p.Size, 1);
            sumSquares += total.ToArray()[0];
        }
        double norm = Math.Sqrt(sumSquares);
        if (double.IsFinite(norm) && norm > maxNorm)
        {
            float factor = (float)(maxNorm / (norm + 1e-6));
            foreach (var p in parameters)
                if (p.Grad != null) p.Backend.Unary(UnaryOp.Scale, p.Grad, p.Grad, p.Size, factor);
        }
        return norm;
    }
}
