using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Algorithms.ScanReduceOperations;
using ILGPU.Runtime;

namespace LsKd.Kernels.Gpu;

using FView = ILGPU.Runtime.ArrayView1D<float, ILGPU.Stride1D.Dense>;
using IView = ILGPU.Runtime.ArrayView1D<int, ILGPU.Stride1D.Dense>;

public readonly record struct AttnParams(int Batch, int Heads, int Lq, int Lk, int D, int QStride, int KStride, int VStride, int OStride,
    int QOffset, int KOffset, int VOffset, int OOffset, int Causal, int HasMask, float Scale, float DropoutP, ulong Seed, long KBatch, long VBatch)
{
    public static AttnParams From(in AttentionSpec s, bool hasMask) =>
        new(s.Batch, s.Heads, s.QueryLength, s.KeyLength, s.HeadDim, s.QRowStride, s.KRowStride, s.VRowStride, s.ORowStride,
            s.QOffset, s.KOffset, s.VOffset, s.OOffset, s.Causal ? 1 : 0, hasMask ? 1 : 0, s.Scale, s.DropoutP, s.DropoutSeed, s.KBatch, s.VBatch);
}

/// <summary>ILGPU kernels of the sequence ops. Layer norm runs one group per row (group all-reduce for the
/// statistics); column sums (embedding gradient, dGamma, dBeta) run one thread per column over the rows in order,
/// so they are deterministic. Attention runs one thread per output element (b, h, row, c) with an online softmax
/// over the keys (running max and sum, FlashAttention style): simple and exact, written for correctness first.</summary>
internal static class IlgpuSequenceKernels
{
    public static void Embedding(Index1D i, FView table, IView ids, FView y, int dim)
    {
        int t = i / dim, c = i - t * dim;
        y[i] = table[(long)ids[t] * dim + c];
    }

    public static void EmbeddingBackward(Index1D c, IView ids, FView dy, FView dTable, int count, int dim, int paddingIndex)
    {
        for (int t = 0; t < count; t++)
        {
            int id = ids[t];
            if (id != paddingIndex) dTable[(long)id * dim + c] += dy[(long)t * dim + c];
        }
    }

    public static void LayerNorm(FView x, FView r, FView sum, FView gamma, FView beta, FView y, FView mean, FView invStd, int dim, float eps, int hasResidual)
    {
        int row = Grid.IdxX;
        long o = (long)row * dim;
        float part = 0f;
        for (int j = Group.IdxX; j < dim; j += Group.DimX)
        {
            float v = x[o + j];
            if (hasResidual != 0) { v += r[o + j]; sum[o + j] = v; }
            part += v;
        }
        float m = GroupExtensions.AllReduce<float, AddFloat>(part) / dim;
        float sq = 0f;
        for (int j = Group.IdxX; j < dim; j += Group.DimX)
        {
            float v = (hasResidual != 0 ? sum[o + j] : x[o + j]) - m;
            sq += v * v;
        }
        float inv = 1f / MathF.Sqrt(GroupExtensions.AllReduce<float, AddFloat>(sq) / dim + eps);
        for (int j = Group.IdxX; j < dim; j += Group.DimX)
        {
            float v = hasResidual != 0 ? sum[o + j] : x[o + j];
            y[o + j] = (v - m) * inv * gamma[j] + beta[j];
        }
        if (Group.IdxX == 0) { mean[row] = m; invStd[row] = inv; }
    }

    public static void LayerNormBackward(FView x, FView dy, FView gamma, FView mean, FView invStd, FView dx, int dim, int accumulate)
    {
        int row = Grid.IdxX;
        long o = (long)row * dim;
        float m = mean[row], inv = invStd[row];
        float a = 0f, b = 0f;
        for (int j = Group.IdxX; j < dim; j += Group.DimX)
        {
            float g = dy[o + j] * gamma[j], xh = (x[o + j] - m) * inv;
            a += g; b += g * xh;
        }
        a = GroupExtensions.AllReduce<float, AddFloat>(a) / dim;
        b = GroupExtensions.AllReduce<float, AddFloat>(b) / dim;
        for (int j = Group.IdxX; j < dim; j += Group.DimX)
        {
            float g = dy[o + j] * gamma[j], xh = (x[o + j] - m) * inv;
            float d = inv * (g - a - xh * b);
            dx[o + j] = accumulate != 0 ? dx[o + j] + d : d;
        }
    }

    public static void LayerNormParamGrads(Index1D c, FView x, FView dy, FView mean, FView invStd, FView dGamma, FView dBeta, int rows, int dim)
    {
        float g = 0f, b = 0f;
        for (int r = 0; r < rows; r++)
        {
            long i = (long)r * dim + c;
            g += dy[i] * (x[i] - mean[r]) * invStd[r];
            b += dy[i];
        }
        dGamma[c] = g; dBeta[c] = b;
    }

    static long QAt(AttnParams p, int b, int i, int h) => p.QOffset + ((long)b * p.Lq + i) * p.QStride + (long)h * p.D;
    static long KAt(AttnParams p, int b, int j, int h) => p.KOffset + b * p.KBatch + (long)j * p.KStride + (long)h * p.D;
    static long VAt(AttnParams p, int b, int j, int h) => p.VOffset + b * p.VBatch + (long)j * p.VStride + (long)h * p.D;
    static long OAt(AttnParams p, int b, int i, int h) => p.OOffset + ((long)b * p.Lq + i) * p.OStride + (long)h * p.D;

    static int KeyLimit(AttnParams p, int i) => p.Causal != 0 ? IntrinsicMath.Min(IntrinsicMath.Max(i + p.Lk - p.Lq + 1, 0), p.Lk) : p.Lk;

    static bool Visible(AttnParams p, IView mask, int b, int i, int j) =>
        j < KeyLimit(p, i) && (p.HasMask == 0 || mask[(long)b * p.Lk + j] != 0);

    static float Dot(FView a, long ao, FView b, long bo, int d)
    {
        float s = 0f;
        for (int c = 0; c < d; c++) s += a[ao + c] * b[bo + c];
        return s;
    }

    static float DropScale(AttnParams p, int b, int h, int i, int j)
    {
        if (p.DropoutP == 0f) return 1f;
        ulong index = (((ulong)b * (ulong)p.Heads + (ulong)h) * (ulong)p.Lq + (ulong)i) * (ulong)p.Lk + (ulong)j;
        return ScalarMath.DropoutKeep(p.Seed, index, p.DropoutP) ? 1f / (1f - p.DropoutP) : 0f;
    }

    /// <summary>One thread per (b, h, i, c): an online softmax over the keys (max and sum updated key by key, the
    /// accumulator rescaled when the max grows); c = 0 also writes the row's log-sum-exp.</summary>
    public static void AttentionForward(Index1D index, FView q, FView k, FView v, IView mask, FView o, FView lse, AttnParams p)
    {
        int c = index % p.D, row = index / p.D;
        int i = row % p.Lq, bh = row / p.Lq, h = bh % p.Heads, b = bh / p.Heads;
        long qo = QAt(p, b, i, h);
        float m = float.NegativeInfinity, l = 0f, acc = 0f;
        for (int j = 0; j < p.Lk; j++)
        {
            if (!Visible(p, mask, b, i, j)) continue;
            float s = Dot(q, qo, k, KAt(p, b, j, h), p.D) * p.Scale;
            float mNew = IntrinsicMath.Max(m, s);
            float correction = MathF.Exp(m - mNew);   // 0 on the first visible key (m = -inf)
            float e = MathF.Exp(s - mNew);
            l = l * correction + e;
            acc = acc * correction + e * DropScale(p, b, h, i, j) * v[VAt(p, b, j, h) + c];
            m = mNew;
        }
        o[OAt(p, b, i, h) + c] = l > 0f ? acc / l : 0f;
        if (c == 0) lse[row] = l > 0f ? m + MathF.Log(l) : float.PositiveInfinity;
    }

    /// <summary>rowDot[b, h, i] = sum_c dO * O.</summary>
    public static void AttentionRowDot(Index1D row, FView o, FView dO, FView rowDot, AttnParams p)
    {
        int i = row % p.Lq, bh = row / p.Lq, h = bh % p.Heads, b = bh / p.Heads;
        long at = OAt(p, b, i, h);
        rowDot[row] = Dot(o, at, dO, at, p.D);
    }

    /// <summary>dQ[b, i, h, c] = scale * sum_j P_ij (dP_ij - rowDot_i) K_jc, one thread per element.</summary>
    public static void AttentionBackwardQuery(Index1D index, FView q, FView k, FView v, IView mask, FView lse, FView dO, FView rowDot, FView dq, AttnParams p)
    {
        int c = index % p.D, row = index / p.D;
        int i = row % p.Lq, bh = row / p.Lq, h = bh % p.Heads, b = bh / p.Heads;
        long qo = QAt(p, b, i, h), go = OAt(p, b, i, h);
        float l = lse[row], rd = rowDot[row], acc = 0f;
        for (int j = 0; j < p.Lk; j++)
        {
            if (!Visible(p, mask, b, i, j)) continue;
            float pij = MathF.Exp(Dot(q, qo, k, KAt(p, b, j, h), p.D) * p.Scale - l);
            float dp = Dot(dO, go, v, VAt(p, b, j, h), p.D) * DropScale(p, b, h, i, j);
            acc += pij * (dp - rd) * k[KAt(p, b, j, h) + c];
        }
        dq[qo + c] = acc * p.Scale;
    }

    /// <summary>dK[b, j, h, c] and dV[b, j, h, c], one thread per element, summing over the queries in order.</summary>
    public static void AttentionBackwardKeyValue(Index1D index, FView q, FView k, FView v, IView mask, FView lse, FView dO, FView rowDot, FView dk, FView dv, AttnParams p)
    {
        int c = index % p.D, key = index / p.D;
        int j = key % p.Lk, bh = key / p.Lk, h = bh % p.Heads, b = bh / p.Heads;
        long ko = KAt(p, b, j, h), vo = VAt(p, b, j, h);
        float accK = 0f, accV = 0f;
        for (int i = 0; i < p.Lq; i++)
        {
            if (!Visible(p, mask, b, i, j)) continue;
            int row = (b * p.Heads + h) * p.Lq + i;
            long qo = QAt(p, b, i, h), go = OAt(p, b, i, h);
            float pij = MathF.Exp(Dot(q, qo, k, ko, p.D) * p.Scale - lse[row]);
            float drop = DropScale(p, b, h, i, j);
            accV += pij * drop * dO[go + c];
            float dp = Dot(dO, go, v, vo, p.D) * drop;
            accK += pij * (dp - rowDot[row]) * q[qo + c];
        }
        dk[ko + c] = accK * p.Scale;
        dv[vo + c] = accV;
    }
}
