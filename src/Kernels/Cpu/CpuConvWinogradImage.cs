using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace LsKd.Kernels.Cpu;

/// <summary>Winograd F(2x2, 3x3) for small planes (6x6 to 8x8, the 7x7 stage of the ResNets) on 512-bit vectors.
/// The row-of-tiles layout of <see cref="ForwardWinograd{TV}"/> fills a vector with 4 tiles of a 7x7 plane, so its
/// transforms ran at a quarter of the width and the pass was 1.9x slower than the lanes kernel. Here one vector holds
/// all 16 tiles of an image (lane 4r + t is tile (r, t)): each of a tile's 16 input values is gathered from the
/// channel's 49 floats by two two-source permutes (vpermt2ps) and a select, and each output vector is put back
/// together from the four 2x2 output phases by the same means, so the transforms run a whole image per vector
/// and no padded planes are built. The 16 GEMMs are the row-of-tiles pass's, over 3 images (48 columns) at once.</summary>
public unsafe partial class CpuBackend
{
    /// <summary>Permute tables for one plane size. Input: for tile position xi and lane L = 4r + t, the source float
    /// e = (2r + i - 1) W + 2t + j - 1 of the channel, read from its first 32 floats or its last 32 (Index, High),
    /// zero where the tile overhangs the plane (Keep). Output: vector q starts at float Start[q] (the last one
    /// overlaps the one before it so it stays inside the plane) and takes lane Index of the even-row (o00, o01) or
    /// odd-row (o10, o11) pair (Odd); New marks the floats no earlier vector wrote.</summary>
    internal sealed class ImageTileTables
    {
        public ImageTileTables(int h, int w)
        {
            H = h; W = w;
            int hw = h * w, tileRows = (h + 1) / 2, tileCols = (w + 1) / 2;
            for (int xi = 0; xi < 16; xi++)
                for (int lane = 0; lane < 16; lane++)
                {
                    int r = lane / 4, t = lane % 4, row = 2 * r + xi / 4 - 1, col = 2 * t + xi % 4 - 1, at = 16 * xi + lane;
                    bool inside = r < tileRows && t < tileCols && row >= 0 && row < h && col >= 0 && col < w;
                    int e = inside ? row * w + col : 0;
                    InIndex[at] = e < 32 ? e : e - (hw - 32);
                    InHigh[at] = e < 32 ? 0 : -1;
                    InKeep[at] = inside ? -1 : 0;
                }
            OutVectors = (hw + 15) / 16;
            OutStart = new int[OutVectors];
            OutIndex = GC.AllocateArray<int>(16 * OutVectors, pinned: true);
            OutOdd = GC.AllocateArray<int>(16 * OutVectors, pinned: true);
            OutNew = GC.AllocateArray<int>(16 * OutVectors, pinned: true);
            for (int q = 0; q < OutVectors; q++)
            {
                OutStart[q] = Math.Min(16 * q, hw - 16);
                for (int lane = 0; lane < 16; lane++)
                {
                    int e = OutStart[q] + lane, row = e / w, col = e % w, at = 16 * q + lane;
                    OutIndex[at] = (row / 2) * 4 + col / 2 + 16 * (col % 2);
                    OutOdd[at] = row % 2 == 1 ? -1 : 0;
                    OutNew[at] = e >= 16 * q ? -1 : 0;
                }
            }
        }

        public int H { get; }
        public int W { get; }
        public readonly int[] InIndex = GC.AllocateArray<int>(256, pinned: true);
        public readonly int[] InHigh = GC.AllocateArray<int>(256, pinned: true);
        public readonly int[] InKeep = GC.AllocateArray<int>(256, pinned: true);
        public readonly int OutVectors;
        public readonly int[] OutStart, OutIndex, OutOdd, OutNew;
    }

    ImageTileTables? _imageTiles;

    /// <summary>Whether the whole-image layout applies: 512-bit permutes, and planes whose 16 tiles fit one vector
    /// and whose 32-float windows lie inside one channel (36 to 64 floats).</summary>
    bool WinogradImageShape(in ConvSpec s) => _use512 && Avx512F.IsSupported && s.H == s.OutH && s.W == s.OutW && s.H is >= 6 and <= 8 && s.W is >= 6 and <= 8;

    void ForwardWinogradImage(ConvSpec spec, float* xp, float* wp, float* yp, bool accumulate, double* rowStats)
    {
        int c = spec.C, k = spec.K, hw = spec.H * spec.W;
        if (_imageTiles is not { } tab || tab.H != spec.H || tab.W != spec.W) _imageTiles = tab = new ImageTileTables(spec.H, spec.W);
        WinogradWeights(c, k, wp);
        // Three images make 48 columns, one 8 x 3 kernel call; V and M for them (16 (C + K) floats per lane) stay in L2.
        int batch = 16L * 16 * (c + k) * 3 <= 196608 ? 3 : 1;
        int ld = WinogradStride(batch * 16);
        if (_winogradOffsets.Length < c) _winogradOffsets = GC.AllocateArray<int>(c, pinned: true);
        for (int i = 0; i < c; i++) _winogradOffsets[i] = i * ld;
        long vPlane = WinogradPlane(c, ld), mPlane = WinogradPlane(k, ld), vSize = 16 * vPlane, mSize = 16 * mPlane;
        ForImages(spec.N, batch, (worker, blocks) =>
        {
            float* v = ColScratch(vSize + mSize, out _), m = v + vSize;
            fixed (float* u = _winogradU)
            fixed (int* offsets = _winogradOffsets, inIndex = tab.InIndex, inHigh = tab.InHigh, inKeep = tab.InKeep)
            fixed (int* outStart = tab.OutStart, outIndex = tab.OutIndex, outOdd = tab.OutOdd, outNew = tab.OutNew)
                while (blocks.Take(out _, out int n0, out int n1))
                    for (int n = n0; n < n1; n += batch)
                    {
                        int nb = Math.Min(batch, n1 - n), cols = nb * 16;
                        for (int b = 0; b < nb; b++)
                        {
                            float* x = xp + (long)(n + b) * c * hw;
                            for (int cc = 0; cc < c; cc++)
                                ImageInputTransform(x + (long)cc * hw, hw, inIndex, inHigh, inKeep, v + (long)cc * ld + 16 * b, vPlane);
                        }
                        int nextBatch = Math.Min(batch, spec.N - (n + nb));   // fetched into L2 during the GEMMs
                        for (int xi = 0; xi < 16; xi++)
                        {
                            if (nextBatch > 0) PrefetchPart(xp + (long)(n + nb) * c * hw, (long)nextBatch * c * hw, xi, 16);
                            float* at = u + (long)xi * c * k, vx = v + xi * vPlane, mx = m + xi * mPlane;
                            int j0 = 0;
                            for (; j0 + 48 <= cols; j0 += 48) DirectRows8x3<V512>(at, k, c, vx, offsets, j0, mx, ld);
                            for (; j0 < cols; j0 += 16) DirectChunk<V512>(at, k, c, vx, offsets, j0, mx, ld);
                        }
                        for (int b = 0; b < nb; b++)
                            for (int kk = 0; kk < k; kk++)
                            {
                                float* y = yp + ((long)(n + b) * k + kk) * hw;
                                ImageOutputTransform(m + (long)kk * ld + 16 * b, mPlane, tab.OutVectors, outStart, outIndex, outOdd, outNew, y, accumulate);
                                if (rowStats != null) RowStats<V512>(y, hw, rowStats + 2 * ((long)(n + b) * k + kk));
                            }
                    }
        });
    }

    /// <summary>V = B^T (d B) from the row-transformed tile rows a, b, c, d (4 vectors each): the 16 tile positions
    /// stored at o + xi xiStride. Shared by every 512-bit input transform.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void StoreInputColumns(float* o, long xiStride,
        Vector512<float> a0, Vector512<float> a1, Vector512<float> a2, Vector512<float> a3, Vector512<float> b0, Vector512<float> b1, Vector512<float> b2, Vector512<float> b3,
        Vector512<float> c0, Vector512<float> c1, Vector512<float> c2, Vector512<float> c3, Vector512<float> d0, Vector512<float> d1, Vector512<float> d2, Vector512<float> d3)
    {
        (a0 - c0).Store(o); (a1 - c1).Store(o + xiStride); (a2 - c2).Store(o + 2 * xiStride); (a3 - c3).Store(o + 3 * xiStride);
        o += 4 * xiStride;
        (b0 + c0).Store(o); (b1 + c1).Store(o + xiStride); (b2 + c2).Store(o + 2 * xiStride); (b3 + c3).Store(o + 3 * xiStride);
        o += 4 * xiStride;
        (c0 - b0).Store(o); (c1 - b1).Store(o + xiStride); (c2 - b2).Store(o + 2 * xiStride); (c3 - b3).Store(o + 3 * xiStride);
        o += 4 * xiStride;
        (b0 - d0).Store(o); (b1 - d1).Store(o + xiStride); (b2 - d2).Store(o + 2 * xiStride); (b3 - d3).Store(o + 3 * xiStride);
    }

    /// <summary>V[xi] = (B^T d B)[xi] for the 16 tiles of one channel (x, hw floats), one vector per xi at
    /// v + xi xiStride.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void ImageInputTransform(float* x, int hw, int* index, int* high, int* keep, float* v, long xiStride)
    {
        Vector512<float> x0 = Vector512.Load(x), x1 = Vector512.Load(x + 16), x2 = Vector512.Load(x + hw - 32), x3 = Vector512.Load(x + hw - 16);
        Vector512<float> a0, a1, a2, a3, b0, b1, b2, b3, c0, c1, c2, c3, d0, d1, d2, d3;   // rows of the tile: d B
        Row(0, out a0, out a1, out a2, out a3);
        Row(4, out b0, out b1, out b2, out b3);
        Row(8, out c0, out c1, out c2, out c3);
        Row(12, out d0, out d1, out d2, out d3);
        float* o = v;   // columns: B^T (d B)
        StoreInputColumns(o, xiStride, a0, a1, a2, a3, b0, b1, b2, b3, c0, c1, c2, c3, d0, d1, d2, d3);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        void Row(int xi, out Vector512<float> e0, out Vector512<float> e1, out Vector512<float> e2, out Vector512<float> e3)
        {
            Vector512<float> g0 = D(xi), g1 = D(xi + 1), g2 = D(xi + 2), g3 = D(xi + 3);
            e0 = g0 - g2; e1 = g1 + g2; e2 = g2 - g1; e3 = g1 - g3;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        Vector512<float> D(int xi)
        {
            var idx = Vector512.Load(index + 16 * xi);
            var fromLow = Avx512F.PermuteVar16x32x2(x0, idx, x1);
            var fromHigh = Avx512F.PermuteVar16x32x2(x2, idx, x3);
            return Vector512.ConditionalSelect(Vector512.Load(high + 16 * xi).AsSingle(), fromHigh, fromLow) & Vector512.Load(keep + 16 * xi).AsSingle();
        }
    }

    /// <summary>y (+)= A^T M A for the 16 tiles of one output channel (m + xi xiStride), written as whole vectors
    /// of the plane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void ImageOutputTransform(float* m, long xiStride, int vectors, int* start, int* index, int* odd, int* fresh, float* y, bool accumulate)
    {
        Vector512<float> f00, f01, f10, f11, f20, f21, f30, f31;
        Columns(m, out f00, out f01);
        Columns(m + 4 * xiStride, out f10, out f11);
        Columns(m + 8 * xiStride, out f20, out f21);
        Columns(m + 12 * xiStride, out f30, out f31);
        Vector512<float> o00 = f00 + f10 + f20, o01 = f01 + f11 + f21, o10 = f10 - f20 - f30, o11 = f11 - f21 - f31;
        for (int q = 0; q < vectors; q++)
        {
            var idx = Vector512.Load(index + 16 * q);
            var value = Vector512.ConditionalSelect(Vector512.Load(odd + 16 * q).AsSingle(),
                Avx512F.PermuteVar16x32x2(o10, idx, o11), Avx512F.PermuteVar16x32x2(o00, idx, o01));
            float* dst = y + start[q];
            // Written values of an overlapping last vector are the same as before; added ones must count once.
            if (accumulate) value = Vector512.Load(dst) + (value & Vector512.Load(fresh + 16 * q).AsSingle());
            value.Store(dst);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        void Columns(float* p, out Vector512<float> f0, out Vector512<float> f1)
        {
            Vector512<float> m0 = Vector512.Load(p), m1 = Vector512.Load(p + xiStride), m2 = Vector512.Load(p + 2 * xiStride), m3 = Vector512.Load(p + 3 * xiStride);
            f0 = m0 + m1 + m2;
            f1 = m1 - m2 - m3;
        }
    }

    /// <summary>Column permutes for <see cref="InputTransformRows"/> at one row width: lane t of column vector j is
    /// x[2t + j - 1] (Index), zero outside the row (Keep).</summary>
    internal sealed class RowTileTables
    {
        public RowTileTables(int w)
        {
            W = w;
            for (int j = 0; j < 4; j++)
                for (int t = 0; t < 16; t++)
                {
                    int col = 2 * t + j - 1;
                    bool inside = col >= 0 && col < w;
                    Index[16 * j + t] = inside ? col : 0;
                    Keep[16 * j + t] = inside ? -1 : 0;
                }
        }

        public int W { get; }
        public readonly int[] Index = GC.AllocateArray<int>(64, pinned: true);
        public readonly int[] Keep = GC.AllocateArray<int>(64, pinned: true);
    }

    RowTileTables? _rowTiles;

    /// <summary>Whether <see cref="InputTransformRows"/> applies: 512-bit permutes and rows of at most 32 floats (one
    /// vector of tiles).</summary>
    bool RowTilesShape(in ConvSpec s) => _use512 && Avx512F.IsSupported && s.W <= 32;

    RowTileTables RowTiles(int w)
    {
        if (_rowTiles is not { } tab || tab.W != w) _rowTiles = tab = new RowTileTables(w);
        return tab;
    }

    /// <summary>The row-of-tiles input transform (the layout of <see cref="InputTransform{TV}"/>) straight from the
    /// NCHW image, for rows of up to 32 floats: each input row is read once by masked loads (nothing past the row
    /// is touched), its four column vectors over the tiles (x[2t + j - 1]) come from two-source permutes, and its
    /// row transform d B serves the two tile rows that share it. The padded phase planes the general path copies
    /// the image into first cost as much as the transform itself on 14x14 and 28x28 planes (short rows: the copy
    /// is loop overhead).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void InputTransformRows(float* x, int h, int w, int channels, int tileRows, int tileCols, RowTileTables tab, float* v, int ld, long xiStride)
    {
        int hw = h * w;
        var lowMask = Vector512.LessThan(Vector512.Create(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), Vector512.Create(w)).AsSingle();
        var highMask = Vector512.LessThan(Vector512.Create(16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31), Vector512.Create(w)).AsSingle();
        fixed (int* index = tab.Index, keep = tab.Keep)
        {
            Vector512<int> i0 = Vector512.Load(index), i1 = Vector512.Load(index + 16), i2 = Vector512.Load(index + 32), i3 = Vector512.Load(index + 48);
            Vector512<float> k0 = Vector512.Load(keep).AsSingle(), k1 = Vector512.Load(keep + 16).AsSingle(), k2 = Vector512.Load(keep + 32).AsSingle(), k3 = Vector512.Load(keep + 48).AsSingle();
            for (int c = 0; c < channels; c++)
            {
                float* xc = x + (long)c * hw;
                // Padded row 2r + i of tile row r is image row 2r + i - 1: rows a, b carry over from the last tile row.
                Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
                Row(xc, 0, out var b0, out var b1, out var b2, out var b3);
                for (int r = 0; r < tileRows; r++)
                {
                    Row(xc, 2 * r + 1, out var c0, out var c1, out var c2, out var c3);
                    Row(xc, 2 * r + 2, out var d0, out var d1, out var d2, out var d3);
                    float* o = v + (long)c * ld + (long)r * tileCols;
                    StoreInputColumns(o, xiStride, a0, a1, a2, a3, b0, b1, b2, b3, c0, c1, c2, c3, d0, d1, d2, d3);
                    a0 = c0; a1 = c1; a2 = c2; a3 = c3;
                    b0 = d0; b1 = d1; b2 = d2; b3 = d3;
                }
            }

            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            void Row(float* xc, int row, out Vector512<float> e0, out Vector512<float> e1, out Vector512<float> e2, out Vector512<float> e3)
            {
                if (row >= h) { e0 = e1 = e2 = e3 = default; return; }
                float* src = xc + (long)row * w;
                Vector512<float> lo = Avx512F.MaskLoad(src, lowMask, default), hi = Avx512F.MaskLoad(src + 16, highMask, default);
                Vector512<float> d0 = Avx512F.PermuteVar16x32x2(lo, i0, hi) & k0, d1 = Avx512F.PermuteVar16x32x2(lo, i1, hi) & k1;
                Vector512<float> d2 = Avx512F.PermuteVar16x32x2(lo, i2, hi) & k2, d3 = Avx512F.PermuteVar16x32x2(lo, i3, hi) & k3;
                e0 = d0 - d2; e1 = d1 + d2; e2 = d2 - d1; e3 = d1 - d3;
            }
        }
    }

    /// <summary>The row-of-tiles output transform (<see cref="OutputTransform{TV}"/>) for rows of up to 32 floats:
    /// each output row's even and odd columns are interleaved by two two-source permutes and written (or added)
    /// with masked stores of exactly the row, so no row spills or goes through scratch.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void OutputTransformRows(float* m, long xiStride, int tileRows, int tileCols, int outH, int outW, float* y, bool accumulate)
    {
        var lanes = Vector512.Create(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        var lowMask = Vector512.LessThan(lanes, Vector512.Create(outW)).AsSingle();
        var highMask = Vector512.LessThan(lanes + Vector512.Create(16), Vector512.Create(outW)).AsSingle();
        var lowOrder = Vector512.Create(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        var highOrder = Vector512.Create(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
        bool twoVectors = outW > 16;
        for (int r = 0; r < tileRows; r++)
        {
            float* p = m + (long)r * tileCols;
            Vector512<float> f00, f01, f10, f11, f20, f21, f30, f31;
            Columns(p, out f00, out f01);
            Columns(p + 4 * xiStride, out f10, out f11);
            Columns(p + 8 * xiStride, out f20, out f21);
            Columns(p + 12 * xiStride, out f30, out f31);
            float* dst = y + (long)2 * r * outW;
            WriteRow(f00 + f10 + f20, f01 + f11 + f21, dst);
            if (2 * r + 1 < outH) WriteRow(f10 - f20 - f30, f11 - f21 - f31, dst + outW);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        void Columns(float* p, out Vector512<float> f0, out Vector512<float> f1)
        {
            Vector512<float> m0 = Vector512.Load(p), m1 = Vector512.Load(p + xiStride), m2 = Vector512.Load(p + 2 * xiStride), m3 = Vector512.Load(p + 3 * xiStride);
            f0 = m0 + m1 + m2;
            f1 = m1 - m2 - m3;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        void WriteRow(Vector512<float> even, Vector512<float> odd, float* dst)
        {
            var low = Avx512F.PermuteVar16x32x2(even, lowOrder, odd);
            if (accumulate) low += Avx512F.MaskLoad(dst, lowMask, default);
            Avx512F.MaskStore(dst, lowMask, low);
            if (!twoVectors) return;
            var high = Avx512F.PermuteVar16x32x2(even, highOrder, odd);
            if (accumulate) high += Avx512F.MaskLoad(dst + 16, highMask, default);
            Avx512F.MaskStore(dst + 16, highMask, high);
        }
    }

    /// <summary>Permutes for the tile-row pairs of planes at most 16 floats wide (<see cref="InputTransformRowPairs"/>):
    /// lane L &lt; T (T tiles a row) is tile L of the first row, lane T + t tile t of the second; input column vector j
    /// takes x[2t + j - 1] from the first row's source (Index &lt; 16) or the second's (16 + ...), zero outside the
    /// plane (Keep); output Order h interleaves half h's even and odd columns into one output row.</summary>
    internal sealed class RowPairTables
    {
        public RowPairTables(int w)
        {
            W = w;
            int tileCols = (w + 1) / 2;
            for (int j = 0; j < 4; j++)
                for (int lane = 0; lane < 16; lane++)
                {
                    int half = lane / tileCols, t = lane % tileCols, col = 2 * t + j - 1;
                    bool inside = half < 2 && col >= 0 && col < w;
                    Index[16 * j + lane] = inside ? 16 * half + col : 0;
                    Keep[16 * j + lane] = inside ? -1 : 0;
                }
            for (int half = 0; half < 2; half++)
                for (int e = 0; e < 16; e++)
                {
                    int t = Math.Min(e / 2, tileCols - 1);
                    Order[16 * half + e] = 16 * (e % 2) + half * tileCols + t;
                }
        }

        public int W { get; }
        public readonly int[] Index = GC.AllocateArray<int>(64, pinned: true);
        public readonly int[] Keep = GC.AllocateArray<int>(64, pinned: true);
        public readonly int[] Order = GC.AllocateArray<int>(32, pinned: true);
    }

    RowPairTables? _rowPairs;

    RowPairTables RowPairs(int w)
    {
        if (_rowPairs is not { } tab || tab.W != w) _rowPairs = tab = new RowPairTables(w);
        return tab;
    }

    /// <summary><see cref="InputTransformRows"/> for rows of at most 16 floats (at most 8 tiles): one vector holds two
    /// rows of tiles, each of its column vectors one two-source permute of the two image rows that feed it, so the
    /// transform and its 16 stores run on whole vectors (14x14: 14 of 16 lanes, against 7).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void InputTransformRowPairs(float* x, int h, int w, int channels, int tileRows, int tileCols, RowPairTables tab, float* v, int ld, long xiStride)
    {
        int hw = h * w;
        var rowMask = Vector512.LessThan(Vector512.Create(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), Vector512.Create(w)).AsSingle();
        fixed (int* index = tab.Index, keep = tab.Keep)
        {
            Vector512<int> i0 = Vector512.Load(index), i1 = Vector512.Load(index + 16), i2 = Vector512.Load(index + 32), i3 = Vector512.Load(index + 48);
            Vector512<float> k0 = Vector512.Load(keep).AsSingle(), k1 = Vector512.Load(keep + 16).AsSingle(), k2 = Vector512.Load(keep + 32).AsSingle(), k3 = Vector512.Load(keep + 48).AsSingle();
            for (int c = 0; c < channels; c++)
            {
                float* xc = x + (long)c * hw;
                for (int r = 0; r < tileRows; r += 2)
                {
                    // Padded row 2r + i of the first tile row is image row 2r + i - 1, of the second 2r + i + 1.
                    Vector512<float> q0 = Row(xc, 2 * r - 1), q1 = Row(xc, 2 * r), q2 = Row(xc, 2 * r + 1), q3 = Row(xc, 2 * r + 2), q4 = Row(xc, 2 * r + 3), q5 = Row(xc, 2 * r + 4);
                    Transform(q0, q2, out var a0, out var a1, out var a2, out var a3);
                    Transform(q1, q3, out var b0, out var b1, out var b2, out var b3);
                    Transform(q2, q4, out var c0, out var c1, out var c2, out var c3);
                    Transform(q3, q5, out var d0, out var d1, out var d2, out var d3);
                    float* o = v + (long)c * ld + (long)r * tileCols;
                    StoreInputColumns(o, xiStride, a0, a1, a2, a3, b0, b1, b2, b3, c0, c1, c2, c3, d0, d1, d2, d3);
                }
            }

            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            Vector512<float> Row(float* xc, int row) => row >= 0 && row < h ? Avx512F.MaskLoad(xc + (long)row * w, rowMask, default) : default;

            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            void Transform(Vector512<float> first, Vector512<float> second, out Vector512<float> e0, out Vector512<float> e1, out Vector512<float> e2, out Vector512<float> e3)
            {
                Vector512<float> g0 = Avx512F.PermuteVar16x32x2(first, i0, second) & k0, g1 = Avx512F.PermuteVar16x32x2(first, i1, second) & k1;
                Vector512<float> g2 = Avx512F.PermuteVar16x32x2(first, i2, second) & k2, g3 = Avx512F.PermuteVar16x32x2(first, i3, second) & k3;
                e0 = g0 - g2; e1 = g1 + g2; e2 = g2 - g1; e3 = g1 - g3;
            }
        }
    }

    /// <summary><see cref="OutputTransformRows"/> for rows of at most 16 floats: each M vector holds two rows of tiles,
    /// so one pass of transforms writes four output rows (each one permute of the even and odd results, one masked
    /// store).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void OutputTransformRowPairs(float* m, long xiStride, int tileRows, int tileCols, int outH, int outW, RowPairTables tab, float* y, bool accumulate)
    {
        var mask = Vector512.LessThan(Vector512.Create(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), Vector512.Create(outW)).AsSingle();
        fixed (int* order = tab.Order)
        {
            Vector512<int> first = Vector512.Load(order), second = Vector512.Load(order + 16);
            for (int r = 0; r < tileRows; r += 2)
            {
                float* p = m + (long)r * tileCols;
                Vector512<float> f00, f01, f10, f11, f20, f21, f30, f31;
                Columns(p, out f00, out f01);
                Columns(p + 4 * xiStride, out f10, out f11);
                Columns(p + 8 * xiStride, out f20, out f21);
                Columns(p + 12 * xiStride, out f30, out f31);
                Vector512<float> evenRowEven = f00 + f10 + f20, evenRowOdd = f01 + f11 + f21, oddRowEven = f10 - f20 - f30, oddRowOdd = f11 - f21 - f31;
                float* dst = y + (long)2 * r * outW;
                WriteRow(Avx512F.PermuteVar16x32x2(evenRowEven, first, evenRowOdd), dst, 2 * r);
                WriteRow(Avx512F.PermuteVar16x32x2(oddRowEven, first, oddRowOdd), dst + outW, 2 * r + 1);
                WriteRow(Avx512F.PermuteVar16x32x2(evenRowEven, second, evenRowOdd), dst + 2 * outW, 2 * r + 2);
                WriteRow(Avx512F.PermuteVar16x32x2(oddRowEven, second, oddRowOdd), dst + 3 * outW, 2 * r + 3);
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        void Columns(float* p, out Vector512<float> f0, out Vector512<float> f1)
        {
            Vector512<float> m0 = Vector512.Load(p), m1 = Vector512.Load(p + xiStride), m2 = Vector512.Load(p + 2 * xiStride), m3 = Vector512.Load(p + 3 * xiStride);
            f0 = m0 + m1 + m2;
            f1 = m1 - m2 - m3;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        void WriteRow(Vector512<float> row, float* dst, int index)
        {
            if (index >= outH) return;
            if (accumulate) row += Avx512F.MaskLoad(dst, mask, default);
            Avx512F.MaskStore(dst, mask, row);
        }
    }
}
