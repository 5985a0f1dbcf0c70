using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Algorithms.ScanReduceOperations;

namespace LsKd.Kernels.Gpu;

using FView = ILGPU.Runtime.ArrayView1D<float, ILGPU.Stride1D.Dense>;
using IView = ILGPU.Runtime.ArrayView1D<int, ILGPU.Stride1D.Dense>;

public readonly record struct ConvParams(int N, int C, int H, int W, int K, int R, int S, int Stride, int Pad, int Groups, int OutH, int OutW, int Accumulate)
{
    public static ConvParams From(in ConvSpec s, bool accumulate = false) =>
        new(s.N, s.C, s.H, s.W, s.K, s.R, s.S, s.Stride, s.Pad, s.Groups, s.OutH, s.OutW, accumulate ? 1 : 0);
}

public readonly record struct PoolParams(int Max, int N, int C, int H, int W, int Kernel, int Stride, int Pad, int OutH, int OutW, int Accumulate)
{
    public static PoolParams From(in PoolSpec s, bool accumulate = false) =>
        new(s.Op == PoolOp.Max ? 1 : 0, s.N, s.C, s.H, s.W, s.Kernel, s.Stride, s.Pad, s.OutH, s.OutW, accumulate ? 1 : 0);
}

public readonly record struct NormParams(int N, int C, int Spatial, float Epsilon, float Momentum, int Training, int Accumulate, int Activation, float Cap)
{
    public static NormParams From(in BatchNormSpec s, bool training, bool accumulate) =>
        new(s.N, s.C, s.Spatial, s.Epsilon, s.Momentum, training ? 1 : 0, accumulate ? 1 : 0, (int)s.Activation, s.Cap);
}

/// <summary>ILGPU kernels for convolution, batch norm, pooling and dropout. Convolutions are direct: one thread
/// per output element (forward), per input element (input gradient, a gather, so no atomics) and per weight
/// (weight gradient, summing over the batch in a fixed order). Batch norm runs one group per channel.</summary>
internal static class IlgpuConvKernels
{
    public static void ConvForward(Index1D index, FView x, FView w, FView y, ConvParams p)
    {
        long i = index;
        int ow = (int)(i % p.OutW), oh = (int)(i / p.OutW % p.OutH), k = (int)(i / ((long)p.OutW * p.OutH) % p.K);
        long n = i / ((long)p.OutW * p.OutH * p.K);
        int cg = p.C / p.Groups, kg = p.K / p.Groups, g = k / kg;
        float acc = 0f;
        for (int c = 0; c < cg; c++)
        {
            long xBase = (n * p.C + g * cg + c) * p.H * p.W;
            long wBase = ((long)k * cg + c) * p.R * p.S;
            for (int r = 0; r < p.R; r++)
            {
                int ih = oh * p.Stride - p.Pad + r;
                if (ih < 0 || ih >= p.H) continue;
                for (int s = 0; s < p.S; s++)
                {
                    int iw = ow * p.Stride - p.Pad + s;
                    if (iw >= 0 && iw < p.W) acc += x[xBase + ih * p.W + iw] * w[wBase + r * p.S + s];
                }
            }
        }
        y[i] = acc;
    }

    public static void ConvBackwardInput(Index1D index, FView dy, FView w, FView dx, ConvParams p)
    {
        long i = index;
        int iw = (int)(i % p.W), ih = (int)(i / p.W % p.H), c = (int)(i / ((long)p.W * p.H) % p.C);
        long n = i / ((long)p.W * p.H * p.C);
        int cg = p.C / p.Groups, kg = p.K / p.Groups, g = c / cg, cl = c - g * cg;
        float acc = 0f;
        for (int r = 0; r < p.R; r++)
        {
            int t = ih + p.Pad - r;
            if (t < 0 || t % p.Stride != 0) continue;
            int oh = t / p.Stride;
            if (oh >= p.OutH) continue;
            for (int s = 0; s < p.S; s++)
            {
                int u = iw + p.Pad - s;
                if (u < 0 || u % p.Stride != 0) continue;
                int ow = u / p.Stride;
                if (ow >= p.OutW) continue;
                for (int kk = 0; kk < kg; kk++)
                {
                    int k = g * kg + kk;
                    acc += dy[((n * p.K + k) * p.OutH + oh) * p.OutW + ow] * w[(((long)k * cg + cl) * p.R + r) * p.S + s];
                }
            }
        }
        dx[i] = p.Accumulate != 0 ? dx[i] + acc : acc;
    }

    public static void ConvBackwardWeight(Index1D index, FView x, FView dy, FView dw, ConvParams p)
    {
        long i = index;
        int s = (int)(i % p.S), r = (int)(i / p.S % p.R);
        int cg = p.C / p.Groups, kg = p.K / p.Groups;
        int cl = (int)(i / ((long)p.S * p.R) % cg), k = (int)(i / ((long)p.S * p.R * cg));
        int c = k / kg * cg + cl;
        float acc = 0f;
        for (int n = 0; n < p.N; n++)
            for (int oh = 0; oh < p.OutH; oh++)
            {
                int ih = oh * p.Stride - p.Pad + r;
                if (ih < 0 || ih >= p.H) continue;
                long xRow = (((long)n * p.C + c) * p.H + ih) * p.W, gRow = (((long)n * p.K + k) * p.OutH + oh) * p.OutW;
                for (int ow = 0; ow < p.OutW; ow++)
                {
                    int iw = ow * p.Stride - p.Pad + s;
                    if (iw >= 0 && iw < p.W) acc += x[xRow + iw] * dy[gRow + ow];
                }
            }
        dw[i] = p.Accumulate != 0 ? dw[i] + acc : acc;
    }

    public static void BatchNorm(FView x, FView gamma, FView beta, FView y, FView saveMean, FView saveInvStd, FView runMean, FView runVar, NormParams p)
    {
        int c = Grid.IdxX;
        long m = (long)p.N * p.Spatial;
        float mean, invStd;
        if (p.Training != 0)
        {
            float part = 0f;
            for (long j = Group.IdxX; j < m; j += Group.DimX) part += x[Offset(p, c, j)];
            float mu = GroupExtensions.AllReduce<float, AddFloat>(part) / m;
            float sq = 0f;
            for (long j = Group.IdxX; j < m; j += Group.DimX) { float d = x[Offset(p, c, j)] - mu; sq += d * d; }
            float var = GroupExtensions.AllReduce<float, AddFloat>(sq) / m;
            mean = mu; invStd = 1f / MathF.Sqrt(var + p.Epsilon);
            if (Group.IdxX == 0)
            {
                runMean[c] = (1f - p.Momentum) * runMean[c] + p.Momentum * mu;
                runVar[c] = (1f - p.Momentum) * runVar[c] + p.Momentum * var * m / (m - 1);
            }
        }
        else { mean = runMean[c]; invStd = 1f / MathF.Sqrt(runVar[c] + p.Epsilon); }
        if (Group.IdxX == 0) { saveMean[c] = mean; saveInvStd[c] = invStd; }
        float a = gamma[c] * invStd, b = beta[c] - mean * a;
        for (long j = Group.IdxX; j < m; j += Group.DimX)
        {
            long o = Offset(p, c, j);
            float v = x[o] * a + b;
            y[o] = p.Activation != 0 ? XMath.Min(XMath.Max(v, 0f), p.Cap) : v;
        }
    }

    /// <summary>dy, or 0 where the fused activation clamped its input (y is the forward output).</summary>
    static float MaskedGrad(FView dy, FView y, long o, NormParams p) => p.Activation == 0 || (y[o] > 0f && y[o] < p.Cap) ? dy[o] : 0f;

    public static void BatchNormBackward(FView x, FView dy, FView y, FView gamma, FView saveMean, FView saveInvStd, FView dx, FView dGamma, FView dBeta, NormParams p)
    {
        int c = Grid.IdxX;
        long m = (long)p.N * p.Spatial;
        float mean = saveMean[c], invStd = saveInvStd[c];
        float sdy = 0f, sdx = 0f;
        for (long j = Group.IdxX; j < m; j += Group.DimX) { long o = Offset(p, c, j); float g = MaskedGrad(dy, y, o, p); sdy += g; sdx += g * (x[o] - mean); }
        sdy = GroupExtensions.AllReduce<float, AddFloat>(sdy);
        sdx = GroupExtensions.AllReduce<float, AddFloat>(sdx);
        if (Group.IdxX == 0) { dBeta[c] = sdy; dGamma[c] = sdx * invStd; }
        float k = gamma[c] * invStd;
        float mdy = p.Training != 0 ? sdy / m : 0f, cx = p.Training != 0 ? sdx / m * invStd * invStd : 0f;
        for (long j = Group.IdxX; j < m; j += Group.DimX)
        {
            long o = Offset(p, c, j);
            float v = k * (MaskedGrad(dy, y, o, p) - mdy - (x[o] - mean) * cx);
            dx[o] = p.Accumulate != 0 ? dx[o] + v : v;
        }
    }

    /// <summary>Flat index of the j-th value of channel c (j runs over batch, then spatial).</summary>
    static long Offset(NormParams p, int c, long j) => (j / p.Spatial * p.C + c) * p.Spatial + j % p.Spatial;

    public static void Pool(Index1D index, FView x, FView y, IView argMax, PoolParams p, int writeArg)
    {
        long i = index;
        int ow = (int)(i % p.OutW), oh = (int)(i / p.OutW % p.OutH);
        long plane = i / ((long)p.OutW * p.OutH);
        long xBase = plane * p.H * p.W;
        float best = float.NegativeInfinity, sum = 0f;
        int arg = -1;
        for (int r = 0; r < p.Kernel; r++)
        {
            int ih = oh * p.Stride - p.Pad + r;
            if (ih < 0 || ih >= p.H) continue;
            for (int s = 0; s < p.Kernel; s++)
            {
                int iw = ow * p.Stride - p.Pad + s;
                if (iw < 0 || iw >= p.W) continue;
                float v = x[xBase + ih * p.W + iw];
                sum += v;
                if (v > best || arg < 0) { best = v; arg = ih * p.W + iw; }
            }
        }
        y[i] = p.Max != 0 ? best : sum / (p.Kernel * p.Kernel);
        if (writeArg != 0) argMax[i] = arg;
    }

    /// <summary>One thread per input element gathers from every window that contains it.</summary>
    public static void PoolBackward(Index1D index, FView dy, IView argMax, FView dx, PoolParams p)
    {
        long i = index;
        int iw = (int)(i % p.W), ih = (int)(i / p.W % p.H);
        long plane = i / ((long)p.W * p.H);
        int self = ih * p.W + iw;
        float acc = 0f;
        for (int r = 0; r < p.Kernel; r++)
        {
            int t = ih + p.Pad - r;
            if (t < 0 || t % p.Stride != 0 || t / p.Stride >= p.OutH) continue;
            for (int s = 0; s < p.Kernel; s++)
            {
                int u = iw + p.Pad - s;
                if (u < 0 || u % p.Stride != 0 || u / p.Stride >= p.OutW) continue;
                long o = (plane * p.OutH + t / p.Stride) * p.OutW + u / p.Stride;
                if (p.Max != 0) { if (argMax[o] == self) acc += dy[o]; }
                else acc += dy[o] / (p.Kernel * p.Kernel);
            }
        }
        dx[i] = p.Accumulate != 0 ? dx[i] + acc : acc;
    }

    public static void Dropout(Index1D i, FView x, FView y, float p, ulong seed) =>
        y[i] = ScalarMath.DropoutKeep(seed, (ulong)(int)i, p) ? x[i] / (1f - p) : 0f;
}

/// <summary>ILGPU feature-geometry kernels: one thread per centroid element (a deterministic sum over rows in
/// order, no atomics) and one thread per distance.</summary>
internal static class IlgpuAnalysisKernels
{
    public static void Centroids(Index1D index, FView features, IView labels, FView centroids, int count, int dim)
    {
        int c = index / dim, j = index % dim;
        float sum = 0f;
        int members = 0;
        for (int i = 0; i < count; i++)
            if (labels[i] == c) { sum += features[(long)i * dim + j]; members++; }
        centroids[index] = members == 0 ? 0f : sum / members;
    }

    public static void Distances(Index1D index, FView a, FView b, FView distances, int n, int dim)
    {
        int i = index / n, j = index % n;
        float s = 0f;
        for (int k = 0; k < dim; k++) { float d = a[(long)i * dim + k] - b[(long)j * dim + k]; s += d * d; }
        distances[index] = MathF.Sqrt(s);
    }
}
