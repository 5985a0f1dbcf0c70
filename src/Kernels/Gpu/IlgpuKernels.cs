using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Algorithms.ScanReduceOperations;
using ILGPU.Runtime;

namespace LsKd.Kernels.Gpu;

using FView = ILGPU.Runtime.ArrayView1D<float, ILGPU.Stride1D.Dense>;
using IView = ILGPU.Runtime.ArrayView1D<int, ILGPU.Stride1D.Dense>;

public readonly record struct GemmParams(int TransA, int TransB, int M, int N, int K, float Alpha, float Beta,
    long StrideA, long StrideB, long StrideC, long OffsetA, long OffsetB, long OffsetC, int Tile,
    int Lda, int Ldb, int Ldc, int Heads, long HeadStrideA, long HeadStrideB, long HeadStrideC);

public readonly record struct RowParams(int Rows, int Cols, float InvT, float Temperature, float Alpha, float Beta, float Scale, int Flag, int HasGrad, int Ignore = int.MinValue);

public readonly record struct OptParams(float Lr, float Beta1, float Beta2, float Eps, float WeightDecay, float Momentum, int Nesterov, float Bc1, float Bc2);

/// <summary>ILGPU kernels. Element-wise kernels are one thread per element; row kernels (softmax, losses,
/// entropy, row reductions) run one group per row and reduce with ILGPU.Algorithms group all-reduce; GEMM is a
/// shared-memory tiled kernel with a runtime tile size (dynamic shared memory) so it fits any group limit.</summary>
internal static class IlgpuKernels
{
    public static void Fill(Index1D i, FView x, int offset, float value) => x[offset + i] = value;

    /// <summary>The FMA ceiling: eight independent multiply-add chains per thread in registers (enough to hide the
    /// FMA latency), 16 flops an iteration; the sum is stored so that nothing is dead code.</summary>
    public static void FmaPeak(Index1D i, FView y, int iterations, float b, float c)
    {
        float a0 = i * 1e-9f, a1 = a0 + 1f, a2 = a0 + 2f, a3 = a0 + 3f, a4 = a0 + 4f, a5 = a0 + 5f, a6 = a0 + 6f, a7 = a0 + 7f;
        for (int k = 0; k < iterations; k++)
        {
            a0 = a0 * b + c; a1 = a1 * b + c; a2 = a2 * b + c; a3 = a3 * b + c;
            a4 = a4 * b + c; a5 = a5 * b + c; a6 = a6 * b + c; a7 = a7 * b + c;
        }
        y[i] = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
    }
    public static void FillInt(Index1D i, IView x, int offset, int value) => x[offset + i] = value;

    public static void Transpose(Index1D i, FView x, FView y, int rows, int cols)
    {
        int mat = rows * cols, li = i;   // 32-bit: buffers hold fewer than 2^31 elements, and 64-bit division is slow on GPUs
        int b = li / mat, rem = li - b * mat;
        int r = rem / cols, c = rem - r * cols;
        y[b * mat + c * rows + r] = x[li];
    }

    public static void Unary(Index1D i, FView x, FView y, int op, float s) => y[i] = ScalarMath.Unary((UnaryOp)op, x[i], s);

    public static void UnaryBackward(Index1D i, FView x, FView dy, FView dx, int op, float s, int accumulate)
    {
        float g = dy[i] * ScalarMath.UnaryGrad((UnaryOp)op, x[i], s);
        dx[i] = accumulate != 0 ? dx[i] + g : g;
    }

    public static void AddReluBackward(Index1D i, FView y, FView dy, FView da, FView db, int accumulateA, int accumulateB)
    {
        float g = y[i] > 0f ? dy[i] : 0f;
        da[i] = accumulateA != 0 ? da[i] + g : g;
        db[i] = accumulateB != 0 ? db[i] + g : g;
    }

    public static void Binary(Index1D i, FView a, FView b, FView y, int op, int bLength, int bInner)
    {
        int j = (int)i / bInner % bLength;
        y[i] = ScalarMath.Binary((BinaryOp)op, a[i], b[j]);
    }

    public static void Axpby(Index1D i, FView x, FView y, float alpha, float beta) =>
        y[i] = beta == 0f ? alpha * x[i] : alpha * x[i] + beta * y[i];

    /// <summary>Strided reduction: one thread per (outer, inner) output.</summary>
    public static void ReduceStrided(Index1D i, FView x, FView y, IView arg, int op, int axis, int inner, int wantArg)
    {
        long o = (int)i / inner, k = (int)i % inner;
        long baseIdx = o * axis * inner + k;
        float acc = x[baseIdx];
        int best = 0;
        for (int a = 1; a < axis; a++)
        {
            float v = x[baseIdx + (long)a * inner];
            if (op == (int)ReduceOp.Max) { if (v > acc) { acc = v; best = a; } }
            else acc += v;
        }
        if (op == (int)ReduceOp.Mean) acc /= axis;
        y[i] = acc;
        if (wantArg != 0) arg[i] = best;
    }

    /// <summary>Contiguous reduction: one group per row, group all-reduce.</summary>
    public static void ReduceRows(FView x, FView y, int op, int axis)
    {
        int row = Grid.IdxX, t = Group.IdxX, g = Group.DimX;
        long o = (long)row * axis;
        float acc = op == (int)ReduceOp.Max ? float.NegativeInfinity : 0f;
        for (int j = t; j < axis; j += g)
            acc = op == (int)ReduceOp.Max ? IntrinsicMath.Max(acc, x[o + j]) : acc + x[o + j];
        acc = op == (int)ReduceOp.Max ? GroupExtensions.AllReduce<float, MaxFloat>(acc) : GroupExtensions.AllReduce<float, AddFloat>(acc);
        if (t == 0) y[row] = op == (int)ReduceOp.Mean ? acc / axis : acc;
    }

    public static void InitUniform(Index1D i, FView x, ulong seed, float low, float high) =>
        x[i] = low + (high - low) * ScalarMath.Uniform01(seed, (ulong)(int)i);

    public static void InitNormal(Index1D i, FView x, ulong seed, float mean, float std) =>
        x[i] = mean + std * ScalarMath.Normal(seed, (ulong)(int)i);

    public static void Sgd(Index1D i, FView p, FView g, FView v, OptParams c)
    {
        float gv = c.WeightDecay * p[i] + g[i];
        float vv = c.Momentum * v[i] + gv;
        v[i] = vv;
        float step = c.Nesterov != 0 ? gv + c.Momentum * vv : vv;
        p[i] = p[i] - c.Lr * step;
    }

    public static void AdamW(Index1D i, FView p, FView g, FView m, FView v, OptParams c)
    {
        float gv = g[i];
        float mv = c.Beta1 * m[i] + (1f - c.Beta1) * gv;
        float vv = c.Beta2 * v[i] + (1f - c.Beta2) * gv * gv;
        m[i] = mv; v[i] = vv;
        float denom = MathF.Sqrt(vv) / MathF.Sqrt(c.Bc2) + c.Eps;
        p[i] = (1f - c.Lr * c.WeightDecay) * p[i] - c.Lr / c.Bc1 * mv / denom;
    }

    /// <summary>C = alpha op(A) op(B) + beta C, one Tile x Tile output tile per group, K walked in Tile steps
    /// through two shared-memory tiles. Grid: (ceil(N/Tile), ceil(M/Tile), batch).</summary>
    public static void Gemm(GemmParams p, FView a, FView b, FView c)
    {
        var shared = SharedMemory.GetDynamic<float>();
        int tile = p.Tile;
        int tx = Group.IdxX, ty = Group.IdxY;
        int row = Grid.IdxY * tile + ty, col = Grid.IdxX * tile + tx;
        int z = Grid.IdxZ, batch = z / p.Heads, head = z - batch * p.Heads;   // 32-bit: no 64-bit division in PTX
        long aBase = p.OffsetA + batch * p.StrideA + head * p.HeadStrideA, bBase = p.OffsetB + batch * p.StrideB + head * p.HeadStrideB,
             cBase = p.OffsetC + batch * p.StrideC + head * p.HeadStrideC;
        int tileB = tile * tile;
        float acc = 0f;
        for (int k0 = 0; k0 < p.K; k0 += tile)
        {
            int ka = k0 + tx, kb = k0 + ty;
            float av = 0f, bv = 0f;
            if (row < p.M && ka < p.K) av = a[aBase + (p.TransA != 0 ? (long)ka * p.Lda + row : (long)row * p.Lda + ka)];
            if (col < p.N && kb < p.K) bv = b[bBase + (p.TransB != 0 ? (long)col * p.Ldb + kb : (long)kb * p.Ldb + col)];
            shared[ty * tile + tx] = av;
            shared[tileB + ty * tile + tx] = bv;
            Group.Barrier();
            for (int kk = 0; kk < tile; kk++) acc += shared[ty * tile + kk] * shared[tileB + kk * tile + tx];
            Group.Barrier();
        }
        if (row < p.M && col < p.N)
        {
            long idx = cBase + (long)row * p.Ldc + col;
            c[idx] = p.Beta == 0f ? p.Alpha * acc : p.Alpha * acc + p.Beta * c[idx];
        }
    }

    // ---- row kernels: one group per row --------------------------------------------------------------------

    static float RowMax(FView x, long o, int cols)
    {
        float m = float.NegativeInfinity;
        for (int j = Group.IdxX; j < cols; j += Group.DimX) m = IntrinsicMath.Max(m, x[o + j]);
        return GroupExtensions.AllReduce<float, MaxFloat>(m);
    }

    static float RowSumExp(FView x, long o, int cols, float max, float invT)
    {
        float s = 0f;
        for (int j = Group.IdxX; j < cols; j += Group.DimX) s += MathF.Exp((x[o + j] - max) * invT);
        return GroupExtensions.AllReduce<float, AddFloat>(s);
    }

    public static void Softmax(FView x, FView y, RowParams p)
    {
        long o = (long)Grid.IdxX * p.Cols;
        float max = RowMax(x, o, p.Cols);
        float sum = RowSumExp(x, o, p.Cols, max, p.InvT);
        float logSum = MathF.Log(sum);
        for (int j = Group.IdxX; j < p.Cols; j += Group.DimX)
        {
            float a = (x[o + j] - max) * p.InvT;
            y[o + j] = p.Flag != 0 ? a - logSum : MathF.Exp(a) / sum;
        }
    }

    public static void SoftmaxBackward(FView y, FView dy, FView dx, RowParams p)
    {
        long o = (long)Grid.IdxX * p.Cols;
        bool log = p.Flag != 0;
        float part = 0f;
        for (int j = Group.IdxX; j < p.Cols; j += Group.DimX) part += log ? dy[o + j] : dy[o + j] * y[o + j];
        float s = GroupExtensions.AllReduce<float, AddFloat>(part);
        for (int j = Group.IdxX; j < p.Cols; j += Group.DimX)
        {
            float g = log ? p.InvT * (dy[o + j] - MathF.Exp(y[o + j]) * s) : p.InvT * y[o + j] * (dy[o + j] - s);
            dx[o + j] = p.HasGrad != 0 ? dx[o + j] + g : g;   // HasGrad doubles as "accumulate" here
        }
    }

    public static void LabelSmoothing(FView z, IView labels, FView loss, FView grad, RowParams p)
    {
        int row = Grid.IdxX;
        long o = (long)row * p.Cols;
        int n = p.Cols;
        float max = RowMax(z, o, n);
        float s = 0f, sz = 0f;
        for (int j = Group.IdxX; j < n; j += Group.DimX) { float v = z[o + j]; s += MathF.Exp(v - max); sz += v; }
        s = GroupExtensions.AllReduce<float, AddFloat>(s);
        sz = GroupExtensions.AllReduce<float, AddFloat>(sz);
        int y = labels[row];
        if (y == p.Ignore) { IgnoredRow(loss, grad, row, o, n, p.HasGrad); return; }
        float lse = max + MathF.Log(s);
        if (Group.IdxX == 0) loss[row] = -((1f - p.Alpha) * (z[o + y] - lse) + p.Alpha / n * (sz - n * lse));
        if (p.HasGrad != 0)
            for (int j = Group.IdxX; j < n; j += Group.DimX)
                grad[o + j] = p.Scale * (MathF.Exp(z[o + j] - max) / s - p.Alpha / n - (j == y ? 1f - p.Alpha : 0f));
    }

    public static void Kd(FView zs, FView zt, IView labels, FView loss, FView grad, RowParams p)
    {
        int row = Grid.IdxX;
        long o = (long)row * p.Cols;
        int n = p.Cols;
        float ms = RowMax(zs, o, n), mt = RowMax(zt, o, n);
        float ss = 0f, st = 0f, sx = 0f, sh = 0f, sz = 0f;
        for (int j = Group.IdxX; j < n; j += Group.DimX)
        {
            float b = (zs[o + j] - ms) * p.InvT, a = (zt[o + j] - mt) * p.InvT;
            float ea = MathF.Exp(a);
            ss += MathF.Exp(b); st += ea; sx += ea * (a - b);
            sh += MathF.Exp(zs[o + j] - ms); sz += zs[o + j];
        }
        ss = GroupExtensions.AllReduce<float, AddFloat>(ss);
        st = GroupExtensions.AllReduce<float, AddFloat>(st);
        sx = GroupExtensions.AllReduce<float, AddFloat>(sx);
        sh = GroupExtensions.AllReduce<float, AddFloat>(sh);
        sz = GroupExtensions.AllReduce<float, AddFloat>(sz);
        int y = labels[row];
        if (y == p.Ignore) { IgnoredRow(loss, grad, row, o, n, p.HasGrad); return; }
        float t = p.Temperature, beta = p.Beta;
        if (Group.IdxX == 0)
        {
            float kl = IntrinsicMath.Max(sx / st + MathF.Log(ss / st), 0f);   // log of a ratio: no cancellation at large T
            float lse = ms + MathF.Log(sh);
            float ce = -((1f - p.Alpha) * (zs[o + y] - lse) + p.Alpha / n * (sz - n * lse));
            loss[row] = (beta > 0f ? beta * t * t * kl : 0f) + (beta < 1f ? (1f - beta) * ce : 0f);
        }
        if (p.HasGrad != 0)
            for (int j = Group.IdxX; j < n; j += Group.DimX)
            {
                float soft = MathF.Exp((zs[o + j] - ms) * p.InvT) / ss - MathF.Exp((zt[o + j] - mt) * p.InvT) / st;
                float hard = MathF.Exp(zs[o + j] - ms) / sh - p.Alpha / n - (j == y ? 1f - p.Alpha : 0f);
                grad[o + j] = p.Scale * (beta * t * soft + (1f - beta) * hard);
            }
    }

    /// <summary>A padding row of a token-level loss (the whole group takes this branch): no loss, no gradient.</summary>
    static void IgnoredRow(FView loss, FView grad, int row, long o, int n, int hasGrad)
    {
        if (Group.IdxX == 0) loss[row] = 0f;
        if (hasGrad != 0)
            for (int j = Group.IdxX; j < n; j += Group.DimX) grad[o + j] = 0f;
    }

    public static void Entropy(FView z, FView h, RowParams p)
    {
        int row = Grid.IdxX;
        long o = (long)row * p.Cols;
        float max = RowMax(z, o, p.Cols);
        float s = 0f, x = 0f;
        for (int j = Group.IdxX; j < p.Cols; j += Group.DimX)
        {
            float a = (z[o + j] - max) * p.InvT, e = MathF.Exp(a);
            s += e; x += e * a;
        }
        s = GroupExtensions.AllReduce<float, AddFloat>(s);
        x = GroupExtensions.AllReduce<float, AddFloat>(x);
        if (Group.IdxX == 0) h[row] = IntrinsicMath.Max(MathF.Log(s) - x / s, 0f);
    }

    public static void TopK(Index1D row, FView z, IView labels, IView correct, int cols, int k)
    {
        int o = row * cols;
        int y = labels[row];
        float zy = z[o + y];
        // Rank of the label in a stable descending sort: larger values, then equal values at smaller indices.
        int larger = 0, tiedBefore = 0;
        for (int j = 0; j < cols; j++)
        {
            float v = z[o + j];
            larger += v > zy ? 1 : 0;
            tiedBefore += v == zy && j < y ? 1 : 0;
        }
        correct[row] = larger + tiedBefore < k ? 1 : 0;
    }

    public static void Confusion(Index1D i, IView predictions, IView labels, IView matrix, int classes) =>
        Atomic.Add(ref matrix[(long)labels[i] * classes + predictions[i]], 1);
}
