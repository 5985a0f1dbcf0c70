using LsKd.Kernels;

namespace LsKd.Autograd;

/// <summary>An optimiser over persistent parameter tensors; each step is one fused kernel per tensor.</summary>
public abstract class Optimizer : IDisposable
{
    protected Optimizer(IReadOnlyList<Tensor> parameters)
    {
        foreach (var p in parameters)
            if (!p.RequiresGrad || p.IsTransient) throw new ArgumentException($"{p} is not a trainable parameter");
        Parameters = parameters;
    }

    public IReadOnlyList<Tensor> Parameters { get; }
    public float LearningRate { get; set; }

    public void ZeroGrad()
    {
        foreach (var p in Parameters) p.ZeroGrad();
    }

    public abstract void Step();

    public virtual void Dispose() => GC.SuppressFinalize(this);
}

public sealed class Sgd : Optimizer
{
    readonly DeviceBuffer<float>[] _velocity;
    readonly SgdConfig _config;

    public Sgd(IReadOnlyList<Tensor> parameters, SgdConfig config) : base(parameters)
    {
        _config = config;
        LearningRate = config.LearningRate;
        _velocity = parameters.Select(p => { var v = p.Backend.Allocate(p.Size); p.Backend.Fill(v, 0, p.Size, 0f); return v; }).ToArray();
    }

    public override void Step()
    {
        var cfg = _config with { LearningRate = LearningRate };
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

    public AdamW(IReadOnlyList<Tensor> parameters, AdamWConfig config) : base(parameters)
    {
        _config = config;
        LearningRate = config.LearningRate;
        DeviceBuffer<float> Zero(Tensor p) { var b = p.Backend.Allocate(p.Size); p.Backend.Fill(b, 0, p.Size, 0f); return b; }
        _m = parameters.Select(Zero).ToArray();
        _v = parameters.Select(Zero).ToArray();
    }

    public override void Step()
    {
        _step++;
        var cfg = _config with { LearningRate = LearningRate };
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
