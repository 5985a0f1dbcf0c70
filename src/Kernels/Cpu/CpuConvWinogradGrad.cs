using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace LsKd.Kernels.Cpu;

/// <summary>The Winograd F(2x2, 3x3) weight gradient with channels in the vector lanes, on 512-bit vectors for
/// 16-channel multiples. S_xi[c][k] = sum over tiles of V_xi[tile][c] G_xi[tile][k] is a GEMM whose reduction runs
/// over every tile of a batch of images; with the tiles in the lanes (the forward's layout) each of the 16 C x K
/// dot products per batch ends in a horizontal sum, and that cost as much as the multiply-adds (28x28: 2.6 ms
/// against 1.8 for the shifted dot products). Here an image and its dy are first transposed to [position][channel]
/// (16 x 16 blocks through two-source permutes) into zero-bordered planes, the transforms run on vectors of 16
/// channels per tile, and the GEMM keeps an 8 x 2 or 16 x 1 block of S in registers over all the batch's tiles,
/// broadcasting V from contiguous channels: one add into the block's partial per batch, no horizontal sums.
/// dW = G^T S G at the end, as in the tiles-in-lanes version.</summary>
public unsafe partial class CpuBackend
{
    /// <summary>Prefetches part (of parts) of floats floats at p into L2, a cache line at a time: the Winograd passes
    /// fetch the next batch's input during the current batch's 16 GEMMs (ResNet-20 step 100.3 against 107.1 ms
    /// median, faster in all 6 alternating rounds; the transposes and row transforms had waited on memory).</summary>
    static void PrefetchPart(float* p, long floats, int part, int parts)
    {
        if (!Sse.IsSupported) return;
        long lines = (floats + 15) / 16, l0 = lines * part / parts, l1 = lines * (part + 1) / parts;
        for (long l = l0; l < l1; l++) Sse.Prefetch1(p + 16 * l);
    }

    bool WinogradChannelsLastShape(in ConvSpec s) => _use512 && Avx512F.IsSupported && s.C % 16 == 0 && s.K % 16 == 0;

    void WeightGradWinogradChannelsLast(ConvSpec spec, float* xp, float* dyp, float* dwp, bool accumulate)
    {
        int c = spec.C, k = spec.K, h = spec.H, w = spec.W, hw = h * w, outH = spec.OutH, outW = spec.OutW, ohw = outH * outW;
        int tileRows = (outH + 1) / 2, tileCols = (outW + 1) / 2, tiles = tileRows * tileCols;
        // Tile (r, t) reads padded rows 2r .. 2r + 3 and columns 2t .. 2t + 3 (x at padded (i + 1, j + 1)), and dy
        // rows 2r, 2r + 1, columns 2t, 2t + 1; the planes cover them with zeros past the edges.
        int xRows = 2 * tileRows + 2, xCols = 2 * tileCols + 2, dyRows = 2 * tileRows, dyCols = 2 * tileCols;
        long xPlane = (long)xRows * xCols * c, dyPlane = (long)dyRows * dyCols * k;
        int batch = Math.Clamp(10240 / ((c + k) * tiles), 1, 16);
        long vPlane = WinogradPlane(batch * tiles, c), gPlane = WinogradPlane(batch * tiles, k), vSize = 16 * vPlane, gSize = 16 * gPlane;
        int sSize = 16 * c * k;
        var imageBlocks = new ImageBlocks(spec.N, batch);
        var partials = new float[imageBlocks.Count][];
        ForImages(imageBlocks, (worker, blocks) =>
        {
            float* xT = ColScratch(xPlane + dyPlane + vSize + gSize, out _);
            float* dyT = xT + xPlane, vt = dyT + dyPlane, gt = vt + vSize;
            new Span<float>(xT, (int)(xPlane + dyPlane)).Clear();   // the borders are never written
            while (blocks.Take(out int block, out int n0, out int n1))
                fixed (float* sp = partials[block] = BlockPartial(block, sSize))
                    for (int n = n0; n < n1; n += batch)
                    {
                        int nb = Math.Min(batch, n1 - n), cols = nb * tiles;
                        for (int b = 0; b < nb; b++)
                        {
                            TransposeToChannelsLast(xp + (long)(n + b) * c * hw, c, h, w, xT + ((long)xCols + 1) * c, xCols);
                            TransposeToChannelsLast(dyp + (long)(n + b) * k * ohw, k, outH, outW, dyT, dyCols);
                            for (int r = 0; r < tileRows; r++)
                                for (int t = 0; t < tileCols; t++)
                                {
                                    long tile = (long)b * tiles + r * tileCols + t;
                                    for (int cg = 0; cg < c; cg += 16)
                                        InputTileChannels(xT + ((long)2 * r * xCols + 2 * t) * c + cg, (long)xCols * c, c, vt + tile * c + cg, vPlane);
                                    for (int kg = 0; kg < k; kg += 16)
                                        GradientTileChannels(dyT + ((long)2 * r * dyCols + 2 * t) * k + kg, (long)dyCols * k, k, gt + tile * k + kg, gPlane);
                                }
                        }
                        // The next batch's images and dy come from memory: fetch a sixteenth of them into L2 during
                        // each of the 16 GEMMs, so the transposes that start the next batch find them there.
                        int nextBatch = Math.Min(batch, spec.N - (n + nb));
                        for (int xi = 0; xi < 16; xi++)
                        {
                            if (nextBatch > 0)
                            {
                                PrefetchPart(xp + (long)(n + nb) * c * hw, (long)nextBatch * c * hw, xi, 16);
                                PrefetchPart(dyp + (long)(n + nb) * k * ohw, (long)nextBatch * k * ohw, xi, 16);
                            }
                            float* vx = vt + xi * vPlane, gx = gt + xi * gPlane, sx = sp + (long)xi * c * k;
                            for (int k0 = 0; k0 < k; )
                                if (k - k0 >= 32)
                                {
                                    for (int c0 = 0; c0 < c; c0 += 8) TileDots8x2(vx + c0, c, gx + k0, k, cols, sx + (long)c0 * k + k0, k);
                                    k0 += 32;
                                }
                                else
                                {
                                    for (int c0 = 0; c0 < c; c0 += 16) TileDots16x1(vx + c0, c, gx + k0, k, cols, sx + (long)c0 * k + k0, k);
                                    k0 += 16;
                                }
                        }
                    }
        });
        WinogradWeightGradientFromS(SumPartials(partials, sSize), c, k, kMajor: false, dwp, accumulate);
    }

    /// <summary>dst[(y row stride + x) channels + ch] = src[ch][y][x] for an NCHW image with a multiple of 16
    /// channels: 16 channels x 16 positions at a time, masked past the last position. The transpose is four
    /// butterfly stages that swap the off-diagonal blocks of 8, 4, 2 and 1 lanes between row pairs, two two-source
    /// permutes per pair.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void TransposeToChannelsLast(float* src, int channels, int h, int w, float* dst, int rowStride)
    {
        int hw = h * w;
        var lane = Vector512.Create(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        // Stage d: row i (bit d clear) keeps its lanes with bit d clear and takes row i + d's from lane - d (Low);
        // row i + d takes row i's from lane + d and keeps its own with bit d set (High).
        Vector512<int> low8 = Vector512.Create(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
        Vector512<int> high8 = Vector512.Create(8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
        Vector512<int> low4 = Vector512.Create(0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27);
        Vector512<int> high4 = Vector512.Create(4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
        Vector512<int> low2 = Vector512.Create(0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29);
        Vector512<int> high2 = Vector512.Create(2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31);
        Vector512<int> low1 = Vector512.Create(0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30);
        Vector512<int> high1 = Vector512.Create(1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31);
        Vector512<float>* m = stackalloc Vector512<float>[16];
        for (int p0 = 0; p0 < hw; p0 += 16)
        {
            int count = Math.Min(16, hw - p0), y0 = p0 / w, x0 = p0 - y0 * w;
            var mask = Vector512.LessThan(lane, Vector512.Create(count)).AsSingle();
            for (int c0 = 0; c0 < channels; c0 += 16)
            {
                float* s = src + (long)c0 * hw + p0;
                var r0 = Avx512F.MaskLoad(s + 0L * hw, mask, default);
                var r1 = Avx512F.MaskLoad(s + 1L * hw, mask, default);
                var r2 = Avx512F.MaskLoad(s + 2L * hw, mask, default);
                var r3 = Avx512F.MaskLoad(s + 3L * hw, mask, default);
                var r4 = Avx512F.MaskLoad(s + 4L * hw, mask, default);
                var r5 = Avx512F.MaskLoad(s + 5L * hw, mask, default);
                var r6 = Avx512F.MaskLoad(s + 6L * hw, mask, default);
                var r7 = Avx512F.MaskLoad(s + 7L * hw, mask, default);
                var r8 = Avx512F.MaskLoad(s + 8L * hw, mask, default);
                var r9 = Avx512F.MaskLoad(s + 9L * hw, mask, default);
                var r10 = Avx512F.MaskLoad(s + 10L * hw, mask, default);
                var r11 = Avx512F.MaskLoad(s + 11L * hw, mask, default);
                var r12 = Avx512F.MaskLoad(s + 12L * hw, mask, default);
                var r13 = Avx512F.MaskLoad(s + 13L * hw, mask, default);
                var r14 = Avx512F.MaskLoad(s + 14L * hw, mask, default);
                var r15 = Avx512F.MaskLoad(s + 15L * hw, mask, default);
                var t1a = Avx512F.PermuteVar16x32x2(r0, low8, r8); var t1b = Avx512F.PermuteVar16x32x2(r0, high8, r8);
                var t2a = Avx512F.PermuteVar16x32x2(r1, low8, r9); var t2b = Avx512F.PermuteVar16x32x2(r1, high8, r9);
                var t3a = Avx512F.PermuteVar16x32x2(r2, low8, r10); var t3b = Avx512F.PermuteVar16x32x2(r2, high8, r10);
                var t4a = Avx512F.PermuteVar16x32x2(r3, low8, r11); var t4b = Avx512F.PermuteVar16x32x2(r3, high8, r11);
                var t5a = Avx512F.PermuteVar16x32x2(r4, low8, r12); var t5b = Avx512F.PermuteVar16x32x2(r4, high8, r12);
                var t6a = Avx512F.PermuteVar16x32x2(r5, low8, r13); var t6b = Avx512F.PermuteVar16x32x2(r5, high8, r13);
                var t7a = Avx512F.PermuteVar16x32x2(r6, low8, r14); var t7b = Avx512F.PermuteVar16x32x2(r6, high8, r14);
                var t8a = Avx512F.PermuteVar16x32x2(r7, low8, r15); var t8b = Avx512F.PermuteVar16x32x2(r7, high8, r15);
                var t9a = Avx512F.PermuteVar16x32x2(t1a, low4, t5a); var t9b = Avx512F.PermuteVar16x32x2(t1a, high4, t5a);
                var t10a = Avx512F.PermuteVar16x32x2(t2a, low4, t6a); var t10b = Avx512F.PermuteVar16x32x2(t2a, high4, t6a);
                var t11a = Avx512F.PermuteVar16x32x2(t3a, low4, t7a); var t11b = Avx512F.PermuteVar16x32x2(t3a, high4, t7a);
                var t12a = Avx512F.PermuteVar16x32x2(t4a, low4, t8a); var t12b = Avx512F.PermuteVar16x32x2(t4a, high4, t8a);
                var t13a = Avx512F.PermuteVar16x32x2(t1b, low4, t5b); var t13b = Avx512F.PermuteVar16x32x2(t1b, high4, t5b);
                var t14a = Avx512F.PermuteVar16x32x2(t2b, low4, t6b); var t14b = Avx512F.PermuteVar16x32x2(t2b, high4, t6b);
                var t15a = Avx512F.PermuteVar16x32x2(t3b, low4, t7b); var t15b = Avx512F.PermuteVar16x32x2(t3b, high4, t7b);
                var t16a = Avx512F.PermuteVar16x32x2(t4b, low4, t8b); var t16b = Avx512F.PermuteVar16x32x2(t4b, high4, t8b);
                var t17a = Avx512F.PermuteVar16x32x2(t9a, low2, t11a); var t17b = Avx512F.PermuteVar16x32x2(t9a, high2, t11a);
                var t18a = Avx512F.PermuteVar16x32x2(t10a, low2, t12a); var t18b = Avx512F.PermuteVar16x32x2(t10a, high2, t12a);
                var t19a = Avx512F.PermuteVar16x32x2(t9b, low2, t11b); var t19b = Avx512F.PermuteVar16x32x2(t9b, high2, t11b);
                var t20a = Avx512F.PermuteVar16x32x2(t10b, low2, t12b); var t20b = Avx512F.PermuteVar16x32x2(t10b, high2, t12b);
                var t21a = Avx512F.PermuteVar16x32x2(t13a, low2, t15a); var t21b = Avx512F.PermuteVar16x32x2(t13a, high2, t15a);
                var t22a = Avx512F.PermuteVar16x32x2(t14a, low2, t16a); var t22b = Avx512F.PermuteVar16x32x2(t14a, high2, t16a);
                var t23a = Avx512F.PermuteVar16x32x2(t13b, low2, t15b); var t23b = Avx512F.PermuteVar16x32x2(t13b, high2, t15b);
                var t24a = Avx512F.PermuteVar16x32x2(t14b, low2, t16b); var t24b = Avx512F.PermuteVar16x32x2(t14b, high2, t16b);
                var t25a = Avx512F.PermuteVar16x32x2(t17a, low1, t18a); var t25b = Avx512F.PermuteVar16x32x2(t17a, high1, t18a);
                var t26a = Avx512F.PermuteVar16x32x2(t17b, low1, t18b); var t26b = Avx512F.PermuteVar16x32x2(t17b, high1, t18b);
                var t27a = Avx512F.PermuteVar16x32x2(t19a, low1, t20a); var t27b = Avx512F.PermuteVar16x32x2(t19a, high1, t20a);
                var t28a = Avx512F.PermuteVar16x32x2(t19b, low1, t20b); var t28b = Avx512F.PermuteVar16x32x2(t19b, high1, t20b);
                var t29a = Avx512F.PermuteVar16x32x2(t21a, low1, t22a); var t29b = Avx512F.PermuteVar16x32x2(t21a, high1, t22a);
                var t30a = Avx512F.PermuteVar16x32x2(t21b, low1, t22b); var t30b = Avx512F.PermuteVar16x32x2(t21b, high1, t22b);
                var t31a = Avx512F.PermuteVar16x32x2(t23a, low1, t24a); var t31b = Avx512F.PermuteVar16x32x2(t23a, high1, t24a);
                var t32a = Avx512F.PermuteVar16x32x2(t23b, low1, t24b); var t32b = Avx512F.PermuteVar16x32x2(t23b, high1, t24b);
                m[0] = t25a;
                m[1] = t25b;
                m[2] = t26a;
                m[3] = t26b;
                m[4] = t27a;
                m[5] = t27b;
                m[6] = t28a;
                m[7] = t28b;
                m[8] = t29a;
                m[9] = t29b;
                m[10] = t30a;
                m[11] = t30b;
                m[12] = t31a;
                m[13] = t31b;
                m[14] = t32a;
                m[15] = t32b;
                for (int i = 0, y = y0, x = x0; i < count; i++)
                {
                    m[i].Store(dst + ((long)y * rowStride + x) * channels + c0);
                    if (++x == w) { x = 0; y++; }
                }
            }
        }
    }

    /// <summary>V[xi] = (B^T d B)[xi] for one tile and 16 channels: d[i][j] at x + i rowStride + j channels (the
    /// channels-last padded plane), V[xi] at v + xi xiStride.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void InputTileChannels(float* x, long rowStride, int channels, float* v, long xiStride)
    {
        Vector512<float> a0, a1, a2, a3, b0, b1, b2, b3, c0, c1, c2, c3, d0, d1, d2, d3;
        Row(x, out a0, out a1, out a2, out a3);
        Row(x + rowStride, out b0, out b1, out b2, out b3);
        Row(x + 2 * rowStride, out c0, out c1, out c2, out c3);
        Row(x + 3 * rowStride, out d0, out d1, out d2, out d3);
        float* o = v;
        StoreInputColumns(o, xiStride, a0, a1, a2, a3, b0, b1, b2, b3, c0, c1, c2, c3, d0, d1, d2, d3);

        void Row(float* p, out Vector512<float> e0, out Vector512<float> e1, out Vector512<float> e2, out Vector512<float> e3)
        {
            Vector512<float> g0 = Vector512.Load(p), g1 = Vector512.Load(p + channels), g2 = Vector512.Load(p + 2 * channels), g3 = Vector512.Load(p + 3 * channels);
            e0 = g0 - g2; e1 = g1 + g2; e2 = g2 - g1; e3 = g1 - g3;
        }
    }

    /// <summary>G[xi] = (A g A^T)[xi] for one tile of dy and 16 channels, A = [1 0; 1 1; 1 -1; 0 -1]: g[a][b] at
    /// dy + a rowStride + b channels, G[xi] at g + xi xiStride (the tiles-in-lanes GradientTransform's algebra).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void GradientTileChannels(float* dy, long rowStride, int channels, float* g, long xiStride)
    {
        Vector512<float> g00 = Vector512.Load(dy), g01 = Vector512.Load(dy + channels);
        Vector512<float> g10 = Vector512.Load(dy + rowStride), g11 = Vector512.Load(dy + rowStride + channels);
        Row(g00, g01, g);
        Row(g00 + g10, g01 + g11, g + 4 * xiStride);
        Row(g00 - g10, g01 - g11, g + 8 * xiStride);
        Row(-g10, -g11, g + 12 * xiStride);

        void Row(Vector512<float> a, Vector512<float> b, float* o)
        {
            a.Store(o); (a + b).Store(o + xiStride); (a - b).Store(o + 2 * xiStride); (-b).Store(o + 3 * xiStride);
        }
    }

    /// <summary>s[i][0 .. 32) += sum over tiles t of v[t][i] g[t][0 .. 32) for i &lt; 8: 16 accumulators, two loads and
    /// eight broadcasts per 16 multiply-adds.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void TileDots8x2(float* v, int ldv, float* g, int ldg, int tiles, float* s, int lds)
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
        Vector512<float> b0 = default, b1 = default, b2 = default, b3 = default, b4 = default, b5 = default, b6 = default, b7 = default;
        for (int t = 0; t < tiles; t++, v += ldv, g += ldg)
        {
            Vector512<float> p = Vector512.Load(g), q = Vector512.Load(g + 16), e;
            e = Vector512.Create(v[0]); a0 = Vector512.FusedMultiplyAdd(e, p, a0); b0 = Vector512.FusedMultiplyAdd(e, q, b0);
            e = Vector512.Create(v[1]); a1 = Vector512.FusedMultiplyAdd(e, p, a1); b1 = Vector512.FusedMultiplyAdd(e, q, b1);
            e = Vector512.Create(v[2]); a2 = Vector512.FusedMultiplyAdd(e, p, a2); b2 = Vector512.FusedMultiplyAdd(e, q, b2);
            e = Vector512.Create(v[3]); a3 = Vector512.FusedMultiplyAdd(e, p, a3); b3 = Vector512.FusedMultiplyAdd(e, q, b3);
            e = Vector512.Create(v[4]); a4 = Vector512.FusedMultiplyAdd(e, p, a4); b4 = Vector512.FusedMultiplyAdd(e, q, b4);
            e = Vector512.Create(v[5]); a5 = Vector512.FusedMultiplyAdd(e, p, a5); b5 = Vector512.FusedMultiplyAdd(e, q, b5);
            e = Vector512.Create(v[6]); a6 = Vector512.FusedMultiplyAdd(e, p, a6); b6 = Vector512.FusedMultiplyAdd(e, q, b6);
            e = Vector512.Create(v[7]); a7 = Vector512.FusedMultiplyAdd(e, p, a7); b7 = Vector512.FusedMultiplyAdd(e, q, b7);
        }
        Add(s, a0, b0); Add(s + lds, a1, b1); Add(s + 2 * lds, a2, b2); Add(s + 3 * lds, a3, b3);
        Add(s + 4 * lds, a4, b4); Add(s + 5 * lds, a5, b5); Add(s + 6 * lds, a6, b6); Add(s + 7 * lds, a7, b7);

        static void Add(float* o, Vector512<float> a, Vector512<float> b)
        {
            (Vector512.Load(o) + a).Store(o);
            (Vector512.Load(o + 16) + b).Store(o + 16);
        }
    }

    /// <summary>s[i][0 .. 16) += sum over tiles t of v[t][i] g[t][0 .. 16) for i &lt; 16: 16 accumulators, one load and
    /// sixteen broadcasts per 16 multiply-adds (16-channel outputs).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void TileDots16x1(float* v, int ldv, float* g, int ldg, int tiles, float* s, int lds)
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
        Vector512<float> a8 = default, a9 = default, a10 = default, a11 = default, a12 = default, a13 = default, a14 = default, a15 = default;
        for (int t = 0; t < tiles; t++, v += ldv, g += ldg)
        {
            Vector512<float> p = Vector512.Load(g);
            a0 = Vector512.FusedMultiplyAdd(Vector512.Create(v[0]), p, a0); a1 = Vector512.FusedMultiplyAdd(Vector512.Create(v[1]), p, a1);
            a2 = Vector512.FusedMultiplyAdd(Vector512.Create(v[2]), p, a2); a3 = Vector512.FusedMultiplyAdd(Vector512.Create(v[3]), p, a3);
            a4 = Vector512.FusedMultiplyAdd(Vector512.Create(v[4]), p, a4); a5 = Vector512.FusedMultiplyAdd(Vector512.Create(v[5]), p, a5);
            a6 = Vector512.FusedMultiplyAdd(Vector512.Create(v[6]), p, a6); a7 = Vector512.FusedMultiplyAdd(Vector512.Create(v[7]), p, a7);
            a8 = Vector512.FusedMultiplyAdd(Vector512.Create(v[8]), p, a8); a9 = Vector512.FusedMultiplyAdd(Vector512.Create(v[9]), p, a9);
            a10 = Vector512.FusedMultiplyAdd(Vector512.Create(v[10]), p, a10); a11 = Vector512.FusedMultiplyAdd(Vector512.Create(v[11]), p, a11);
            a12 = Vector512.FusedMultiplyAdd(Vector512.Create(v[12]), p, a12); a13 = Vector512.FusedMultiplyAdd(Vector512.Create(v[13]), p, a13);
            a14 = Vector512.FusedMultiplyAdd(Vector512.Create(v[14]), p, a14); a15 = Vector512.FusedMultiplyAdd(Vector512.Create(v[15]), p, a15);
        }
        Add(s, a0); Add(s + lds, a1); Add(s + 2 * lds, a2); Add(s + 3 * lds, a3);
        Add(s + 4 * lds, a4); Add(s + 5 * lds, a5); Add(s + 6 * lds, a6); Add(s + 7 * lds, a7);
        Add(s + 8 * lds, a8); Add(s + 9 * lds, a9); Add(s + 10 * lds, a10); Add(s + 11 * lds, a11);
        Add(s + 12 * lds, a12); Add(s + 13 * lds, a13); Add(s + 14 * lds, a14); Add(s + 15 * lds, a15);

        static void Add(float* o, Vector512<float> a) => (Vector512.Load(o) + a).Store(o);
    }
}
