using System.Runtime.CompilerServices;

namespace LsKd.Kernels.Cpu;

/// <summary>The <see cref="ConvAlgorithm.Winograd"/> convolution: F(2x2, 3x3) for 3x3 kernels at stride 1 and pad 1
/// (Lavin and Gray, 2016). Each 2x2 output tile comes from a 4x4 input tile through 16 products per channel pair
/// instead of 36, so the multiply-adds fall 2.25x; the price is three transforms that run at memory speed:
///   U = G g G^T per (k, c) (the weights, once per call),
///   V = B^T d B per (c, tile) (the input, from the padded planes split into their even/odd rows and columns, where a
///       4x4 tile's 16 values are 16 contiguous vectors over the tiles of a row),
///   M_xi = U_xi V_xi, 16 GEMMs [K, C] x [C, tiles] on the direct 8 x 3 kernel of the grid convolution,
///   y = A^T M A per (k, tile), interleaved back into rows.
/// The input gradient of such a convolution is the forward of the flipped kernel, so it runs here too.</summary>
public unsafe partial class CpuBackend
{
    float[] _winogradU = [];
    int[] _winogradOffsets = [];

    void ForwardWinograd(ConvSpec spec, float* xp, float* wp, float* yp, bool accumulate, double* rowStats)
    {
        if (WinogradImageShape(spec)) ForwardWinogradImage(spec, xp, wp, yp, accumulate, rowStats);
        else if (_use512) ForwardWinograd<V512>(spec, xp, wp, yp, accumulate, rowStats);
        else ForwardWinograd<V256>(spec, xp, wp, yp, accumulate, rowStats);
    }

    /// <summary>A row stride of an odd number of 64-byte lines: the kernels read 16 to 64 rows at once, and a stride
    /// of an even number of lines maps them onto few L1 sets (28x28 with 224 floats: 1.9 ms per pass at 2 threads
    /// instead of 1.3 at 14x14 with 176; 128 and 224 were the slow cases).</summary>
    static int WinogradStride(int floats)
    {
        int lines = (floats + 15) / 16;
        return (lines % 2 == 0 ? lines + 1 : lines) * 16;
    }

    /// <summary>The tiling both passes share: ceil(out / 2) tiles per row and column (the last tile of an odd size
    /// computes one dropped row or column); as many images side by side in the GEMMs as keep the transformed tiles
    /// (16 (C + K) floats per tile) within ~640 KB of L2; and the row stride of V, M and the transformed dy, past
    /// the tiles by one vector (the transforms' last vector spills). Fills the per-channel row offsets into V.</summary>
    /// <summary>The stride of one tile position's plane of rows rows of ld floats: one cache line past the rows, so
    /// that the 16 planes the transforms touch together do not fall on the same L1 sets (64 channels at 7x7 made
    /// them exactly 12 KB apart).</summary>
    static long WinogradPlane(int rows, int ld) => (long)rows * ld + 16;

    (int TileRows, int TileCols, int Tiles, int Batch, int Ld) WinogradLayout<TV>(in ConvSpec s) where TV : struct, ISimd<TV>
    {
        int tileRows = (s.OutH + 1) / 2, tileCols = (s.OutW + 1) / 2, tiles = tileRows * tileCols;
        int batch = Math.Clamp(10240 / ((s.C + s.K) * tiles), 1, 16);
        int ld = WinogradStride(batch * tiles + TV.Count);
        if (_winogradOffsets.Length < s.C) _winogradOffsets = GC.AllocateArray<int>(s.C, pinned: true);
        for (int i = 0; i < s.C; i++) _winogradOffsets[i] = i * ld;
        return (tileRows, tileCols, tiles, batch, ld);
    }

    void ForwardWinograd<TV>(ConvSpec spec, float* xp, float* wp, float* yp, bool accumulate, double* rowStats) where TV : struct, ISimd<TV>
    {
        int c = spec.C, k = spec.K, outH = spec.OutH, outW = spec.OutW, hw = spec.H * spec.W, ohw = outH * outW;
        var (tileRows, tileCols, tiles, batch, ld) = WinogradLayout<TV>(spec);
        WinogradWeights(c, k, wp);
        // The padded planes split into row/column phases are the stride-2 grid's layout.
        var phaseSpec = new ConvSpec(spec.N, c, spec.H, spec.W, k, 3, 3, 2, 1);
        var grid = Grid(phaseSpec);
        // Planes of the 16 tile positions one cache line apart past whole 4 KB multiples: the transforms touch all 16
        // at once, and planes a multiple of 4 KB apart share their L1 sets.
        long vPlane = WinogradPlane(c, ld), mPlane = WinogradPlane(k, ld);
        long slot = (grid.ScratchSize + 15) / 16 * 16, vSize = 16 * vPlane, mSize = 16 * mPlane;
        var rowTiles = typeof(TV) == typeof(V512) && RowTilesShape(spec) ? RowTiles(spec.W) : null;
        var rowPairs = rowTiles != null && spec.W <= 16 ? RowPairs(spec.W) : null;   // two rows of tiles a vector
        ForImages(spec.N, batch, (worker, blocks) =>
        {
            float* planes = ColScratch(slot + vSize + mSize + 2 * TV.Count, out _);
            float* v = planes + slot, m = v + vSize, row = m + mSize;
            // Zero once: the planes' padding is never written, and the spill columns of V only ever hold finite values.
            new Span<float>(planes, (int)(slot + vSize)).Clear();
            fixed (float* u = _winogradU)
            fixed (int* offsets = _winogradOffsets)
                while (blocks.Take(out _, out int n0, out int n1))
                    for (int n = n0; n < n1; n += batch)
                    {
                        int nb = Math.Min(batch, n1 - n), cols = nb * tiles;
                        for (int b = 0; b < nb; b++)
                        {
                            float* x = xp + (long)(n + b) * c * hw;
                            if (rowPairs != null) InputTransformRowPairs(x, spec.H, spec.W, c, tileRows, tileCols, rowPairs, v + (long)b * tiles, ld, vPlane);
                            else if (rowTiles != null) InputTransformRows(x, spec.H, spec.W, c, tileRows, tileCols, rowTiles, v + (long)b * tiles, ld, vPlane);
                            else
                            {
                                grid.Fill(phaseSpec, x, planes);
                                InputTransform<TV>(grid, planes, c, tileRows, tileCols, v + (long)b * tiles, ld, vPlane);
                            }
                        }
                        int nextBatch = Math.Min(batch, spec.N - (n + nb));   // fetched into L2 during the GEMMs
                        for (int xi = 0; xi < 16; xi++)
                        {
                            if (nextBatch > 0) PrefetchPart(xp + (long)(n + nb) * c * hw, (long)nextBatch * c * hw, xi, 16);
                            float* at = u + (long)xi * c * k, vx = v + xi * vPlane, mx = m + xi * mPlane;
                            int j0 = 0;
                            for (; j0 + 3 * TV.Count <= cols; j0 += 3 * TV.Count) DirectRows8x3<TV>(at, k, c, vx, offsets, j0, mx, ld);
                            for (; j0 < cols; j0 += TV.Count) DirectChunk<TV>(at, k, c, vx, offsets, j0, mx, ld);
                        }
                        for (int b = 0; b < nb; b++)
                        {
                            float* y = yp + (long)(n + b) * k * ohw;
                            for (int kk = 0; kk < k; kk++)
                            {
                                if (rowPairs != null) OutputTransformRowPairs(m + (long)kk * ld + (long)b * tiles, mPlane, tileRows, tileCols, outH, outW, rowPairs, y + (long)kk * ohw, accumulate);
                                else if (rowTiles != null) OutputTransformRows(m + (long)kk * ld + (long)b * tiles, mPlane, tileRows, tileCols, outH, outW, y + (long)kk * ohw, accumulate);
                                else OutputTransform<TV>(m + (long)kk * ld + (long)b * tiles, mPlane, tileRows, tileCols, outH, outW, y + (long)kk * ohw, y + (long)k * ohw, row, accumulate);
                                if (rowStats != null) RowStats<TV>(y + (long)kk * ohw, ohw, rowStats + 2 * ((long)(n + b) * k + kk));
                            }
                        }
                    }
        });
    }

    /// <summary>U = G g G^T for every (k, c), stored as 16 blocks [C][K] (one per tile position xi), the layout the
    /// direct kernel broadcasts its weights from. G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1].</summary>
    void WinogradWeights(int c, int k, float* w)
    {
        long size = 16L * c * k;
        if (_winogradU.Length < size) _winogradU = GC.AllocateArray<float>((int)size, pinned: true);
        var u = _winogradU;
        _parallel.For(k, (long)c * 64, (k0, k1) =>
        {
            Span<float> t = stackalloc float[12];
            for (int kk = k0; kk < k1; kk++)
                for (int cc = 0; cc < c; cc++)
                {
                    float* g = w + ((long)kk * c + cc) * 9;
                    for (int j = 0; j < 3; j++)   // t = G g, 4 x 3
                    {
                        float g0 = g[j], g1 = g[3 + j], g2 = g[6 + j];
                        t[j] = g0; t[3 + j] = 0.5f * (g0 + g1 + g2); t[6 + j] = 0.5f * (g0 - g1 + g2); t[9 + j] = g2;
                    }
                    for (int i = 0; i < 4; i++)   // U = t G^T, 4 x 4
                    {
                        float t0 = t[3 * i], t1 = t[3 * i + 1], t2 = t[3 * i + 2];
                        long at = ((long)(4 * i) * c + cc) * k + kk, step = (long)c * k;
                        u[at] = t0; u[at + step] = 0.5f * (t0 + t1 + t2); u[at + 2 * step] = 0.5f * (t0 - t1 + t2); u[at + 3 * step] = t2;
                    }
                }
        });
    }

    /// <summary>V[xi][c][tile] = (B^T d B)[xi] for one image, B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]. Tile (r, t)
    /// reads padded rows 2r..2r+3 and columns 2t..2t+3: in the phase planes, row 2r+i is phase row r + i/2 of parity
    /// i % 2 and column 2t+j is phase column t + j/2 of parity j % 2, so over t each of the 16 values is one
    /// contiguous vector. Rows of tiles go in order: the lanes past the last tile of a row land on the next row's
    /// first tiles and are overwritten by it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void InputTransform<TV>(ConvGrid grid, float* planes, int channels, int tileRows, int tileCols, float* v, int ld, long xiStride) where TV : struct, ISimd<TV>
    {
        int pw = grid.PhaseW;
        long phase = (long)grid.PhaseH * pw;
        for (int c = 0; c < channels; c++)
        {
            float* ee = planes + c * 4 * phase, eo = ee + phase, oe = eo + phase, oo = oe + phase;   // (row, column) parity
            for (int r = 0; r < tileRows; r++)
                for (int t0 = 0; t0 < tileCols; t0 += TV.Count)
                {
                    long p0 = (long)r * pw + t0, p1 = p0 + pw;
                    // Row i of the tile, columns j = 0..3, as (i parity, row offset): 0 (e, p0), 1 (o, p0), 2 (e, p1), 3 (o, p1).
                    TV a0, a1, a2, a3, b0, b1, b2, b3, c0, c1, c2, c3, d0, d1, d2, d3;
                    RowTransform(ee + p0, eo + p0, out a0, out a1, out a2, out a3);
                    RowTransform(oe + p0, oo + p0, out b0, out b1, out b2, out b3);
                    RowTransform(ee + p1, eo + p1, out c0, out c1, out c2, out c3);
                    RowTransform(oe + p1, oo + p1, out d0, out d1, out d2, out d3);
                    float* o = v + (long)c * ld + (long)r * tileCols + t0;
                    TV.Store(TV.Sub(a0, c0), o); TV.Store(TV.Sub(a1, c1), o + xiStride); TV.Store(TV.Sub(a2, c2), o + 2 * xiStride); TV.Store(TV.Sub(a3, c3), o + 3 * xiStride);
                    o += 4 * xiStride;
                    TV.Store(TV.Add(b0, c0), o); TV.Store(TV.Add(b1, c1), o + xiStride); TV.Store(TV.Add(b2, c2), o + 2 * xiStride); TV.Store(TV.Add(b3, c3), o + 3 * xiStride);
                    o += 4 * xiStride;
                    TV.Store(TV.Sub(c0, b0), o); TV.Store(TV.Sub(c1, b1), o + xiStride); TV.Store(TV.Sub(c2, b2), o + 2 * xiStride); TV.Store(TV.Sub(c3, b3), o + 3 * xiStride);
                    o += 4 * xiStride;
                    TV.Store(TV.Sub(b0, d0), o); TV.Store(TV.Sub(b1, d1), o + xiStride); TV.Store(TV.Sub(b2, d2), o + 2 * xiStride); TV.Store(TV.Sub(b3, d3), o + 3 * xiStride);
                }
        }
    }

    /// <summary>d B for one tile row: d_j at even[t + j/2] (j even) or odd[t + j/2] (j odd).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void RowTransform<TV>(float* even, float* odd, out TV e0, out TV e1, out TV e2, out TV e3) where TV : struct, ISimd<TV>
    {
        TV d0 = TV.Load(even), d1 = TV.Load(odd), d2 = TV.Load(even + 1), d3 = TV.Load(odd + 1);
        e0 = TV.Sub(d0, d2); e1 = TV.Add(d1, d2); e2 = TV.Sub(d2, d1); e3 = TV.Sub(d1, d3);
    }

    /// <summary>y (+)= A^T m A for the tiles of one output channel, A^T = [1 1 1 0; 0 1 -1 -1]: m[xi] at m + xi
    /// xiStride + tile. Each output row's even and odd columns are interleaved into 2 Count floats. Written rows of at
    /// most one vector of tiles go straight into y: the floats past the row land on later rows of this image, which
    /// are written after it (rows and channels go in order); a row whose spill would pass the image's end
    /// (imageEnd), a wider one, or one that is added goes through rowScratch with its exact length.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void OutputTransform<TV>(float* m, long xiStride, int tileRows, int tileCols, int outH, int outW, float* y, float* imageEnd, float* rowScratch, bool accumulate) where TV : struct, ISimd<TV>
    {
        bool direct = !accumulate && tileCols <= TV.Count;   // one vector per row: the rows are written in order
        for (int r = 0; r < tileRows; r++)
            for (int t0 = 0; t0 < tileCols; t0 += TV.Count)
            {
                float* p = m + (long)r * tileCols + t0;
                TV f00, f01, f10, f11, f20, f21, f30, f31;
                ColumnTransform(p, xiStride, out f00, out f01);
                ColumnTransform(p + 4 * xiStride, xiStride, out f10, out f11);
                ColumnTransform(p + 8 * xiStride, xiStride, out f20, out f21);
                ColumnTransform(p + 12 * xiStride, xiStride, out f30, out f31);
                int n = Math.Min(2 * TV.Count, outW - 2 * t0);
                float* dst = y + (long)2 * r * outW + 2 * t0;
                WriteRow(TV.Add(TV.Add(f00, f10), f20), TV.Add(TV.Add(f01, f11), f21), dst, n);
                if (2 * r + 1 < outH) WriteRow(TV.Sub(TV.Sub(f10, f20), f30), TV.Sub(TV.Sub(f11, f21), f31), dst + outW, n);
            }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        void WriteRow(TV even, TV odd, float* dst, int n)
        {
            if (direct && dst + 2 * TV.Count <= imageEnd) { TV.StoreInterleaved(even, odd, dst); return; }
            TV.StoreInterleaved(even, odd, rowScratch);
            if (accumulate) AddRun(dst, rowScratch, n); else CopyRun(rowScratch, dst, n);
        }
    }

    /// <summary>m A for one row of a tile: (m0 + m1 + m2, m1 - m2 - m3).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void ColumnTransform<TV>(float* p, long xiStride, out TV f0, out TV f1) where TV : struct, ISimd<TV>
    {
        TV m0 = TV.Load(p), m1 = TV.Load(p + xiStride), m2 = TV.Load(p + 2 * xiStride), m3 = TV.Load(p + 3 * xiStride);
        f0 = TV.Add(TV.Add(m0, m1), m2);
        f1 = TV.Sub(TV.Sub(m1, m2), m3);
    }

    void WeightGradWinograd(ConvSpec spec, float* xp, float* dyp, float* dwp, bool accumulate)
    {
        if (WinogradChannelsLastShape(spec)) WeightGradWinogradChannelsLast(spec, xp, dyp, dwp, accumulate);
        else if (_use512) WeightGradWinograd<V512>(spec, xp, dyp, dwp, accumulate);
        else WeightGradWinograd<V256>(spec, xp, dyp, dwp, accumulate);
    }

    /// <summary>dW = G^T S G with S_xi[k][c] = sum over images and tiles of (A^T-side transform of dy)_xi[k][tile]
    /// (B^T d B)_xi[c][tile]: the adjoint of the forward's tile algebra. The input tiles are the forward's V; a dy
    /// tile (2x2, from dy's phase planes: row 2r + a, column 2t + b is phase (a, b) at (r, t)) becomes
    /// A g A^T with A = [1 0; 1 1; 1 -1; 0 -1]; the 16 reductions over tiles run on the grid's dot-product kernel
    /// (both operands contiguous along the tiles). One S per image block, summed in block order.</summary>
    void WeightGradWinograd<TV>(ConvSpec spec, float* xp, float* dyp, float* dwp, bool accumulate) where TV : struct, ISimd<TV>
    {
        int c = spec.C, k = spec.K, hw = spec.H * spec.W, ohw = spec.OutH * spec.OutW;
        var (tileRows, tileCols, tiles, batch, ld) = WinogradLayout<TV>(spec);
        var xSpec = new ConvSpec(spec.N, c, spec.H, spec.W, k, 3, 3, 2, 1);
        var dySpec = new ConvSpec(spec.N, k, spec.OutH, spec.OutW, k, 1, 1, 2, 0);
        ConvGrid xGrid = Grid(xSpec), dyGrid = Grid(dySpec);
        long xSlot = (xGrid.ScratchSize + 15) / 16 * 16, dySlot = (dyGrid.ScratchSize + 15) / 16 * 16;
        long vSize = 16L * c * ld, gSize = 16L * k * ld;
        int sSize = 16 * c * k;
        var imageBlocks = new ImageBlocks(spec.N, batch);
        var partials = new float[imageBlocks.Count][];
        ForImages(imageBlocks, (worker, blocks) =>
        {
            float* xPlanes = ColScratch(xSlot + dySlot + vSize + gSize, out _);
            float* dyPlanes = xPlanes + xSlot, v = dyPlanes + dySlot, gt = v + vSize;
            new Span<float>(xPlanes, (int)(xSlot + dySlot + vSize + gSize)).Clear();
            fixed (int* offsets = _winogradOffsets)
                while (blocks.Take(out int block, out int n0, out int n1))
                    fixed (float* sp = partials[block] = BlockPartial(block, sSize))
                        for (int n = n0; n < n1; n += batch)
                        {
                            int nb = Math.Min(batch, n1 - n), cols = nb * tiles;
                            for (int b = 0; b < nb; b++)
                            {
                                xGrid.Fill(xSpec, xp + (long)(n + b) * c * hw, xPlanes);
                                InputTransform<TV>(xGrid, xPlanes, c, tileRows, tileCols, v + (long)b * tiles, ld, (long)c * ld);
                                dyGrid.Fill(dySpec, dyp + (long)(n + b) * k * ohw, dyPlanes);
                                GradientTransform<TV>(dyGrid, dyPlanes, k, tileRows, tileCols, gt + (long)b * tiles, ld);
                            }
                            // Past the last tile V holds spilled (finite) values; zero dy's there so they add nothing.
                            for (long rowStart = 0; rowStart < gSize; rowStart += ld) new Span<float>(gt + rowStart + cols, ld - cols).Clear();
                            for (int xi = 0; xi < 16; xi++)
                                ShiftedDots<TV>(v + (long)xi * c * ld, 0, offsets, gt + (long)xi * k * ld, ld, 1, k, c, sp + (long)xi * k * c);
                        }
        });
        WinogradWeightGradientFromS(SumPartials(partials, sSize), c, k, kMajor: true, dwp, accumulate);
    }

    /// <summary>dW (+)= G^T S_xi G per (k, c) from the 16 summed S blocks, each [K][C] (kMajor) or [C][K].</summary>
    void WinogradWeightGradientFromS(float[] sum, int c, int k, bool kMajor, float* dwp, bool accumulate)
    {
        _parallel.For(k, (long)c * 64, (k0, k1) =>
        {
            Span<float> t = stackalloc float[12];
            long step = (long)k * c;
            for (int kk = k0; kk < k1; kk++)
                for (int cc = 0; cc < c; cc++)
                {
                    long at = kMajor ? (long)kk * c + cc : (long)cc * k + kk;
                    for (int a = 0; a < 4; a++)   // t = S G, 4 x 3: G^T's columns are (1, 0, 0), (1/2, 1/2, 1/2), (1/2, -1/2, 1/2), (0, 0, 1)
                    {
                        float s0 = sum[at + (4 * a) * step], s1 = sum[at + (4 * a + 1) * step], s2 = sum[at + (4 * a + 2) * step], s3 = sum[at + (4 * a + 3) * step];
                        t[3 * a] = s0 + 0.5f * (s1 + s2); t[3 * a + 1] = 0.5f * (s1 - s2); t[3 * a + 2] = 0.5f * (s1 + s2) + s3;
                    }
                    float* d = dwp + ((long)kk * c + cc) * 9;
                    for (int j = 0; j < 3; j++)   // G^T t, 3 x 3
                    {
                        float t0 = t[j], t1 = t[3 + j], t2 = t[6 + j], t3 = t[9 + j];
                        float r0 = t0 + 0.5f * (t1 + t2), r1 = 0.5f * (t1 - t2), r2 = 0.5f * (t1 + t2) + t3;
                        if (accumulate) { d[j] += r0; d[3 + j] += r1; d[6 + j] += r2; }
                        else { d[j] = r0; d[3 + j] = r1; d[6 + j] = r2; }
                    }
                }
        });
    }

    /// <summary>G_xi[k][tile] = (A g A^T)[xi] for one image's dy, A = [1 0; 1 1; 1 -1; 0 -1]: tile (r, t) is dy rows
    /// 2r, 2r + 1 and columns 2t, 2t + 1, one vector over t from each of dy's four phase planes (zero past an odd
    /// edge). Rows of tiles go in order, as in <see cref="InputTransform{TV}"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void GradientTransform<TV>(ConvGrid grid, float* planes, int channels, int tileRows, int tileCols, float* g, int ld) where TV : struct, ISimd<TV>
    {
        int pw = grid.PhaseW;
        long phase = (long)grid.PhaseH * pw, xiStride = (long)channels * ld;
        for (int k = 0; k < channels; k++)
        {
            float* ee = planes + k * 4 * phase, eo = ee + phase, oe = eo + phase, oo = oe + phase;
            for (int r = 0; r < tileRows; r++)
                for (int t0 = 0; t0 < tileCols; t0 += TV.Count)
                {
                    long p = (long)r * pw + t0;
                    TV g00 = TV.Load(ee + p), g01 = TV.Load(eo + p), g10 = TV.Load(oe + p), g11 = TV.Load(oo + p);
                    // h = A g (4 x 2), then h A^T (4 x 4): columns (h0, h0 + h1, h0 - h1, -h1).
                    TV h00 = g00, h01 = g01, h10 = TV.Add(g00, g10), h11 = TV.Add(g01, g11), h20 = TV.Sub(g00, g10), h21 = TV.Sub(g01, g11);
                    TV h30 = TV.Sub(default, g10), h31 = TV.Sub(default, g11);
                    float* o = g + (long)k * ld + (long)r * tileCols + t0;
                    Row(h00, h01, o); Row(h10, h11, o + 4 * xiStride); Row(h20, h21, o + 8 * xiStride); Row(h30, h31, o + 12 * xiStride);
                }
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        void Row(TV a, TV b, float* o)
        {
            TV.Store(a, o); TV.Store(TV.Add(a, b), o + xiStride); TV.Store(TV.Sub(a, b), o + 2 * xiStride); TV.Store(TV.Sub(default, b), o + 3 * xiStride);
        }
    }
}
