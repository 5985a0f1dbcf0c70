namespace LsKd.Kernels.Cpu;

/// <summary>Embeddings and layer norm on the CPU. Sums over tokens or rows (the embedding gradient, dGamma, dBeta) are
/// split by columns, never by rows, so each sum runs in row order on one thread: deterministic at any thread count.</summary>
public unsafe partial class CpuBackend
{
    protected override void EmbeddingCore(DeviceBuffer<float> table, DeviceBuffer<int> ids, DeviceBuffer<float> y, int count, int vocab, int dim)
    {
        float* tp = P(table), yp = P(y);
        int* ip = P(ids);
        _parallel.For(count, dim, (s, e) =>
        {
            for (int t = s; t < e; t++)
                new ReadOnlySpan<float>(tp + (long)ip[t] * dim, dim).CopyTo(new Span<float>(yp + (long)t * dim, dim));
        });
    }

    protected override void EmbeddingBackwardCore(DeviceBuffer<int> ids, DeviceBuffer<float> dy, DeviceBuffer<float> dTable, int count, int vocab, int dim, int paddingIndex, bool accumulate)
    {
        float* gp = P(dy), dp = P(dTable);
        int* ip = P(ids);
        if (!accumulate) new Span<float>(dp, vocab * dim).Clear();
        // Column blocks of 64: each thread adds its columns of every token, in token order.
        const int Block = 64;
        int blocks = (dim + Block - 1) / Block;
        _parallel.For(blocks, (long)count * Block, (s, e) =>
        {
            int c0 = s * Block, c1 = Math.Min(dim, e * Block);
            for (int t = 0; t < count; t++)
            {
                int id = ip[t];
                if (id == paddingIndex) continue;
                float* src = gp + (long)t * dim, dst = dp + (long)id * dim;
                if (_use512) AddInto<V512>(src + c0, dst + c0, c1 - c0); else AddInto<V256>(src + c0, dst + c0, c1 - c0);
            }
        });
    }

    static void AddInto<TV>(float* src, float* dst, int n) where TV : struct, ISimd<TV>
    {
        int i = 0, w = TV.Count;
        for (; i <= n - w; i += w) TV.Store(TV.Add(TV.Load(dst + i), TV.Load(src + i)), dst + i);
        for (; i < n; i++) dst[i] += src[i];
    }

    protected override void LayerNormCore(in LayerNormSpec spec, DeviceBuffer<float> x, DeviceBuffer<float>? residual, DeviceBuffer<float>? sum, DeviceBuffer<float> gamma,
        DeviceBuffer<float> beta, DeviceBuffer<float> y, DeviceBuffer<float> saveMean, DeviceBuffer<float> saveInvStd)
    {
        var s = spec;
        float* xp = P(x), rp = residual == null ? null : P(residual), sp = sum == null ? null : P(sum), gp = P(gamma), bp = P(beta), yp = P(y), mp = P(saveMean), ip = P(saveInvStd);
        _parallel.For(s.Rows, (long)s.Dim * 6, (start, end) =>
        {
            for (int r = start; r < end; r++)
            {
                long o = (long)r * s.Dim;
                if (_use512) LayerNormRow<V512>(xp + o, rp == null ? null : rp + o, sp == null ? null : sp + o, gp, bp, yp + o, s.Dim, s.Epsilon, out mp[r], out ip[r]);
                else LayerNormRow<V256>(xp + o, rp == null ? null : rp + o, sp == null ? null : sp + o, gp, bp, yp + o, s.Dim, s.Epsilon, out mp[r], out ip[r]);
            }
        });
    }

    /// <summary>One row: the residual sum (when given) is formed and written in the first pass, the mean and the
    /// variance about it in two passes over the row (which stays in L1), then the normalised output.</summary>
    static void LayerNormRow<TV>(float* x, float* r, float* sum, float* gamma, float* beta, float* y, int n, float eps, out float mean, out float invStd) where TV : struct, ISimd<TV>
    {
        int w = TV.Count;
        float* src = x;
        if (r != null)
        {
            int j = 0;
            for (; j <= n - w; j += w) TV.Store(TV.Add(TV.Load(x + j), TV.Load(r + j)), sum + j);
            for (; j < n; j++) sum[j] = x[j] + r[j];
            src = sum;
        }
        float m = RowSum<TV>(src, n) / n;
        var vm = TV.Splat(m);
        var acc = TV.Splat(0f);
        int i = 0;
        for (; i <= n - w; i += w) { var dlt = TV.Sub(TV.Load(src + i), vm); acc = TV.Fma(dlt, dlt, acc); }
        float v = TV.Sum(acc);
        for (; i < n; i++) { float dlt = src[i] - m; v += dlt * dlt; }
        float inv = 1f / MathF.Sqrt(v / n + eps);
        var vi = TV.Splat(inv);
        i = 0;
        for (; i <= n - w; i += w) TV.Store(TV.Fma(TV.Mul(TV.Sub(TV.Load(src + i), vm), vi), TV.Load(gamma + i), TV.Load(beta + i)), y + i);
        for (; i < n; i++) y[i] = (src[i] - m) * inv * gamma[i] + beta[i];
        mean = m; invStd = inv;
    }

    protected override void LayerNormBackwardCore(in LayerNormSpec spec, DeviceBuffer<float> x, DeviceBuffer<float> dy, DeviceBuffer<float> gamma, DeviceBuffer<float> saveMean,
        DeviceBuffer<float> saveInvStd, DeviceBuffer<float> dx, DeviceBuffer<float> dGamma, DeviceBuffer<float> dBeta, bool accumulate)
    {
        var s = spec;
        float* xp = P(x), gp = P(dy), wp = P(gamma), mp = P(saveMean), ip = P(saveInvStd), dxp = P(dx), dgp = P(dGamma), dbp = P(dBeta);
        _parallel.For(s.Rows, (long)s.Dim * 8, (start, end) =>
        {
            for (int r = start; r < end; r++)
            {
                long o = (long)r * s.Dim;
                if (_use512) LayerNormBackwardRow<V512>(xp + o, gp + o, wp, mp[r], ip[r], dxp + o, s.Dim, accumulate);
                else LayerNormBackwardRow<V256>(xp + o, gp + o, wp, mp[r], ip[r], dxp + o, s.Dim, accumulate);
            }
        });
        // dGamma and dBeta: column blocks, each summed over the rows in order.
        const int Block = 64;
        int blocks = (s.Dim + Block - 1) / Block;
        _parallel.For(blocks, (long)s.Rows * Block * 2, (bs, be) =>
        {
            int c0 = bs * Block, c1 = Math.Min(s.Dim, be * Block);
            for (int c = c0; c < c1; c++) { dgp[c] = 0f; dbp[c] = 0f; }
            for (int r = 0; r < s.Rows; r++)
            {
                float* xr = xp + (long)r * s.Dim, gr = gp + (long)r * s.Dim;
                float m = mp[r], inv = ip[r];
                for (int c = c0; c < c1; c++) { dgp[c] += gr[c] * (xr[c] - m) * inv; dbp[c] += gr[c]; }
            }
        });
    }

    /// <summary>dx = invStd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * gamma.</summary>
    static void LayerNormBackwardRow<TV>(float* x, float* dy, float* gamma, float m, float inv, float* dx, int n, bool accumulate) where TV : struct, ISimd<TV>
    {
        int w = TV.Count, i = 0;
        var vm = TV.Splat(m); var vi = TV.Splat(inv);
        TV sa = TV.Splat(0f), sb = sa;
        for (; i <= n - w; i += w)
        {
            var g = TV.Mul(TV.Load(dy + i), TV.Load(gamma + i));
            var xh = TV.Mul(TV.Sub(TV.Load(x + i), vm), vi);
            sa = TV.Add(sa, g); sb = TV.Fma(g, xh, sb);
        }
        float a = TV.Sum(sa), b = TV.Sum(sb);
        for (; i < n; i++) { float g = dy[i] * gamma[i], xh = (x[i] - m) * inv; a += g; b += g * xh; }
        a /= n; b /= n;
        var va = TV.Splat(a); var vb = TV.Splat(b);
        i = 0;
        for (; i <= n - w; i += w)
        {
            var g = TV.Mul(TV.Load(dy + i), TV.Load(gamma + i));
            var xh = TV.Mul(TV.Sub(TV.Load(x + i), vm), vi);
            var d = TV.Mul(vi, TV.Sub(TV.Sub(g, va), TV.Mul(xh, vb)));
            TV.Store(accumulate ? TV.Add(TV.Load(dx + i), d) : d, dx + i);
        }
        for (; i < n; i++)
        {
            float g = dy[i] * gamma[i], xh = (x[i] - m) * inv;
            float d = inv * (g - a - xh * b);
            dx[i] = accumulate ? dx[i] + d : d;
        }
    }
}
