namespace LsKd.Kernels.Cpu;

/// <summary>Batch norm on the CPU, parallel over images (one memory stream): float64 two-pass statistics (mean, then squared
/// deviations) over vectorised rows, an output pass y = x a + b that can apply ReLU or ReLU6, and a backward that
/// masks dy inside its own two passes by recomputing x a + b (one FMA on the x it reads anyway) instead of reading y. Rows are generic over the SIMD width.</summary>
public unsafe partial class CpuBackend
{
    protected override void BatchNormCore(in BatchNormSpec s, DeviceBuffer<float> x, DeviceBuffer<float> gamma, DeviceBuffer<float> beta, DeviceBuffer<float> y,
        DeviceBuffer<float> saveMean, DeviceBuffer<float> saveInvStd, DeviceBuffer<float> runningMean, DeviceBuffer<float> runningVar, bool training,
        DeviceBuffer<float>? channelStats)
    {
        float* sp = channelStats == null ? null : P(channelStats);
        if (_use512) BatchNormForward<V512>(s, P(x), P(gamma), P(beta), P(y), P(saveMean), P(saveInvStd), P(runningMean), P(runningVar), training, sp, null);
        else BatchNormForward<V256>(s, P(x), P(gamma), P(beta), P(y), P(saveMean), P(saveInvStd), P(runningMean), P(runningVar), training, sp, null);
    }

    /// <summary>The fused residual end: the output pass forms relu(fma(x, a, b) + r) (the same float operations as a
    /// batch norm followed by AddRelu) without writing the normalised tensor.</summary>
    protected override void BatchNormAddReluCore(in BatchNormSpec s, DeviceBuffer<float> x, DeviceBuffer<float> gamma, DeviceBuffer<float> beta, DeviceBuffer<float> residual,
        DeviceBuffer<float> y, DeviceBuffer<float> saveMean, DeviceBuffer<float> saveInvStd, DeviceBuffer<float> runningMean, DeviceBuffer<float> runningVar,
        bool training, DeviceBuffer<float>? channelStats)
    {
        float* sp = channelStats == null ? null : P(channelStats);
        if (_use512) BatchNormForward<V512>(s, P(x), P(gamma), P(beta), P(y), P(saveMean), P(saveInvStd), P(runningMean), P(runningVar), training, sp, P(residual));
        else BatchNormForward<V256>(s, P(x), P(gamma), P(beta), P(y), P(saveMean), P(saveInvStd), P(runningMean), P(runningVar), training, sp, P(residual));
    }

    /// <summary>With stats (training only), the batch mean and variance come from the convolution that wrote x.</summary>
    /// <remarks>Every pass runs over images (the rows of consecutive channels are adjacent in NCHW), so memory is read
    /// as one stream: split over channels, a 7x7 plane's 128 rows of 196 bytes lie 12.5 KB apart and each row waited
    /// on memory. Row results go to an [N, C] table and are summed per channel in image order, the same float64 sums
    /// as per channel, whatever the thread count.</remarks>
    void BatchNormForward<TV>(BatchNormSpec spec, float* xp, float* gp, float* bp, float* yp, float* mp, float* ip, float* rmp, float* rvp, bool training, float* stats,
        float* residual)
        where TV : struct, ISimd<TV>
    {
        int n = spec.N, ch = spec.C, sp = spec.Spatial;
        long m = (long)n * sp, imageCost = (long)ch * sp;
        if (training && stats == null)
        {
            // Two passes in float64 (mean, then squared deviations): exact enough for any activation scale.
            double* rows = BatchNormRows(n * ch);
            _parallel.For(n, imageCost, (n0, n1) =>
            {
                for (int i = n0; i < n1; i++)
                    for (int c = 0; c < ch; c++) rows[(long)i * ch + c] = RowSum<TV>(xp + ((long)i * ch + c) * sp, sp);
            });
            for (int c = 0; c < ch; c++)
            {
                double sum = 0;
                for (int i = 0; i < n; i++) sum += rows[(long)i * ch + c];
                mp[c] = (float)(sum / m);
            }
            _parallel.For(n, imageCost, (n0, n1) =>
            {
                for (int i = n0; i < n1; i++)
                    for (int c = 0; c < ch; c++) rows[(long)i * ch + c] = SquaredDeviation<TV>(xp + ((long)i * ch + c) * sp, sp, mp[c]);
            });
            for (int c = 0; c < ch; c++)
            {
                double sq = 0;
                for (int i = 0; i < n; i++) sq += rows[(long)i * ch + c];
                ip[c] = (float)(1 / Math.Sqrt(sq / m + spec.Epsilon));
                rmp[c] = (1 - spec.Momentum) * rmp[c] + spec.Momentum * mp[c];
                rvp[c] = (1 - spec.Momentum) * rvp[c] + spec.Momentum * (float)(sq / (m - 1));
            }
        }
        else
            for (int c = 0; c < ch; c++)
            {
                float mean, invStd;
                if (training)
                {
                    double mu = stats![c], var = stats[ch + c];
                    mean = (float)mu; invStd = (float)(1 / Math.Sqrt(var + spec.Epsilon));
                    rmp[c] = (1 - spec.Momentum) * rmp[c] + spec.Momentum * mean;
                    rvp[c] = (1 - spec.Momentum) * rvp[c] + spec.Momentum * (float)(var * m / (m - 1));
                }
                else { mean = rmp[c]; invStd = 1f / MathF.Sqrt(rvp[c] + spec.Epsilon); }
                mp[c] = mean; ip[c] = invStd;
            }
        // y = x * a + b with a = gamma * invStd, b = beta - mean * a.
        float cap = spec.Activation == NormActivation.None ? float.NaN : spec.Cap;
        _parallel.For(n, imageCost, (n0, n1) =>
        {
            for (int i = n0; i < n1; i++)
                for (int c = 0; c < ch; c++)
                {
                    float a = gp[c] * ip[c], b = bp[c] - mp[c] * a;
                    long o = ((long)i * ch + c) * sp;
                    if (residual != null) ScaleShiftAddRelu<TV>(xp + o, residual + o, yp + o, a, b, sp);
                    else ScaleShift<TV>(xp + o, yp + o, a, b, sp, cap);
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

    /// <summary>y = max(fma(x, a, b) + r, 0).</summary>
    static void ScaleShiftAddRelu<TV>(float* x, float* r, float* y, float a, float b, int n) where TV : struct, ISimd<TV>
    {
        int i = 0;
        var va = TV.Splat(a); var vb = TV.Splat(b);
        for (; i <= n - TV.Count; i += TV.Count) TV.Store(TV.Max(TV.Add(TV.Fma(TV.Load(x + i), va, vb), TV.Load(r + i)), default), y + i);
        for (; i < n; i++) { float v = MathF.FusedMultiplyAdd(x[i], a, b) + r[i]; y[i] = v > 0f ? v : 0f; }
    }

    /// <summary>(sum g, sum g (x - mean)) over one row for g = dy where y &gt; 0 (the add-relu mask), writing (or
    /// adding) g into dr as it goes.</summary>
    static (double, double) ResidualGradSums<TV>(float* dy, float* y, float* x, float* dr, int n, float mean, bool accumulate) where TV : struct, ISimd<TV>
    {
        int i = 0;
        TV sg = default, sx = default; var vm = TV.Splat(mean);
        for (; i <= n - TV.Count; i += TV.Count)
        {
            var gv = TV.SelectGreater(TV.Load(y + i), default, TV.Load(dy + i), default);
            TV.Store(accumulate ? TV.Add(TV.Load(dr + i), gv) : gv, dr + i);
            sg = TV.Add(sg, gv);
            sx = TV.Fma(gv, TV.Sub(TV.Load(x + i), vm), sx);
        }
        double a = TV.Sum(sg), b = TV.Sum(sx);
        for (; i < n; i++)
        {
            float gi = y[i] > 0f ? dy[i] : 0f;
            dr[i] = accumulate ? dr[i] + gi : gi;
            a += gi; b += gi * (x[i] - mean);
        }
        return (a, b);
    }

    /// <summary>dx (+)= g a1 + x a2 + a3 for g = dy where y &gt; 0 (when dr was added to, so it does not hold g alone).</summary>
    static void ResidualGradRow<TV>(float* dy, float* y, float* x, float* dx, int n, float a1, float a2, float a3, bool accumulate) where TV : struct, ISimd<TV>
    {
        int i = 0;
        var v1 = TV.Splat(a1); var v2 = TV.Splat(a2); var v3 = TV.Splat(a3);
        for (; i <= n - TV.Count; i += TV.Count)
        {
            var gv = TV.SelectGreater(TV.Load(y + i), default, TV.Load(dy + i), default);
            var v = TV.Fma(gv, v1, TV.Fma(TV.Load(x + i), v2, v3));
            if (accumulate) v = TV.Add(v, TV.Load(dx + i));
            TV.Store(v, dx + i);
        }
        for (; i < n; i++)
        {
            float gi = y[i] > 0f ? dy[i] : 0f;
            float v = gi * a1 + x[i] * a2 + a3;
            dx[i] = accumulate ? dx[i] + v : v;
        }
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
        if (_use512) BatchNormBackward<V512>(s, P(x), P(dy), P(gamma), bp, P(saveMean), P(saveInvStd), P(dx), P(dGamma), P(dBeta), training, accumulate, null, null, false);
        else BatchNormBackward<V256>(s, P(x), P(dy), P(gamma), bp, P(saveMean), P(saveInvStd), P(dx), P(dGamma), P(dBeta), training, accumulate, null, null, false);
    }

    /// <summary>The fused residual backward: the first pass masks dy by y &gt; 0 and writes the masked gradient into
    /// dResidual while it sums; the second reads it back from there (when dResidual was written, not added to)
    /// instead of dy and y. Four tensor passes fewer than an add-relu backward followed by a batch-norm backward.</summary>
    protected override void BatchNormAddReluBackwardCore(in BatchNormSpec s, DeviceBuffer<float> x, DeviceBuffer<float> y, DeviceBuffer<float> dy, DeviceBuffer<float> gamma,
        DeviceBuffer<float> saveMean, DeviceBuffer<float> saveInvStd, DeviceBuffer<float> dx, DeviceBuffer<float> dResidual, DeviceBuffer<float> dGamma,
        DeviceBuffer<float> dBeta, bool training, bool accumulateDx, bool accumulateResidual)
    {
        if (_use512) BatchNormBackward<V512>(s, P(x), P(dy), P(gamma), null, P(saveMean), P(saveInvStd), P(dx), P(dGamma), P(dBeta), training, accumulateDx, P(y), P(dResidual), accumulateResidual);
        else BatchNormBackward<V256>(s, P(x), P(dy), P(gamma), null, P(saveMean), P(saveInvStd), P(dx), P(dGamma), P(dBeta), training, accumulateDx, P(y), P(dResidual), accumulateResidual);
    }

    /// <summary>Backward over images like the forward: per-row sums into an [N, C, 2] table, summed per channel in
    /// image order, then dx row by row.</summary>
    void BatchNormBackward<TV>(BatchNormSpec spec, float* xp, float* gp, float* gam, float* betap, float* mp, float* ip, float* dxp, float* dgp, float* dbp,
        bool training, bool accumulate, float* residualY, float* dResidual, bool accumulateResidual) where TV : struct, ISimd<TV>
    {
        bool masked = spec.Activation != NormActivation.None;
        float cap = spec.Cap;
        int n = spec.N, ch = spec.C, sp = spec.Spatial;
        long m = (long)n * sp, imageCost = (long)ch * sp * 2;
        // The forward's y = fma(x, sa, sb), clamped: its mask is recomputed from x (see BatchNormForward).
        if (_batchNormCoef.Length < 5 * ch) _batchNormCoef = GC.AllocateArray<float>(5 * ch, pinned: true);
        float* coef;   // sa, sb, a1, a2, a3 per channel
        fixed (float* cp = _batchNormCoef) coef = cp;   // pinned: the address stays valid
        for (int c = 0; c < ch; c++)
        {
            coef[c] = gam[c] * ip[c];
            coef[ch + c] = masked ? betap[c] - mp[c] * coef[c] : 0f;
        }
        double* rows = BatchNormRows(2 * n * ch);
        _parallel.For(n, imageCost, (n0, n1) =>
        {
            for (int i = n0; i < n1; i++)
                for (int c = 0; c < ch; c++)
                {
                    long o = ((long)i * ch + c) * sp;
                    var (a, b) = residualY != null
                        ? ResidualGradSums<TV>(gp + o, residualY + o, xp + o, dResidual + o, sp, mp[c], accumulateResidual)
                        : GradSums<TV>(gp + o, xp + o, sp, mp[c], coef[c], coef[ch + c], cap, masked);
                    rows[2 * ((long)i * ch + c)] = a; rows[2 * ((long)i * ch + c) + 1] = b;
                }
        });
        for (int c = 0; c < ch; c++)
        {
            // sum(dy) and sum(dy * (x - mean)); xhat = (x - mean) invStd.
            double sdy = 0, sdx = 0;
            for (int i = 0; i < n; i++) { sdy += rows[2 * ((long)i * ch + c)]; sdx += rows[2 * ((long)i * ch + c) + 1]; }
            float mean = mp[c], invStd = ip[c];
            dbp[c] = (float)sdy;
            dgp[c] = (float)(sdx * invStd);
            // Training: dx = gamma invStd (dy - mean(dy) - xhat mean(dy xhat)); evaluation: dx = gamma invStd dy.
            float k = gam[c] * invStd;
            float mdy = training ? (float)(sdy / m) : 0f;
            float cx = training ? (float)(sdx / m) * invStd * invStd : 0f;
            // dx = k dy - k cx x + k (cx mean - mdy): one FMA pair per element.
            coef[2 * ch + c] = k; coef[3 * ch + c] = -k * cx; coef[4 * ch + c] = k * (cx * mean - mdy);
        }
        _parallel.For(n, imageCost, (n0, n1) =>
        {
            for (int i = n0; i < n1; i++)
                for (int c = 0; c < ch; c++)
                {
                    long o = ((long)i * ch + c) * sp;
                    if (residualY != null && accumulateResidual)
                        ResidualGradRow<TV>(gp + o, residualY + o, xp + o, dxp + o, sp, coef[2 * ch + c], coef[3 * ch + c], coef[4 * ch + c], accumulate);
                    else if (residualY != null)   // dResidual holds the masked gradient
                        BatchNormGradRow<TV>(dResidual + o, xp + o, dxp + o, sp, coef[2 * ch + c], coef[3 * ch + c], coef[4 * ch + c], 0f, 0f, cap, false, accumulate);
                    else
                        BatchNormGradRow<TV>(gp + o, xp + o, dxp + o, sp, coef[2 * ch + c], coef[3 * ch + c], coef[4 * ch + c], coef[c], coef[ch + c], cap, masked, accumulate);
                }
        });
    }

    double[] _batchNormRows = [];
    float[] _batchNormCoef = [];

    /// <summary>Pinned per-row table of one batch-norm pass.</summary>
    double* BatchNormRows(int length)
    {
        if (_batchNormRows.Length < length) _batchNormRows = GC.AllocateArray<double>(length, pinned: true);
        fixed (double* p = _batchNormRows) return p;   // pinned: the address stays valid
    }
}
