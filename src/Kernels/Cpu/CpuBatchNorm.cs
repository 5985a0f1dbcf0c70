namespace LsKd.Kernels.Cpu;

/// <summary>Batch norm on the CPU, parallel over channels: float64 two-pass statistics (mean, then squared
/// deviations) over vectorised rows, an output pass y = x a + b that can apply ReLU or ReLU6, and a backward that
/// masks dy inside its own two passes by recomputing x a + b (one FMA on the x it reads anyway) instead of reading y. Rows are generic over the SIMD width.</summary>
public unsafe partial class CpuBackend
{
    protected override void BatchNormCore(in BatchNormSpec s, DeviceBuffer<float> x, DeviceBuffer<float> gamma, DeviceBuffer<float> beta, DeviceBuffer<float> y,
        DeviceBuffer<float> saveMean, DeviceBuffer<float> saveInvStd, DeviceBuffer<float> runningMean, DeviceBuffer<float> runningVar, bool training,
        DeviceBuffer<float>? channelStats)
    {
        float* sp = channelStats == null ? null : P(channelStats);
        if (_use512) BatchNormForward<V512>(s, P(x), P(gamma), P(beta), P(y), P(saveMean), P(saveInvStd), P(runningMean), P(runningVar), training, sp);
        else BatchNormForward<V256>(s, P(x), P(gamma), P(beta), P(y), P(saveMean), P(saveInvStd), P(runningMean), P(runningVar), training, sp);
    }

    /// <summary>With stats (training only), the batch mean and variance come from the convolution that wrote x.</summary>
    void BatchNormForward<TV>(BatchNormSpec spec, float* xp, float* gp, float* bp, float* yp, float* mp, float* ip, float* rmp, float* rvp, bool training, float* stats)
        where TV : struct, ISimd<TV>
    {
        long m = (long)spec.N * spec.Spatial;
        _parallel.For(spec.C, m * 4, (c0, c1) =>
        {
            for (int c = c0; c < c1; c++)
            {
                float mean, invStd;
                if (training && stats != null)
                {
                    double mu = stats[c], var = stats[spec.C + c];
                    mean = (float)mu; invStd = (float)(1 / Math.Sqrt(var + spec.Epsilon));
                    rmp[c] = (1 - spec.Momentum) * rmp[c] + spec.Momentum * mean;
                    rvp[c] = (1 - spec.Momentum) * rvp[c] + spec.Momentum * (float)(var * m / (m - 1));
                }
                else if (training)
                {
                    // Two passes in float64 (mean, then squared deviations): exact enough for any activation scale.
                    double sum = 0;
                    for (int n = 0; n < spec.N; n++) sum += RowSum<TV>(xp + ((long)n * spec.C + c) * spec.Spatial, spec.Spatial);
                    double mu = sum / m, sq = 0;
                    for (int n = 0; n < spec.N; n++) sq += SquaredDeviation<TV>(xp + ((long)n * spec.C + c) * spec.Spatial, spec.Spatial, (float)mu);
                    double var = sq / m;
                    mean = (float)mu; invStd = (float)(1 / Math.Sqrt(var + spec.Epsilon));
                    rmp[c] = (1 - spec.Momentum) * rmp[c] + spec.Momentum * mean;
                    rvp[c] = (1 - spec.Momentum) * rvp[c] + spec.Momentum * (float)(sq / (m - 1));
                }
                else { mean = rmp[c]; invStd = 1f / MathF.Sqrt(rvp[c] + spec.Epsilon); }
                mp[c] = mean; ip[c] = invStd;
                // y = x * a + b with a = gamma * invStd, b = beta - mean * a.
                float a = gp[c] * invStd, b = bp[c] - mean * a;
                float cap = spec.Activation == NormActivation.None ? float.NaN : spec.Cap;
                for (int n = 0; n < spec.N; n++)
                {
                    long o = ((long)n * spec.C + c) * spec.Spatial;
                    ScaleShift<TV>(xp + o, yp + o, a, b, spec.Spatial, cap);
                }
            }
        });
    }

    /// <summary>sum (x - mu)^2 over one row.</summary>
    static double SquaredDeviation<TV>(float* x, int n, float mu) where TV : struct, ISimd<TV>
    {
        int i = 0;
        TV acc = default; var vm = TV.Splat(mu);
        for (; i <= n - TV.Count; i += TV.Count) { var d = TV.Sub(TV.Load(x + i), vm); acc = TV.Fma(d, d, acc); }
        double s = TV.Sum(acc);
        for (; i < n; i++) { double d = x[i] - mu; s += d * d; }
        return s;
    }

    /// <summary>y = x a + b, then clamped to [0, cap] unless cap is NaN (no activation): ReLU is cap = infinity.</summary>
    static void ScaleShift<TV>(float* x, float* y, float a, float b, int n, float cap) where TV : struct, ISimd<TV>
    {
        int i = 0;
        var va = TV.Splat(a); var vb = TV.Splat(b);
        if (float.IsNaN(cap))
        {
            for (; i <= n - TV.Count; i += TV.Count) TV.Store(TV.Fma(TV.Load(x + i), va, vb), y + i);
            for (; i < n; i++) y[i] = MathF.FusedMultiplyAdd(x[i], a, b);
            return;
        }
        var vcap = TV.Splat(cap);
        for (; i <= n - TV.Count; i += TV.Count) TV.Store(TV.Min(TV.Max(TV.Fma(TV.Load(x + i), va, vb), default), vcap), y + i);
        for (; i < n; i++) y[i] = Math.Min(Math.Max(MathF.FusedMultiplyAdd(x[i], a, b), 0f), cap);
    }

    /// <summary>dy where the fused activation passed its input (0 &lt; z &lt; cap for the pre-activation z), else 0.</summary>
    static TV Masked<TV>(TV g, TV z, TV cap) where TV : struct, ISimd<TV> =>
        TV.SelectGreater(cap, z, TV.SelectGreater(z, default, g, default), default);

    /// <summary>Whether the fused activation passed x: its pre-activation fma(x, a, b), formed as <see cref="ScaleShift{TV}"/> forms it.</summary>
    static bool Passed(float x, float a, float b, float cap) { float z = MathF.FusedMultiplyAdd(x, a, b); return z > 0f && z < cap; }

    /// <summary>(sum g, sum g (x - mean)) over one row; with masked, g is first masked where the forward's activation
    /// clamped fma(x, sa, sb) (sa, sb: the forward's scale and shift).</summary>
    static (double, double) GradSums<TV>(float* g, float* x, int n, float mean, float sa, float sb, float cap, bool masked) where TV : struct, ISimd<TV>
    {
        int i = 0;
        TV sg = default, sx = default; var vm = TV.Splat(mean); var vcap = TV.Splat(cap); var va = TV.Splat(sa); var vb = TV.Splat(sb);
        for (; i <= n - TV.Count; i += TV.Count)
        {
            var gv = TV.Load(g + i); var xv = TV.Load(x + i);
            if (masked) gv = Masked(gv, TV.Fma(xv, va, vb), vcap);
            sg = TV.Add(sg, gv);
            sx = TV.Fma(gv, TV.Sub(xv, vm), sx);
        }
        double a = TV.Sum(sg), b = TV.Sum(sx);
        for (; i < n; i++)
        {
            float gi = !masked || Passed(x[i], sa, sb, cap) ? g[i] : 0f;
            a += gi; b += gi * (x[i] - mean);
        }
        return (a, b);
    }

    /// <summary>dx (+)= g a1 + x a2 + a3, g masked as in <see cref="GradSums{TV}"/>.</summary>
    static void BatchNormGradRow<TV>(float* g, float* x, float* dx, int n, float a1, float a2, float a3, float sa, float sb, float cap, bool masked, bool accumulate)
        where TV : struct, ISimd<TV>
    {
        int i = 0;
        var v1 = TV.Splat(a1); var v2 = TV.Splat(a2); var v3 = TV.Splat(a3); var vcap = TV.Splat(cap); var va = TV.Splat(sa); var vb = TV.Splat(sb);
        for (; i <= n - TV.Count; i += TV.Count)
        {
            var gv = TV.Load(g + i); var xv = TV.Load(x + i);
            if (masked) gv = Masked(gv, TV.Fma(xv, va, vb), vcap);
            var v = TV.Fma(gv, v1, TV.Fma(xv, v2, v3));
            if (accumulate) v = TV.Add(v, TV.Load(dx + i));
            TV.Store(v, dx + i);
        }
        for (; i < n; i++)
        {
            float gi = !masked || Passed(x[i], sa, sb, cap) ? g[i] : 0f;
            float v = gi * a1 + x[i] * a2 + a3;
            dx[i] = accumulate ? dx[i] + v : v;
        }
    }

    protected override void BatchNormBackwardCore(in BatchNormSpec s, DeviceBuffer<float> x, DeviceBuffer<float> dy, DeviceBuffer<float> gamma,
        DeviceBuffer<float> saveMean, DeviceBuffer<float> saveInvStd, DeviceBuffer<float> dx, DeviceBuffer<float> dGamma, DeviceBuffer<float> dBeta, bool training, bool accumulate,
        DeviceBuffer<float>? beta)
    {
        float* bp = beta == null ? null : P(beta);
        if (_use512) BatchNormBackward<V512>(s, P(x), P(dy), P(gamma), bp, P(saveMean), P(saveInvStd), P(dx), P(dGamma), P(dBeta), training, accumulate);
        else BatchNormBackward<V256>(s, P(x), P(dy), P(gamma), bp, P(saveMean), P(saveInvStd), P(dx), P(dGamma), P(dBeta), training, accumulate);
    }

    void BatchNormBackward<TV>(BatchNormSpec spec, float* xp, float* gp, float* gam, float* betap, float* mp, float* ip, float* dxp, float* dgp, float* dbp,
        bool training, bool accumulate) where TV : struct, ISimd<TV>
    {
        bool masked = spec.Activation != NormActivation.None;
        float cap = spec.Cap;
        long m = (long)spec.N * spec.Spatial;
        _parallel.For(spec.C, m * 6, (c0, c1) =>
        {
            for (int c = c0; c < c1; c++)
            {
                float mean = mp[c], invStd = ip[c];
                // The forward's y = fma(x, sa, sb), clamped: its mask is recomputed from x (see BatchNormForward).
                float sa = gam[c] * invStd, sb = masked ? betap[c] - mean * sa : 0f;
                // sum(dy) and sum(dy * (x - mean)); xhat = (x - mean) invStd.
                double sdy = 0, sdx = 0;
                for (int n = 0; n < spec.N; n++)
                {
                    long o = ((long)n * spec.C + c) * spec.Spatial;
                    var (a, b) = GradSums<TV>(gp + o, xp + o, spec.Spatial, mean, sa, sb, cap, masked);
                    sdy += a; sdx += b;
                }
                dbp[c] = (float)sdy;
                dgp[c] = (float)(sdx * invStd);
                // Training: dx = gamma invStd (dy - mean(dy) - xhat mean(dy xhat)); evaluation: dx = gamma invStd dy.
                float k = gam[c] * invStd;
                float mdy = training ? (float)(sdy / m) : 0f;
                float cx = training ? (float)(sdx / m) * invStd * invStd : 0f;
                // dx = k dy - k cx x + k (cx mean - mdy): one FMA pair per element.
                float a1 = k, a2 = -k * cx, a3 = k * (cx * mean - mdy);
                for (int n = 0; n < spec.N; n++)
                {
                    long o = ((long)n * spec.C + c) * spec.Spatial;
                    BatchNormGradRow<TV>(gp + o, xp + o, dxp + o, spec.Spatial, a1, a2, a3, sa, sb, cap, masked, accumulate);
                }
            }
        });
    }
}
