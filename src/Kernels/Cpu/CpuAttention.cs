namespace LsKd.Kernels.Cpu;

/// <summary>
/// Fused attention on the CPU. Work is split over the (batch, head) pairs, each owned by one thread from start to
/// end, so every output (including the dK and dV sums) is accumulated in one fixed order: results do not depend on
/// the thread count. Inside a pair, queries go in blocks of four: the scores of a block ([4, Lk], the only place
/// scores exist) live in a per-thread scratch with K transposed beside them, so the score product runs along the keys
/// with one K load per four FMAs, and the weighted sum runs along the head dimension with the accumulators in
/// registers. Scores are never materialised for the whole batch; backward recomputes them from the saved
/// log-sum-exp (FlashAttention-2's dS = P * (dP - rowsum(dO * O))).
/// </summary>
public unsafe partial class CpuBackend
{
    const int QueryBlock = 4;

    [ThreadStatic] static float[]? t_attentionScratch;

    static float* AttentionScratch(long floats, out float[] keepAlive)
    {
        var s = t_attentionScratch;
        if (s == null || s.Length < floats) t_attentionScratch = s = GC.AllocateArray<float>((int)Math.Max(floats, 1 << 14), pinned: true);
        keepAlive = s;
        return (float*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref s[0]);
    }

    protected override void AttentionCore(in AttentionSpec spec, DeviceBuffer<float> q, DeviceBuffer<float> k, DeviceBuffer<float> v, DeviceBuffer<int>? keyMask,
        DeviceBuffer<float> o, DeviceBuffer<float> lse)
    {
        var s = spec;
        float* qp = P(q), kp = P(k), vp = P(v), op = P(o), lp = P(lse);
        int* mp = keyMask == null ? null : P(keyMask);
        _parallel.For(s.Batch * s.Heads, 2L * s.QueryLength * s.KeyLength * s.HeadDim, (start, end) =>
        {
            for (int bh = start; bh < end; bh++)
            {
                if (_use512) AttentionForwardPair<V512>(s, bh / s.Heads, bh % s.Heads, qp, kp, vp, mp, op, lp);
                else AttentionForwardPair<V256>(s, bh / s.Heads, bh % s.Heads, qp, kp, vp, mp, op, lp);
            }
        }, minCostPerChunk: 1 << 14);
    }

    protected override void AttentionBackwardCore(in AttentionSpec spec, DeviceBuffer<float> q, DeviceBuffer<float> k, DeviceBuffer<float> v, DeviceBuffer<int>? keyMask,
        DeviceBuffer<float> o, DeviceBuffer<float> lse, DeviceBuffer<float> dO, DeviceBuffer<float> dq, DeviceBuffer<float> dk, DeviceBuffer<float> dv)
    {
        var s = spec;
        float* qp = P(q), kp = P(k), vp = P(v), op = P(o), lp = P(lse), gp = P(dO), dqp = P(dq), dkp = P(dk), dvp = P(dv);
        int* mp = keyMask == null ? null : P(keyMask);
        _parallel.For(s.Batch * s.Heads, 5L * s.QueryLength * s.KeyLength * s.HeadDim, (start, end) =>
        {
            for (int bh = start; bh < end; bh++)
            {
                if (_use512) AttentionBackwardPair<V512>(s, bh / s.Heads, bh % s.Heads, qp, kp, vp, mp, op, lp, gp, dqp, dkp, dvp);
                else AttentionBackwardPair<V256>(s, bh / s.Heads, bh % s.Heads, qp, kp, vp, mp, op, lp, gp, dqp, dkp, dvp);
            }
        }, minCostPerChunk: 1 << 14);
    }


    /// <summary>Writes the [d, Lk] transpose of a head's K (or V) rows, keys padded with zeros to a multiple of the
    /// vector width, so score rows are products along the keys.</summary>
    static void TransposeHead(float* head, int stride, int lk, int d, float* dst, int lkp)
    {
        for (int j = 0; j < lk; j++)
        {
            float* row = head + (long)j * stride;
            for (int c = 0; c < d; c++) dst[(long)c * lkp + j] = row[c];
        }
        for (int c = 0; c < d; c++)
            for (int j = lk; j < lkp; j++) dst[(long)c * lkp + j] = 0f;
    }

    /// <summary>out[r, j] = sum_c a_r[c] * bt[c, j] for the rows of a query block, j in [0, cols) (cols a multiple of the
    /// vector width: the keys the block's last query can see, so a causal block skips the keys after it).</summary>
    static void BlockTimesTransposed<TV>(float** a, int rows, int d, float* bt, int lkp, int cols, float* outRows) where TV : struct, ISimd<TV>
    {
        int w = TV.Count;
        int j = 0;
        if (rows == QueryBlock)
        {
            float* a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
            // Two key chunks at a time: eight independent FMA chains hide the FMA latency.
            for (; j + 2 * w <= cols; j += 2 * w)
            {
                TV c00 = TV.Splat(0f), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
                float* col = bt + j;
                for (int c = 0; c < d; c++)
                {
                    var k0 = TV.Load(col + (long)c * lkp); var k1 = TV.Load(col + (long)c * lkp + w);
                    var q0 = TV.Splat(a0[c]); var q1 = TV.Splat(a1[c]); var q2 = TV.Splat(a2[c]); var q3 = TV.Splat(a3[c]);
                    c00 = TV.Fma(q0, k0, c00); c01 = TV.Fma(q0, k1, c01);
                    c10 = TV.Fma(q1, k0, c10); c11 = TV.Fma(q1, k1, c11);
                    c20 = TV.Fma(q2, k0, c20); c21 = TV.Fma(q2, k1, c21);
                    c30 = TV.Fma(q3, k0, c30); c31 = TV.Fma(q3, k1, c31);
                }
                TV.Store(c00, outRows + j); TV.Store(c01, outRows + j + w);
                TV.Store(c10, outRows + lkp + j); TV.Store(c11, outRows + lkp + j + w);
                TV.Store(c20, outRows + 2 * lkp + j); TV.Store(c21, outRows + 2 * lkp + j + w);
                TV.Store(c30, outRows + 3 * lkp + j); TV.Store(c31, outRows + 3 * lkp + j + w);
            }
        }
        for (; j < cols; j += w)
        {
            float* col = bt + j;
            for (int r = 0; r < rows; r++)
            {
                TV acc = TV.Splat(0f);
                float* ar = a[r];
                for (int c = 0; c < d; c++) acc = TV.Fma(TV.Splat(ar[c]), TV.Load(col + (long)c * lkp), acc);
                TV.Store(acc, outRows + (long)r * lkp + j);
            }
        }
    }

    /// <summary>out_r[c] = scale * sum_{j &lt; nj} wts[r, j] * src_j[c] for the rows of a block, where src_j are the rows of
    /// a strided head slice: the accumulators stay in registers across the keys.</summary>
    static void WeightsTimesRows<TV>(float* wts, int lkp, int rows, int nj, float* src, int stride, int d, float** outRows, float scale) where TV : struct, ISimd<TV>
    {
        int w = TV.Count;
        int c = 0;
        for (; c <= d - w; c += w)
        {
            TV acc0 = TV.Splat(0f), acc1 = acc0, acc2 = acc0, acc3 = acc0;
            int j = 0;
            if (rows == QueryBlock)
            {
                // Even and odd keys in separate accumulators: eight chains instead of four.
                TV e0 = acc0, e1 = acc0, e2 = acc0, e3 = acc0;
                for (; j + 1 < nj; j += 2)
                {
                    var sv = TV.Load(src + (long)j * stride + c);
                    var sw = TV.Load(src + (long)(j + 1) * stride + c);
                    acc0 = TV.Fma(TV.Splat(wts[j]), sv, acc0); e0 = TV.Fma(TV.Splat(wts[j + 1]), sw, e0);
                    acc1 = TV.Fma(TV.Splat(wts[lkp + j]), sv, acc1); e1 = TV.Fma(TV.Splat(wts[lkp + j + 1]), sw, e1);
                    acc2 = TV.Fma(TV.Splat(wts[2 * lkp + j]), sv, acc2); e2 = TV.Fma(TV.Splat(wts[2 * lkp + j + 1]), sw, e2);
                    acc3 = TV.Fma(TV.Splat(wts[3 * lkp + j]), sv, acc3); e3 = TV.Fma(TV.Splat(wts[3 * lkp + j + 1]), sw, e3);
                }
                acc0 = TV.Add(acc0, e0); acc1 = TV.Add(acc1, e1); acc2 = TV.Add(acc2, e2); acc3 = TV.Add(acc3, e3);
            }
            for (; j < nj; j++)
            {
                var sv = TV.Load(src + (long)j * stride + c);
                acc0 = TV.Fma(TV.Splat(wts[j]), sv, acc0);
                if (rows > 1) acc1 = TV.Fma(TV.Splat(wts[lkp + j]), sv, acc1);
                if (rows > 2) acc2 = TV.Fma(TV.Splat(wts[2 * lkp + j]), sv, acc2);
                if (rows > 3) acc3 = TV.Fma(TV.Splat(wts[3 * lkp + j]), sv, acc3);
            }
            var vs = TV.Splat(scale);
            TV.Store(TV.Mul(acc0, vs), outRows[0] + c);
            if (rows > 1) TV.Store(TV.Mul(acc1, vs), outRows[1] + c);
            if (rows > 2) TV.Store(TV.Mul(acc2, vs), outRows[2] + c);
            if (rows > 3) TV.Store(TV.Mul(acc3, vs), outRows[3] + c);
        }
        for (; c < d; c++)
            for (int r = 0; r < rows; r++)
            {
                float acc = 0f;
                for (int j = 0; j < nj; j++) acc += wts[(long)r * lkp + j] * src[(long)j * stride + c];
                outRows[r][c] = scale * acc;
            }
    }

    /// <summary>acc[j, c] += sum_r wts[r, j] * rows_r[c] for j &lt; nj (acc is [Lk, dp], dense).</summary>
    static void AddOuterProducts<TV>(float* wts, int lkp, int rows, int nj, float** src, int d, float* acc, int dp) where TV : struct, ISimd<TV>
    {
        int w = TV.Count;
        if (rows == QueryBlock && d % w == 0 && d <= 4 * w)
        {
            AddOuterProductsInRegisters<TV>(wts, lkp, nj, src, d / w, acc, dp);
            return;
        }
        for (int j = 0; j < nj; j++)
        {
            float w0 = wts[j], w1 = rows > 1 ? wts[lkp + j] : 0f, w2 = rows > 2 ? wts[2 * lkp + j] : 0f, w3 = rows > 3 ? wts[3 * lkp + j] : 0f;
            if (w0 == 0f && w1 == 0f && w2 == 0f && w3 == 0f) continue;
            float* row = acc + (long)j * dp;
            int c = 0;
            var s0 = TV.Splat(w0); var s1 = TV.Splat(w1); var s2 = TV.Splat(w2); var s3 = TV.Splat(w3);
            for (; c <= d - w; c += w)
            {
                var a = TV.Fma(s0, TV.Load(src[0] + c), TV.Load(row + c));
                if (rows > 1) a = TV.Fma(s1, TV.Load(src[1] + c), a);
                if (rows > 2) a = TV.Fma(s2, TV.Load(src[2] + c), a);
                if (rows > 3) a = TV.Fma(s3, TV.Load(src[3] + c), a);
                TV.Store(a, row + c);
            }
            for (; c < d; c++)
            {
                float a = row[c] + w0 * src[0][c];
                if (rows > 1) a += w1 * src[1][c];
                if (rows > 2) a += w2 * src[2][c];
                if (rows > 3) a += w3 * src[3][c];
                row[c] = a;
            }
        }
    }

    /// <summary>The common case of <see cref="AddOuterProducts{TV}"/>: four source rows of at most four vectors each,
    /// held in registers for the whole pass over the keys, so a key costs four weight broadcasts and one load and one
    /// store per vector of its accumulator row.</summary>
    static void AddOuterProductsInRegisters<TV>(float* wts, int lkp, int nj, float** src, int chunks, float* acc, int dp) where TV : struct, ISimd<TV>
    {
        int w = TV.Count;
        float* r0 = src[0], r1 = src[1], r2 = src[2], r3 = src[3];
        TV zero = TV.Splat(0f);
        TV a00 = TV.Load(r0), a10 = TV.Load(r1), a20 = TV.Load(r2), a30 = TV.Load(r3);
        TV a01 = chunks > 1 ? TV.Load(r0 + w) : zero, a11 = chunks > 1 ? TV.Load(r1 + w) : zero, a21 = chunks > 1 ? TV.Load(r2 + w) : zero, a31 = chunks > 1 ? TV.Load(r3 + w) : zero;
        TV a02 = chunks > 2 ? TV.Load(r0 + 2 * w) : zero, a12 = chunks > 2 ? TV.Load(r1 + 2 * w) : zero, a22 = chunks > 2 ? TV.Load(r2 + 2 * w) : zero, a32 = chunks > 2 ? TV.Load(r3 + 2 * w) : zero;
        TV a03 = chunks > 3 ? TV.Load(r0 + 3 * w) : zero, a13 = chunks > 3 ? TV.Load(r1 + 3 * w) : zero, a23 = chunks > 3 ? TV.Load(r2 + 3 * w) : zero, a33 = chunks > 3 ? TV.Load(r3 + 3 * w) : zero;
        for (int j = 0; j < nj; j++)
        {
            float w0 = wts[j], w1 = wts[lkp + j], w2 = wts[2 * lkp + j], w3 = wts[3 * lkp + j];
            if (w0 == 0f && w1 == 0f && w2 == 0f && w3 == 0f) continue;
            var s0 = TV.Splat(w0); var s1 = TV.Splat(w1); var s2 = TV.Splat(w2); var s3 = TV.Splat(w3);
            float* row = acc + (long)j * dp;
            TV.Store(TV.Add(TV.Fma(s1, a10, TV.Fma(s0, a00, TV.Load(row))), TV.Fma(s3, a30, TV.Mul(s2, a20))), row);
            if (chunks > 1) TV.Store(TV.Add(TV.Fma(s1, a11, TV.Fma(s0, a01, TV.Load(row + w))), TV.Fma(s3, a31, TV.Mul(s2, a21))), row + w);
            if (chunks > 2) TV.Store(TV.Add(TV.Fma(s1, a12, TV.Fma(s0, a02, TV.Load(row + 2 * w))), TV.Fma(s3, a32, TV.Mul(s2, a22))), row + 2 * w);
            if (chunks > 3) TV.Store(TV.Add(TV.Fma(s1, a13, TV.Fma(s0, a03, TV.Load(row + 3 * w))), TV.Fma(s3, a33, TV.Mul(s2, a23))), row + 3 * w);
        }
    }

    /// <summary>Scaled, masked scores of query row i turned into softmax weights in place: exp(s - max) / sum when the
    /// log-sum-exp is to be found (forward, which sets it: +infinity when no key is visible), exp(s - lse) when it is
    /// known (backward). Returns the number of leading keys that can be visible (the causal limit; 0 when none is).
    /// Masked keys get exactly 0. The exponentials are the SIMD Cephes exp, the cost that dominates at short head
    /// dimensions.</summary>
    static int MaskedExp<TV>(in AttentionSpec s, float* row, int b, int i, int* mask, int keyEnd, float scale, ref float lse, bool known) where TV : struct, ISimd<TV>
    {
        int limit = Math.Min(s.KeyLimit(i), keyEnd), w = TV.Count;
        int* m = mask == null ? null : mask + (long)b * s.KeyLength;
        if (known && float.IsPositiveInfinity(lse)) return 0;
        bool anyVisible = m == null && limit > 0;
        if (m != null) for (int j = 0; j < limit; j++) anyVisible |= m[j] != 0;
        if (!anyVisible) { if (!known) lse = float.PositiveInfinity; return 0; }
        // shift = max (forward) or lse (backward): e = exp(s * scale - shift).
        var vs = TV.Splat(scale);
        int k = 0;
        float shift;
        if (!known)
        {
            for (; k <= limit - w; k += w) TV.Store(TV.Mul(TV.Load(row + k), vs), row + k);
            for (; k < limit; k++) row[k] *= scale;
            if (m != null) for (int j = 0; j < limit; j++) if (m[j] == 0) row[j] = float.NegativeInfinity;
            shift = RowMax<TV>(row, limit);
        }
        else shift = lse;
        var vShift = TV.Splat(shift);
        k = 0;
        if (!known) for (; k <= limit - w; k += w) TV.Store(TV.Exp(TV.Sub(TV.Load(row + k), vShift)), row + k);
        else for (; k <= limit - w; k += w) TV.Store(TV.Exp(TV.Sub(TV.Mul(TV.Load(row + k), vs), vShift)), row + k);
        for (; k < limit; k++) row[k] = SimdMath.Exp((known ? row[k] * scale : row[k]) - shift);
        if (m != null) for (int j = 0; j < limit; j++) if (m[j] == 0) row[j] = 0f;
        if (!known)
        {
            float sum = RowSum<TV>(row, limit);
            lse = shift + MathF.Log(sum);
            var inv = TV.Splat(1f / sum);
            k = 0;
            for (; k <= limit - w; k += w) TV.Store(TV.Mul(TV.Load(row + k), inv), row + k);
            for (; k < limit; k++) row[k] *= 1f / sum;
        }
        return limit;
    }

    /// <summary>One past the last real key of batch row b: right-padded keys (the usual layout) are skipped without
    /// being scored. Keys before it that are masked are still handled by the mask.</summary>
    static int KeyEnd(in AttentionSpec s, ref int* mask, int b)
    {
        if (mask == null) return s.KeyLength;
        int* m = mask + (long)b * s.KeyLength;
        int end = s.KeyLength;
        while (end > 0 && m[end - 1] == 0) end--;
        // Without holes before the end the mask says nothing more: drop it, so the rows skip the per-key checks.
        bool holes = false;
        for (int j = 0; j < end && !holes; j++) holes = m[j] == 0;
        if (!holes) mask = null;
        return end;
    }

    /// <summary>Multiplies a row of weights by the dropout mask / (1 - p) (the same draw as forward).</summary>
    static void DropRow(in AttentionSpec s, float* row, int b, int h, int i, int limit)
    {
        DropoutRun(row, row, limit, s.DropoutSeed, s.DropoutIndex(b, h, i, 0), s.DropoutP);
    }

    static void AttentionForwardPair<TV>(in AttentionSpec s, int b, int h, float* q, float* k, float* v, int* mask, float* o, float* lse) where TV : struct, ISimd<TV>
    {
        int w = TV.Count, lq = s.QueryLength, lk = s.KeyLength, d = s.HeadDim;
        int lkp = (lk + w - 1) / w * w;
        float* kt = AttentionScratch((long)d * lkp + QueryBlock * lkp, out var keep);
        float* scores = kt + (long)d * lkp;
        TransposeHead(k + s.KIndex(b, 0, h), s.KRowStride, lk, d, kt, lkp);
        int keyEnd = KeyEnd(s, ref mask, b);
        float scale = s.Scale;
        float** qRows = stackalloc float*[QueryBlock];
        float** oRows = stackalloc float*[QueryBlock];
        float* vHead = v + s.VIndex(b, 0, h);
        for (int i0 = 0; i0 < lq; i0 += QueryBlock)
        {
            int rows = Math.Min(QueryBlock, lq - i0);
            for (int r = 0; r < rows; r++)
            {
                qRows[r] = q + s.QIndex(b, i0 + r, h);
                oRows[r] = o + s.OIndex(b, i0 + r, h);
            }
            int cols = (Math.Min(s.KeyLimit(i0 + rows - 1), keyEnd) + w - 1) / w * w;
            BlockTimesTransposed<TV>(qRows, rows, d, kt, lkp, cols, scores);
            int reach = 0;
            for (int r = 0; r < rows; r++)
            {
                int i = i0 + r;
                float* row = scores + (long)r * lkp;
                float l = 0f;
                int limit = MaskedExp<TV>(s, row, b, i, mask, keyEnd, scale, ref l, known: false);
                lse[((long)b * s.Heads + h) * lq + i] = l;
                if (s.DropoutP > 0f) DropRow(s, row, b, h, i, limit);
                for (int j = limit; j < cols; j++) row[j] = 0f;    // masked tail (and rows that see no key) weigh nothing
                reach = Math.Max(reach, limit);
            }
            WeightsTimesRows<TV>(scores, lkp, rows, reach, vHead, s.VRowStride, d, oRows, 1f);
        }
        GC.KeepAlive(keep);
    }

    static void AttentionBackwardPair<TV>(in AttentionSpec s, int b, int h, float* q, float* k, float* v, int* mask, float* o, float* lse, float* dO,
        float* dq, float* dk, float* dv) where TV : struct, ISimd<TV>
    {
        int w = TV.Count, lq = s.QueryLength, lk = s.KeyLength, d = s.HeadDim;
        int lkp = (lk + w - 1) / w * w, dp = (d + w - 1) / w * w;
        // Scratch: K^T and V^T [d, lkp], weights P and dP of a block [4, lkp] each, dK and dV sums [lk, dp] each.
        float* kt = AttentionScratch(2L * d * lkp + 2L * QueryBlock * lkp + 2L * lk * dp, out var keep);
        float* vt = kt + (long)d * lkp;
        float* pw = vt + (long)d * lkp;
        float* dpw = pw + QueryBlock * lkp;
        float* dkAcc = dpw + QueryBlock * lkp;
        float* dvAcc = dkAcc + (long)lk * dp;
        TransposeHead(k + s.KIndex(b, 0, h), s.KRowStride, lk, d, kt, lkp);
        TransposeHead(v + s.VIndex(b, 0, h), s.VRowStride, lk, d, vt, lkp);
        new Span<float>(dkAcc, 2 * lk * dp).Clear();
        int keyEnd = KeyEnd(s, ref mask, b);
        float scale = s.Scale;
        float** qRows = stackalloc float*[QueryBlock];
        float** gRows = stackalloc float*[QueryBlock];
        float** dqRows = stackalloc float*[QueryBlock];
        float* rowDot = stackalloc float[QueryBlock];
        float* kHead = k + s.KIndex(b, 0, h);
        for (int i0 = 0; i0 < lq; i0 += QueryBlock)
        {
            int rows = Math.Min(QueryBlock, lq - i0);
            for (int r = 0; r < rows; r++)
            {
                int i = i0 + r;
                qRows[r] = q + s.QIndex(b, i, h);
                gRows[r] = dO + s.OIndex(b, i, h);
                dqRows[r] = dq + s.QIndex(b, i, h);
                float* orow = o + s.OIndex(b, i, h);
                float dot = 0f;
                for (int c = 0; c < d; c++) dot += gRows[r][c] * orow[c];
                rowDot[r] = dot;   // rowsum(dO * O) = sum_j P_ij dP_ij, with or without dropout
            }
            int cols = (Math.Min(s.KeyLimit(i0 + rows - 1), keyEnd) + w - 1) / w * w;
            BlockTimesTransposed<TV>(qRows, rows, d, kt, lkp, cols, pw);
            BlockTimesTransposed<TV>(gRows, rows, d, vt, lkp, cols, dpw);
            int reach = 0;
            for (int r = 0; r < rows; r++)
            {
                int i = i0 + r;
                float* p = pw + (long)r * lkp, g = dpw + (long)r * lkp;
                float l = lse[((long)b * s.Heads + h) * lq + i];
                int limit = MaskedExp<TV>(s, p, b, i, mask, keyEnd, scale, ref l, known: true);
                for (int j = limit; j < cols; j++) { p[j] = 0f; g[j] = 0f; }
                if (s.DropoutP > 0f)
                {
                    // dS needs the undropped P with dP taken back through the mask: dP = mask / (1 - p) * dPdrop.
                    DropoutRun(g, g, limit, s.DropoutSeed, s.DropoutIndex(b, h, i, 0), s.DropoutP);
                }
                reach = Math.Max(reach, limit);
            }
            // dS = P * (dP - rowDot) * scale, in place of dP; then P becomes the dropped weights for dV += Pdrop^T dO.
            for (int r = 0; r < rows; r++)
            {
                float* p = pw + (long)r * lkp, g = dpw + (long)r * lkp;
                float rd = rowDot[r];
                for (int j = 0; j < reach; j++) g[j] = p[j] * (g[j] - rd) * scale;
                if (s.DropoutP > 0f) DropRow(s, p, b, h, i0 + r, reach);
            }
            AddOuterProducts<TV>(pw, lkp, rows, reach, gRows, d, dvAcc, dp);
            WeightsTimesRows<TV>(dpw, lkp, rows, reach, kHead, s.KRowStride, d, dqRows, 1f);
            AddOuterProducts<TV>(dpw, lkp, rows, reach, qRows, d, dkAcc, dp);
        }
        for (int j = 0; j < lk; j++)
        {
            float* dkRow = dk + s.KIndex(b, j, h), dvRow = dv + s.VIndex(b, j, h);
            for (int c = 0; c < d; c++) { dkRow[c] = dkAcc[(long)j * dp + c]; dvRow[c] = dvAcc[(long)j * dp + c]; }
        }
        GC.KeepAlive(keep);
    }
}
