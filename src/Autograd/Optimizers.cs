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
