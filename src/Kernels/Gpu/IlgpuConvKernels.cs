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
/// per output element (forward) and per input element (input gradient, a gather, so no atomics); the weight gradient
/// runs one group per weight element, its threads striding over the batch's output positions and then summing in a
/// group reduction (deterministic for a fixed group size). Batch norm runs one group per channel.
/// Index arithmetic is 32-bit (buffers hold at most 2^31 elements) and inner loops advance loop-carried offsets:
/// ILGPU sinks index expressions into the loops that use them, and 64-bit divisions there cost ~40x in time.</summary>
internal static class IlgpuConvKernels
{
    public static void ConvForward(Index1D index, FView x, FView w, FView y, ConvParams p)
    {
        int i = index;
        int ow = i % p.OutW, t = i / p.OutW;
        int oh = t % p.OutH; t /= p.OutH;
        int k = t % p.K, n = t / p.K;
        int cg = p.C / p.Groups, kg = p.K / p.Groups, g = k / kg;
        int ih0 = oh * p.Stride - p.Pad, iw0 = ow * p.Stride - p.Pad;
        int rLo = XMath.Max(0, -ih0), rHi = XMath.Min(p.R, p.H - ih0), sLo = XMath.Max(0, -iw0), sHi = XMath.Min(p.S, p.W - iw0);
        int plane = p.H * p.W, taps = p.R * p.S;
        int xc = (n * p.C + g * cg) * plane + ih0 * p.W + iw0, wc = k * cg * taps;
        float acc = 0f;
        for (int c = 0; c < cg; c++)
        {
            for (int r = rLo; r < rHi; r++)
            {
                int xr = xc + r * p.W, wr = wc + r * p.S;
                for (int s = sLo; s < sHi; s++) acc += x[xr + s] * w[wr + s];
            }
            xc += plane; wc += taps;
        }
        y[i] = acc;
    }

    public static void ConvBackwardInput(Index1D index, FView dy, FView w, FView dx, ConvParams p)
    {
        int i = index;
        int iw = i % p.W, t = i / p.W;
        int ih = t % p.H; t /= p.H;
        int c = t % p.C, n = t / p.C;
        int cg = p.C / p.Groups, kg = p.K / p.Groups, g = c / cg, cl = c - g * cg;
        int outPlane = p.OutH * p.OutW, taps = p.R * p.S, kStride = cg * taps;
        float acc = 0f;
        for (int r = 0; r < p.R; r++)
        {
            int tr = ih + p.Pad - r;
            if (tr < 0 || tr % p.Stride != 0) continue;
            int oh = tr / p.Stride;
            if (oh >= p.OutH) continue;
            for (int s = 0; s < p.S; s++)
            {
                int u = iw + p.Pad - s;
                if (u < 0 || u % p.Stride != 0) continue;
                int ow = u / p.Stride;
                if (ow >= p.OutW) continue;
                int go = (n * p.K + g * kg) * outPlane + oh * p.OutW + ow, wo = (g * kg * cg + cl) * taps + r * p.S + s;
                for (int kk = 0; kk < kg; kk++) { acc += dy[go] * w[wo]; go += outPlane; wo += kStride; }
            }
        }
        dx[i] = p.Accumulate != 0 ? dx[i] + acc : acc;
    }

    /// <summary>One group per weight element [k, c, r, s]: each thread sums x * dy over a strided share of the batch's
    /// output positions, then the group adds the partial sums.</summary>
    public static void ConvBackwardWeight(FView x, FView dy, FView dw, ConvParams p)
    {
        int i = Grid.IdxX;
        int s = i % p.S, r = i / p.S % p.R;
        int cg = p.C / p.Groups, kg = p.K / p.Groups;
        int cl = i / (p.S * p.R) % cg, k = i / (p.S * p.R * cg);
        int c = k / kg * cg + cl;
        int outPlane = p.OutH * p.OutW, plane = p.H * p.W;
        // Valid output rows and columns for this tap: ih = oh * stride - pad + r must lie in [0, H).
        int ohLo = XMath.Max(0, (p.Pad - r + p.Stride - 1) / p.Stride), ohHi = ValidEnd(p.H - 1 + p.Pad - r, p.Stride, p.OutH);
        int owLo = XMath.Max(0, (p.Pad - s + p.Stride - 1) / p.Stride), owHi = ValidEnd(p.W - 1 + p.Pad - s, p.Stride, p.OutW);
        int rows = XMath.Max(0, ohHi - ohLo), cols = XMath.Max(0, owHi - owLo), count = rows * cols;
        float acc = 0f;
        if (count > 0 && count < Group.DimX)
        {
            // Small planes (7x7, 14x14): each thread keeps one position and walks the images, several images per
            // pass, so most threads stay busy and the loop has no divisions.
            int perPass = Group.DimX / count, sub = Group.IdxX / count, q = Group.IdxX - sub * count;
            if (sub < perPass)
            {
                int oh = ohLo + q / cols, ow = owLo + q % cols;
                int xi = (sub * p.C + c) * plane + (oh * p.Stride - p.Pad + r) * p.W + ow * p.Stride - p.Pad + s;
                int gi = (sub * p.K + k) * outPlane + oh * p.OutW + ow;
                int xStep = perPass * p.C * plane, gStep = perPass * p.K * outPlane;
                for (int n = sub; n < p.N; n += perPass) { acc += x[xi] * dy[gi]; xi += xStep; gi += gStep; }
            }
        }
        else
        {
            int xn = c * plane, gn = k * outPlane;
            for (int n = 0; n < p.N; n++)
            {
                for (int q = Group.IdxX; q < count; q += Group.DimX)
                {
                    int oh = ohLo + q / cols, ow = owLo + q % cols;
                    acc += x[xn + (oh * p.Stride - p.Pad + r) * p.W + ow * p.Stride - p.Pad + s] * dy[gn + oh * p.OutW + ow];
                }
                xn += p.C * plane; gn += p.K * outPlane;
            }
        }
        acc = GroupExtensions.AllReduce<float, AddFloat>(acc);
        if (Group.IdxX == 0) dw[i] = p.Accumulate != 0 ? dw[i] + acc : acc;
    }

    /// <summary>One past the last output index o with o * stride &lt;= last (none when last &lt; 0), at most outLen.</summary>
    static int ValidEnd(int last, int stride, int outLen) => last < 0 ? 0 : XMath.Min(outLen, last / stride + 1);

    /// <summary>stats[c] = mean, stats[C + c] = biased variance of channel c (the same sums as <see cref="BatchNorm"/>).</summary>
    public static void ChannelStats(FView x, FView stats, NormParams p)
    {
        int c = Grid.IdxX;
        int m = p.N * p.Spatial;
        float part = 0f;
        for (int j = Group.IdxX; j < m; j += Group.DimX) part += x[Offset(p, c, j)];
        float mu = GroupExtensions.AllReduce<float, AddFloat>(part) / m;
        float sq = 0f;
        for (int j = Group.IdxX; j < m; j += Group.DimX) { float d = x[Offset(p, c, j)] - mu; sq += d * d; }
        float var = GroupExtensions.AllReduce<float, AddFloat>(sq) / m;
        if (Group.IdxX == 0) { stats[c] = mu; stats[p.C + c] = var; }
    }

    public static void BatchNorm(FView x, FView gamma, FView beta, FView y, FView saveMean, FView saveInvStd, FView runMean, FView runVar, FView stats, NormParams p, int haveStats)
    {
        int c = Grid.IdxX;
        int m = p.N * p.Spatial;
        float mean, invStd;
        if (p.Training != 0 && haveStats != 0)
        {
            mean = stats[c]; float var = stats[p.C + c];
            invStd = 1f / MathF.Sqrt(var + p.Epsilon);
            if (Group.IdxX == 0)
            {
                runMean[c] = (1f - p.Momentum) * runMean[c] + p.Momentum * mean;
                runVar[c] = (1f - p.Momentum) * runVar[c] + p.Momentum * var * m / (m - 1);
            }
        }
        else if (p.Training != 0)
        {
            float part = 0f;
            for (int j = Group.IdxX; j < m; j += Group.DimX) part += x[Offset(p, c, j)];
            float mu = GroupExtensions.AllReduce<float, AddFloat>(part) / m;
            float sq = 0f;
            for (int j = Group.IdxX; j < m; j += Group.DimX) { float d = x[Offset(p, c, j)] - mu; sq += d * d; }
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
        for (int j = Group.IdxX; j < m; j += Group.DimX)
        {
            int o = Offset(p, c, j);
            float v = x[o] * a + b;
            y[o] = p.Activation != 0 ? XMath.Min(XMath.Max(v, 0f), p.Cap) : v;
        }
    }

    /// <summary>dy, or 0 where the fused activation clamped its input: the pre-activation x a + b is formed as the
    /// forward formed it, so the output y need not be read.</summary>
    static float MaskedGrad(FView dy, FView x, int o, float a, float b, NormParams p)
    {
        if (p.Activation == 0) return dy[o];
        float v = x[o] * a + b;
        return v > 0f && v < p.Cap ? dy[o] : 0f;
    }

    public static void BatchNormBackward(FView x, FView dy, FView beta, FView gamma, FView saveMean, FView saveInvStd, FView dx, FView dGamma, FView dBeta, NormParams p)
    {
        int c = Grid.IdxX;
        int m = p.N * p.Spatial;
        float mean = saveMean[c], invStd = saveInvStd[c];
        float a = gamma[c] * invStd, b = p.Activation != 0 ? beta[c] - mean * a : 0f;
        float sdy = 0f, sdx = 0f;
        for (int j = Group.IdxX; j < m; j += Group.DimX) { int o = Offset(p, c, j); float g = MaskedGrad(dy, x, o, a, b, p); sdy += g; sdx += g * (x[o] - mean); }
        sdy = GroupExtensions.AllReduce<float, AddFloat>(sdy);
        sdx = GroupExtensions.AllReduce<float, AddFloat>(sdx);
        if (Group.IdxX == 0) { dBeta[c] = sdy; dGamma[c] = sdx * invStd; }
        float k = gamma[c] * invStd;
        float mdy = p.Training != 0 ? sdy / m : 0f, cx = p.Training != 0 ? sdx / m * invStd * invStd : 0f;
        for (int j = Group.IdxX; j < m; j += Group.DimX)
        {
            int o = Offset(p, c, j);
            float v = k * (MaskedGrad(dy, x, o, a, b, p) - mdy - (x[o] - mean) * cx);
            dx[o] = p.Accumulate != 0 ? dx[o] + v : v;
        }
    }

    /// <summary>Flat index of the j-th value of channel c (j runs over batch, then spatial).</summary>
    static int Offset(NormParams p, int c, int j) { int n = j / p.Spatial; return (n * p.C + c) * p.Spatial + (j - n * p.Spatial); }

    public static void Pool(Index1D index, FView x, FView y, IView argMax, PoolParams p, int writeArg)
    {
        int i = index;
        int ow = i % p.OutW, oh = i / p.OutW % p.OutH;
        int plane = i / (p.OutW * p.OutH);
        int xBase = plane * p.H * p.W;
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
        int i = index;
        int iw = i % p.W, ih = i / p.W % p.H;
        int plane = i / (p.W * p.H);
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
                int o = (plane * p.OutH + t / p.Stride) * p.OutW + u / p.Stride;
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
    /// <summary>One thread per centroid element scanning every row: the fallback for more classes than shared memory holds.</summary>
    public static void Centroids(Index1D index, FView features, IView labels, FView centroids, int count, int dim)
    {
        int c = index / dim, j = index % dim;
        float sum = 0f;
        int members = 0;
        for (int i = 0; i < count; i++)
            if (labels[i] == c) { sum += features[(long)i * dim + j]; members++; }
        centroids[index] = members == 0 ? 0f : sum / members;
    }

    /// <summary>Class sums as a segmented reduction: group (tile, chunk) takes a tile of Group.DimX feature columns over
    /// a chunk of rows; each thread owns one column and adds every row of the chunk into its own slot of the row's
    /// class in shared memory (so no thread waits for another), then adds the chunk's per-class sums into the
    /// output with one atomic per (class, column). Thread 0 of the first tile counts the members the same way.
    /// sums and counts must be zero on entry.</summary>
    public static void CentroidSums(FView features, IView labels, FView sums, FView counts, int count, int dim, int classes, int rowsPerChunk)
    {
        var partial = SharedMemory.GetDynamic<float>();   // [classes][group] class sums, then [classes] member counts
        int t = Group.IdxX, g = Group.DimX, d = Grid.IdxX * g + t, countsAt = classes * g;
        int r0 = Grid.IdxY * rowsPerChunk, r1 = XMath.Min(count, r0 + rowsPerChunk);
        bool counter = Grid.IdxX == 0 && t == 0;
        for (int c = 0; c < classes; c++) partial[c * g + t] = 0f;   // every slot has one owner: no barrier needed
        if (counter) for (int c = 0; c < classes; c++) partial[countsAt + c] = 0f;
        if (d < dim)
        {
            long o = (long)r0 * dim + d;
            for (int r = r0; r < r1; r++, o += dim)
            {
                int c = labels[r];
                partial[c * g + t] += features[o];
                if (counter) partial[countsAt + c] += 1f;
            }
            for (int c = 0; c < classes; c++)
            {
                float v = partial[c * g + t];
                if (v != 0f) FloatAtomics.Add(ref sums[c * dim + d], v);
            }
        }
        if (counter)
            for (int c = 0; c < classes; c++) Atomic.Add(ref counts[c], partial[countsAt + c]);
    }

    /// <summary>centroid = sum / members (0 for a class without members), in place.</summary>
    public static void CentroidDivide(Index1D index, FView centroids, FView counts, int dim)
    {
        float members = counts[index / dim];
        centroids[index] = members == 0f ? 0f : centroids[index] / members;
    }

    public static void Distances(Index1D index, FView a, FView b, FView distances, int n, int dim)
    {
        int i = index / n, j = index % n;
        float s = 0f;
        for (int k = 0; k < dim; k++) { float d = a[(long)i * dim + k] - b[(long)j * dim + k]; s += d * d; }
        distances[index] = MathF.Sqrt(s);
    }
}
