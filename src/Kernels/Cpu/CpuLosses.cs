using System.Runtime.Intrinsics;

namespace LsKd.Kernels.Cpu;

/// <summary>Row kernels: softmax family and the fused losses. Each row (a few KiB) is read from memory once
/// and then revisited in L1, so the passes below cost one trip through DRAM per input and output.</summary>
public unsafe partial class CpuBackend
{
    [ThreadStatic] static float[]? t_rowScratch;

    static float* RowScratch(int cols, out float[] keepAlive)
    {
        var s = t_rowScratch;
        if (s == null || s.Length < cols) t_rowScratch = s = GC.AllocateArray<float>(Math.Max(cols, 3072), pinned: true);
        keepAlive = s;
        return (float*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref s[0]);
    }

    void Rows(int rows, int cols, Action<int, int> body) => _parallel.For(rows, (long)cols * 8, body);

    protected override void SoftmaxCore(DeviceBuffer<float> x, DeviceBuffer<float> y, int rows, int cols, float temperature, bool log)
    {
        float* xp = P(x), yp = P(y);
        Rows(rows, cols, (s, e) =>
        {
            for (int r = s; r < e; r++)
            {
                if (_use512) SoftmaxRow<V512>(xp + (long)r * cols, yp + (long)r * cols, cols, 1f / temperature, log);
                else SoftmaxRow<V256>(xp + (long)r * cols, yp + (long)r * cols, cols, 1f / temperature, log);
            }
        });
    }

    /// <summary>Lanes accumulate in float32 over blocks of this many elements, block sums in float64: keeps
    /// row sums over K = 32000 accurate to ~1e-7 relative at no measurable cost.</summary>
    const int SumBlock = 256;

    /// <summary>Writes e_k = exp((x_k - max) / T) to y (when y is not null) and returns their sum.</summary>
    static float ExpRow<TV>(float* x, float* y, int n, float invT, float max) where TV : struct, ISimd<TV>
    {
        int i = 0, w = TV.Count;
        var vi = TV.Splat(invT); var vm = TV.Splat(max);
        double sum = 0;
        while (i <= n - w)
        {
            int end = Math.Min(n - w, i + SumBlock - w);
            var acc = TV.Splat(0f);
            for (; i <= end; i += w)
            {
                var e = TV.Exp(TV.Mul(TV.Sub(TV.Load(x + i), vm), vi));
                if (y != null) TV.Store(e, y + i);
                acc = TV.Add(acc, e);
            }
            sum += TV.Sum(acc);
        }
        for (; i < n; i++) { float e = SimdMath.Exp((x[i] - max) * invT); if (y != null) y[i] = e; sum += e; }
        return (float)sum;
    }

    static void SoftmaxRow<TV>(float* x, float* y, int n, float invT, bool log) where TV : struct, ISimd<TV>
    {
        float max = RowMax<TV>(x, n);
        int i = 0, w = TV.Count;
        if (!log)
        {
            float inv = 1f / ExpRow<TV>(x, y, n, invT, max);
            var vinv = TV.Splat(inv);
            for (; i <= n - w; i += w) TV.Store(TV.Mul(TV.Load(y + i), vinv), y + i);
            for (; i < n; i++) y[i] *= inv;
        }
        else
        {
            float logSum = MathF.Log(ExpRow<TV>(x, null, n, invT, max));
            var vi = TV.Splat(invT); var vm = TV.Splat(max); var vl = TV.Splat(logSum);
            for (; i <= n - w; i += w) TV.Store(TV.Sub(TV.Mul(TV.Sub(TV.Load(x + i), vm), vi), vl), y + i);
            for (; i < n; i++) y[i] = (x[i] - max) * invT - logSum;
        }
    }

    protected override void SoftmaxBackwardCore(DeviceBuffer<float> y, DeviceBuffer<float> dy, DeviceBuffer<float> dx, int rows, int cols, float temperature, bool log, bool accumulate)
    {
        float* yp = P(y), gp = P(dy), dp = P(dx);
        float invT = 1f / temperature;
        Rows(rows, cols, (s, e) =>
        {
            for (int r = s; r < e; r++)
            {
                float* yr = yp + (long)r * cols, gr = gp + (long)r * cols, dr = dp + (long)r * cols;
                if (!log)
                {
                    // dx = (1/T) y (dy - <dy, y>)
                    float dot = 0f;
                    for (int k = 0; k < cols; k++) dot += gr[k] * yr[k];
                    for (int k = 0; k < cols; k++) { float g = invT * yr[k] * (gr[k] - dot); dr[k] = accumulate ? dr[k] + g : g; }
                }
                else
                {
                    // dx = (1/T) (dy - softmax * sum(dy)), softmax = exp(log-softmax)
                    float sum = 0f;
                    for (int k = 0; k < cols; k++) sum += gr[k];
                    for (int k = 0; k < cols; k++) { float g = invT * (gr[k] - MathF.Exp(yr[k]) * sum); dr[k] = accumulate ? dr[k] + g : g; }
                }
            }
        });
    }

    protected override void LabelSmoothingCrossEntropyCore(DeviceBuffer<float> logits, DeviceBuffer<int> labels, DeviceBuffer<float> loss, DeviceBuffer<float>? grad, int rows, int cols, float alpha, float gradScale, int ignoreLabel)
    {
        float* zp = P(logits), lp = P(loss), gp = grad == null ? null : P(grad);
        int* yp = P(labels);
        Rows(rows, cols, (s, e) =>
        {
            float* scratch = RowScratch(cols, out var keep);
            for (int r = s; r < e; r++)
            {
                float* g = gp == null ? null : gp + (long)r * cols;
                if (yp[r] == ignoreLabel) { IgnoredRow(lp + r, g, cols); continue; }
                lp[r] = _use512 ? LsRow<V512>(zp + (long)r * cols, yp[r], g, scratch, cols, alpha, gradScale)
                                : LsRow<V256>(zp + (long)r * cols, yp[r], g, scratch, cols, alpha, gradScale);
            }
            if (gp != null) StreamFence();
            GC.KeepAlive(keep);
        });
    }

    /// <summary>loss = -((1-a) logp_y + a/K sum_k logp_k); grad = scale (softmax - (1-a) onehot - a/K).
    /// The logits come from memory once (the max pass); the exponentials live in an L1 scratch row and the
    /// gradient is streamed out once, so the row costs one read and one write of DRAM.</summary>
    static float LsRow<TV>(float* z, int label, float* grad, float* scratch, int n, float alpha, float scale) where TV : struct, ISimd<TV>
    {
        float max = RowMax<TV>(z, n);
        float sumZ = RowSum<TV>(z, n);
        float sum = ExpRow<TV>(z, grad == null ? null : scratch, n, 1f, max);
        float logSum = MathF.Log(sum);
        float lse = max + logSum;
        float loss = -((1f - alpha) * (z[label] - lse) + alpha / n * (sumZ - n * lse));
        if (grad != null)
        {
            // The one-hot term is folded into the scratch row so the streamed pass has no special case.
            scratch[label] -= (1f - alpha) * sum;
            StreamCombine<TV>(grad, n, scratch, scale / sum, null, 0f, scale * alpha / n);
        }
        return loss;
    }

    /// <summary>grad = a_k * pa + b_k * pb - off (pb may be null), written with non-temporal stores in the
    /// aligned middle of the row and plain stores at its ends.</summary>
    static void StreamCombine<TV>(float* grad, int n, float* a, float pa, float* b, float pb, float off) where TV : struct, ISimd<TV>
    {
        int w = TV.Count;
        int head = (int)((((nint)w * 4 - ((nint)grad & (w * 4 - 1))) & (w * 4 - 1)) / 4);
        head = Math.Min(head, n);
        int i = 0;
        var va = TV.Splat(pa); var vb = TV.Splat(pb); var vo = TV.Splat(off);
        if (b == null)
        {
            for (; i < head; i++) grad[i] = a[i] * pa - off;
            for (; i <= n - w; i += w) TV.StoreStream(TV.Sub(TV.Mul(TV.Load(a + i), va), vo), grad + i);
            for (; i < n; i++) grad[i] = a[i] * pa - off;
        }
        else
        {
            for (; i < head; i++) grad[i] = a[i] * pa + b[i] * pb - off;
            for (; i <= n - w; i += w) TV.StoreStream(TV.Sub(TV.Fma(TV.Load(a + i), va, TV.Mul(TV.Load(b + i), vb)), vo), grad + i);
            for (; i < n; i++) grad[i] = a[i] * pa + b[i] * pb - off;
        }
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    static void Prefetch(float* p)
    {
        if (System.Runtime.Intrinsics.X86.Sse.IsSupported) System.Runtime.Intrinsics.X86.Sse.Prefetch0(p);
    }

    /// <summary>A padding row of a token-level loss: no loss, no gradient.</summary>
    static void IgnoredRow(float* loss, float* grad, int cols)
    {
        *loss = 0f;
        if (grad != null) new Span<float>(grad, cols).Clear();
    }

    /// <summary>Orders this thread's non-temporal stores before the pool's join, so readers see them.</summary>
    static void StreamFence()
    {
        if (System.Runtime.Intrinsics.X86.Sse.IsSupported) System.Runtime.Intrinsics.X86.Sse.StoreFence();
    }

    protected override void KdLossCore(DeviceBuffer<float> student, DeviceBuffer<float> teacher, DeviceBuffer<int> labels, DeviceBuffer<float> loss, DeviceBuffer<float>? grad, int rows, int cols, in KdConfig config, float gradScale, int ignoreLabel)
    {
        float* sp = P(student), tp = P(teacher), lp = P(loss), gp = grad == null ? null : P(grad);
        int* yp = P(labels);
        var cfg = config;
        Rows(rows, cols, (s, e) =>
        {
            float* scratch = RowScratch(3 * cols, out var keep);
            for (int r = s; r < e; r++)
            {
                long o = (long)r * cols;
                float* g = gp == null ? null : gp + o;
                if (yp[r] == ignoreLabel) { IgnoredRow(lp + r, g, cols); continue; }
                // The next row is prefetched while this one is computed, so its max pass finds it in cache.
                long next = r + 1 < e ? o + cols : o;
                lp[r] = _use512 ? KdRow<V512>(sp + o, tp + o, sp + next, tp + next, yp[r], g, scratch, cols, cfg, gradScale)
                                : KdRow<V256>(sp + o, tp + o, sp + next, tp + next, yp[r], g, scratch, cols, cfg, gradScale);
            }
            if (gp != null) StreamFence();
            GC.KeepAlive(keep);
        });
    }

    /// <summary>One row of the KD loss. With a = (z_t - max_t)/T and b = (z_s - max_s)/T:
    /// KL = sum_k p_t (a - b) - log S_t + log S_s, where p_t = e^a / S_t; gradient
    /// beta T (softmax(z_s/T) - softmax(z_t/T)) + (1 - beta)(softmax(z_s) - y_ls), times scale.
    /// Inputs are read from memory once (the max passes); e^b, e^a and the hard-term e^(z_s - max_s) are
    /// kept in three L1 scratch rows, and the gradient is streamed out in one final pass.</summary>
    static float KdRow<TV>(float* zs, float* zt, float* nextS, float* nextT, int label, float* grad, float* scratch, int n, KdConfig c, float scale) where TV : struct, ISimd<TV>
    {
        float invT = 1f / c.Temperature, beta = c.Beta, T = c.Temperature;
        int w = TV.Count, i;
        bool soft = beta > 0f, hard = beta < 1f, keep = grad != null;
        float ms = RowMax<TV>(zs, n), mt = soft ? RowMax<TV>(zt, n) : 0f;
        float* es = scratch, et = scratch + n, eh = scratch + 2 * n;
        float softLoss = 0f, ss = 1f, st = 1f;
        if (soft)
        {
            // (z - m) / T as one FMA, z / T - m / T: the rounding of m / T shifts a whole row by the same
            // amount, which cancels in the softmax and in the KL divergence.
            var vi = TV.Splat(invT); var vms = TV.Splat(-ms * invT); var vmt = TV.Splat(-mt * invT);
            double dS = 0, dT = 0, dX = 0;
            i = 0;
            while (i <= n - w)
            {
                int end = Math.Min(n - w, i + SumBlock - w);
                var accS = TV.Splat(0f); var accT = TV.Splat(0f); var accX = TV.Splat(0f);
                for (; i <= end; i += w)
                {
                    Prefetch(nextS + i); Prefetch(nextT + i);
                    var b = TV.Fma(TV.Load(zs + i), vi, vms);
                    var a = TV.Fma(TV.Load(zt + i), vi, vmt);
                    var eb = TV.Exp(b); var ea = TV.Exp(a);
                    if (keep) { TV.Store(eb, es + i); TV.Store(ea, et + i); }
                    accS = TV.Add(accS, eb); accT = TV.Add(accT, ea);
                    accX = TV.Fma(ea, TV.Sub(a, b), accX);
                }
                dS += TV.Sum(accS); dT += TV.Sum(accT); dX += TV.Sum(accX);
            }
            for (; i < n; i++)
            {
                float b = MathF.FusedMultiplyAdd(zs[i], invT, -ms * invT), a = MathF.FusedMultiplyAdd(zt[i], invT, -mt * invT);
                float eb = SimdMath.Exp(b), ea = SimdMath.Exp(a);
                if (keep) { es[i] = eb; et[i] = ea; }
                dS += eb; dT += ea; dX += ea * (a - b);
            }
            ss = (float)dS; st = (float)dT;
            // KL = sum p_t (a - b) + log(S_s / S_t), in float64 so that T^2 does not amplify rounding.
            double klD = dX / dT + Math.Log(dS / dT);
            softLoss = (float)(beta * (double)T * T * Math.Max(klD, 0));
        }

        float hardLoss = 0f, sh = 1f;
        if (hard)
        {
            // Cross-entropy with label smoothing at T = 1 on the student logits.
            float sumZ = RowSum<TV>(zs, n);
            sh = ExpRow<TV>(zs, keep ? eh : null, n, 1f, ms);
            float lse = ms + MathF.Log(sh);
            hardLoss = (1f - beta) * -((1f - c.Alpha) * (zs[label] - lse) + c.Alpha / n * (sumZ - n * lse));
        }

        if (keep)
        {
            float cs = scale * beta * T / ss, ct = scale * beta * T / st;
            float ch = scale * (1f - beta) / sh, off = scale * (1f - beta) * c.Alpha / n;
            if (soft && hard)
            {
                // Fold the hard term into the student row: es * cs + eh * ch == (es + eh * ch / cs) * cs.
                float r = ch / cs;
                eh[label] -= (1f - c.Alpha) * sh;
                var vr = TV.Splat(r);
                for (i = 0; i <= n - w; i += w) TV.Store(TV.Fma(TV.Load(eh + i), vr, TV.Load(es + i)), es + i);
                for (; i < n; i++) es[i] = MathF.FusedMultiplyAdd(eh[i], r, es[i]);
            }
            if (soft) StreamCombine<TV>(grad, n, es, cs, et, -ct, hard ? off : 0f);
            else
            {
                eh[label] -= (1f - c.Alpha) * sh;
                StreamCombine<TV>(grad, n, eh, ch, null, 0f, off);
            }
        }
        return softLoss + hardLoss;
    }

    protected override void EntropyCore(DeviceBuffer<float> logits, DeviceBuffer<float> entropy, int rows, int cols, float temperature)
    {
        float* zp = P(logits), hp = P(entropy);
        float invT = 1f / temperature;
        Rows(rows, cols, (s, e) =>
        {
            for (int r = s; r < e; r++)
                hp[r] = _use512 ? EntropyRow<V512>(zp + (long)r * cols, cols, invT) : EntropyRow<V256>(zp + (long)r * cols, cols, invT);
        });
    }

    /// <summary>H = log S - sum_k e^a a / S with a = (z - max)/T: computed from log-softmax, never log(p).</summary>
    static float EntropyRow<TV>(float* z, int n, float invT) where TV : struct, ISimd<TV>
    {
        float max = RowMax<TV>(z, n);
        int i = 0, w = TV.Count;
        var vi = TV.Splat(invT); var vm = TV.Splat(max);
        double s = 0, x = 0;
        while (i <= n - w)
        {
            int end = Math.Min(n - w, i + SumBlock - w);
            var accS = TV.Splat(0f); var accX = TV.Splat(0f);
            for (; i <= end; i += w)
            {
                var a = TV.Mul(TV.Sub(TV.Load(z + i), vm), vi);
                var e = TV.Exp(a);
                accS = TV.Add(accS, e); accX = TV.Fma(e, a, accX);
            }
            s += TV.Sum(accS); x += TV.Sum(accX);
        }
        for (; i < n; i++) { float a = (z[i] - max) * invT, e = SimdMath.Exp(a); s += e; x += e * a; }
        return (float)Math.Max(Math.Log(s) - x / s, 0);
    }

    protected override void TopKCorrectCore(DeviceBuffer<float> logits, DeviceBuffer<int> labels, DeviceBuffer<int> correct, int rows, int cols, int k)
    {
        float* zp = P(logits);
        int* yp = P(labels), cp = P(correct);
        Rows(rows, cols, (s, e) =>
        {
            for (int r = s; r < e; r++)
            {
                float* z = zp + (long)r * cols;
                int y = yp[r];
                float zy = z[y];
                // Rank of the true class: logits above it, plus ties at a lower index (first index wins ties).
                int rank = CountCompare(z, cols, zy, greater: true) + CountCompare(z, y, zy, greater: false);
                cp[r] = rank < k ? 1 : 0;
            }
        });
    }

    /// <summary>How many of x[0..n) are greater than (or equal to) v, eight lanes at a time.</summary>
    static int CountCompare(float* x, int n, float v, bool greater)
    {
        int i = 0, count = 0;
        var vv = Vector256.Create(v);
        for (; i <= n - 8; i += 8)
        {
            var xi = Vector256.Load(x + i);
            var mask = greater ? Vector256.GreaterThan(xi, vv) : Vector256.Equals(xi, vv);
            count += System.Numerics.BitOperations.PopCount(mask.ExtractMostSignificantBits());
        }
        for (; i < n; i++) if (greater ? x[i] > v : x[i] == v) count++;
        return count;
    }

    protected override void ConfusionMatrixCore(DeviceBuffer<int> predictions, DeviceBuffer<int> labels, DeviceBuffer<int> matrix, int count, int classes)
    {
        int* pp = P(predictions), yp = P(labels), mp = P(matrix);
        for (int i = 0; i < count; i++) mp[yp[i] * classes + pp[i]]++;
    }
}
