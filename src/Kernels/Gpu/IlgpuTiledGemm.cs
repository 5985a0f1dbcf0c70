using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime.Cuda;

namespace LsKd.Kernels.Gpu;

using FView = ILGPU.Runtime.ArrayView1D<float, ILGPU.Stride1D.Dense>;

/// <summary>Where a tiled GEMM reads A [M, K] and B [K, N] and writes C [M, N] of matrix z. Dense matrices, and the
/// three convolution passes as implicit GEMMs (the im2col matrix is gathered while a tile is loaded, never stored).
/// Loads are only asked for in range; Store gets alpha-free sums, and atomic when K is split over several groups.
/// A4 / B4: four consecutive elements along the operand's contiguous direction (k for a k-major A, else m; n for an
/// n-major B, else k) in one 16-byte load, asked for only where TileParams.VectorA / VectorB is set (the host found
/// the operand contiguous and 16-byte aligned) and all four are in range.</summary>
public interface IGemmOperands
{
    float A(int z, int m, int k);
    float B(int z, int k, int n);
    F4 A4(int z, int m, int k);
    F4 B4(int z, int k, int n);
    void Store(int z, int m, int n, float sum, bool atomic);
}

/// <summary>Launch shape of a tiled GEMM. Side: threads per side of a group (8 or 16, a power of two, SideLog its
/// log2). AKMajor: consecutive k of A are adjacent in memory (else consecutive m); BNMajor: consecutive n of B are
/// adjacent (else consecutive k): each thread loads runs of four neighbours along that direction. VectorA / VectorB:
/// those runs may be read as one 16-byte vector. K is cut into Splits chunks of KChunk (a multiple of the tile
/// depth), one group per chunk, summed atomically.</summary>
public readonly record struct TileParams(int M, int N, int K, int Side, int SideLog, int AKMajor, int BNMajor, int Splits, int KChunk, int VectorA = 0, int VectorB = 0);

/// <summary>Four floats: one 16-byte load or store (ld/st .v4.f32 in the PTX).</summary>
public struct F4
{
    public float X, Y, Z, W;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public F4(float x, float y, float z, float w) { X = x; Y = y; Z = z; W = w; }

    /// <summary>Element j; j is a constant where it is called, so this folds to a register.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly float Get(int j) => j == 0 ? X : j == 1 ? Y : j == 2 ? Z : W;
}

/// <summary>Eight floats in registers: one thread's slice of a tile row or column.</summary>
public struct R8
{
    public float X0, X1, X2, X3, X4, X5, X6, X7;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public R8(float x0, float x1, float x2, float x3, float x4, float x5, float x6, float x7)
    { X0 = x0; X1 = x1; X2 = x2; X3 = x3; X4 = x4; X5 = x5; X6 = x6; X7 = x7; }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public R8(F4 lo, F4 hi)
    { X0 = lo.X; X1 = lo.Y; X2 = lo.Z; X3 = lo.W; X4 = hi.X; X5 = hi.Y; X6 = hi.Z; X7 = hi.W; }

    public readonly F4 Lo => new(X0, X1, X2, X3);
    public readonly F4 Hi => new(X4, X5, X6, X7);

    /// <summary>this + s b, element-wise (ptxas contracts the product and sum into one FMA).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly R8 AddScaled(float s, in R8 b) =>
        new(X0 + s * b.X0, X1 + s * b.X1, X2 + s * b.X2, X3 + s * b.X3, X4 + s * b.X4, X5 + s * b.X5, X6 + s * b.X6, X7 + s * b.X7);
}

/// <summary>An 8 x 8 block of accumulators, all in registers (structs are scalars to ILGPU; arrays would go to local
/// memory, which the PTX test rules out).</summary>
public struct Acc8x8
{
    public R8 R0, R1, R2, R3, R4, R5, R6, R7;

    /// <summary>The outer product a b^T added in: 64 multiply-adds from 16 loaded values.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void AddOuter(in R8 a, in R8 b)
    {
        R0 = R0.AddScaled(a.X0, b); R1 = R1.AddScaled(a.X1, b); R2 = R2.AddScaled(a.X2, b); R3 = R3.AddScaled(a.X3, b);
        R4 = R4.AddScaled(a.X4, b); R5 = R5.AddScaled(a.X5, b); R6 = R6.AddScaled(a.X6, b); R7 = R7.AddScaled(a.X7, b);
    }
}

/// <summary>One thread's share of staging the A and B tiles of a k step into shared memory: two runs of four
/// neighbours per operand (its load map, from <see cref="IlgpuTiledGemm"/>'s LoadMap), fetched with 16-byte loads
/// where the operand allows, and stored in the SIMT layout (rows of stride floats, one per k) or the TF32 one.</summary>
public readonly struct TileStager
{
    readonly int _z, _m0, _n0, _mEnd, _nEnd, _kEnd, _stride, _slab;
    readonly int _aRow, _aDRow, _aK, _aDK, _bCol, _bDCol, _bK, _bDK;
    readonly bool _aKMajor, _bKMajor, _vectorA, _vectorB;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TileStager(int tid, int threads, int tileLog, int depthLog, in TileParams p, int z, int m0, int n0, int kEnd, int stride, int slab)
    {
        (_z, _m0, _n0, _mEnd, _nEnd, _kEnd, _stride, _slab) = (z, m0, n0, p.M, p.N, kEnd, stride, slab);
        (_aKMajor, _bKMajor, _vectorA, _vectorB) = (p.AKMajor != 0, p.BNMajor == 0, p.VectorA != 0, p.VectorB != 0);
        IlgpuTiledGemm.LoadMap(tid, threads, tileLog, depthLog, _aKMajor, out _aRow, out _aDRow, out _aK, out _aDK);
        IlgpuTiledGemm.LoadMap(tid, threads, tileLog, depthLog, _bKMajor, out _bCol, out _bDCol, out _bK, out _bDK);
    }

    /// <summary>Issues this thread's loads of the tiles at depth k0 (into registers; nothing waits for them yet).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Fetch<TOps>(in TOps ops, int k0, out R8 a, out R8 b) where TOps : struct, IGemmOperands
    {
        int m = _m0 + _aRow, ka = k0 + _aK, n = _n0 + _bCol, kb = k0 + _bK;
        a = new R8(IlgpuTiledGemm.FetchA(ops, _z, m, ka, _aKMajor, _vectorA, _mEnd, _kEnd),
            IlgpuTiledGemm.FetchA(ops, _z, m + _aDRow, ka + _aDK, _aKMajor, _vectorA, _mEnd, _kEnd));
        b = new R8(IlgpuTiledGemm.FetchB(ops, _z, n, kb, _bKMajor, _vectorB, _nEnd, _kEnd),
            IlgpuTiledGemm.FetchB(ops, _z, n + _bDCol, kb + _bDK, _bKMajor, _vectorB, _nEnd, _kEnd));
    }

    /// <summary>SIMT layout: element (row, k) at offset + k stride + row (A slab, then B slab). A run along the rows
    /// is one 16-byte store; a run along k, four.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void PutSimt(FView s, ArrayView<F4> s4, int offset, in R8 a, in R8 b)
    {
        IlgpuTiledGemm.PutSimtRun(s, s4, offset, _stride, _aRow, _aK, _aKMajor, a.Lo);
        IlgpuTiledGemm.PutSimtRun(s, s4, offset, _stride, _aRow + _aDRow, _aK + _aDK, _aKMajor, a.Hi);
        IlgpuTiledGemm.PutSimtRun(s, s4, offset + _slab, _stride, _bCol, _bK, _bKMajor, b.Lo);
        IlgpuTiledGemm.PutSimtRun(s, s4, offset + _slab, _stride, _bCol + _bDCol, _bK + _bDK, _bKMajor, b.Hi);
    }

    /// <summary>TF32 layout (<see cref="IlgpuTiledGemm.Tf32Index"/>), inputs rounded to TF32 on the way in.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void PutTf32(FView s, int offset, in R8 a, in R8 b)
    {
        IlgpuTiledGemm.PutTf32Run(s, offset, _aRow, _aK, _aKMajor, a.Lo);
        IlgpuTiledGemm.PutTf32Run(s, offset, _aRow + _aDRow, _aK + _aDK, _aKMajor, a.Hi);
        IlgpuTiledGemm.PutTf32Run(s, offset + _slab, _bCol, _bK, _bKMajor, b.Lo);
        IlgpuTiledGemm.PutTf32Run(s, offset + _slab, _bCol + _bDCol, _bK + _bDK, _bKMajor, b.Hi);
    }
}

/// <summary>The register-tiled GEMM kernels. Both stage tiles of A and B in double-buffered shared memory: while
/// the group multiplies one buffer, each thread's loads for the next tile are already in flight into registers,
/// and they are stored to the other buffer afterwards; one barrier per tile. Each thread loads two runs of four
/// neighbours per operand and tile, as 16-byte vectors where the operand is contiguous and aligned.
/// <para>SIMT: a group of Side x Side threads owns a (8 Side) x (8 Side) tile of C (64 x 64 or 128 x 128), tile
/// depth Side; thread (tx, ty) owns rows 4 ty + i and 4 ty + 4 Side + i, columns 4 tx + j and 4 tx + 4 Side + j,
/// i, j &lt; 4, so each k step reads its 8 + 8 operands as four 16-byte shared loads (broadcasts for A, consecutive
/// for B: no bank conflicts).</para>
/// <para>TF32: 256 threads own a 128 x 128 tile, depth 16; each of the 8 warps a 64 x 32 sub-tile of 4 x 4
/// mma.sync.m16n8k8 tiles. Both operand tiles are stored as 128 rows of 16 k, swizzled (<see cref="Tf32Index"/>) so
/// that a lane's fragment values for all 16 k of a row are one 16-byte load and neither those loads nor the stores
/// of a k-major operand conflict on banks. Inputs are rounded to TF32 (10-bit mantissa) on their way into shared
/// memory; sums stay fp32. Off CUDA (ILGPU's CPU accelerator) the mma is emulated from the layout, and each lane's
/// loaded fragment registers are checked against it, so the layout is tested without a GPU.</para></summary>
public static class IlgpuTiledGemm
{
    public const int Tf32Tile = 128, Tf32Depth = 16, Tf32Threads = 256, Tf32Slab = Tf32Tile * Tf32Depth;

    /// <summary>Shared floats a SIMT launch needs: two buffers, each a depth x (tile + 4) slab of A and of B (rows
    /// padded by one 16-byte vector).</summary>
    public static int SimtSharedFloats(int side) => 2 * 2 * side * (8 * side + 4);
    public static int Tf32SharedFloats => 2 * 2 * Tf32Slab;

    /// <summary>Run r (0, 1) of this thread's share of an operand tile (2^tileLog rows by 2^depthLog k): four
    /// elements along the operand's contiguous direction, from (rowBase + r dRow, kBase + r dK). kMajor: runs along k,
    /// neighbouring threads taking neighbouring runs of a row; else runs along the rows, neighbours along a k.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void LoadMap(int tid, int threads, int tileLog, int depthLog, bool kMajor, out int rowBase, out int dRow, out int kBase, out int dK)
    {
        if (kMajor) { int runsLog = depthLog - 2; rowBase = tid >> runsLog; dRow = threads >> runsLog; kBase = (tid & ((1 << runsLog) - 1)) << 2; dK = 0; }
        else { int runsLog = tileLog - 2; rowBase = (tid & ((1 << runsLog) - 1)) << 2; dRow = 0; kBase = tid >> runsLog; dK = threads >> runsLog; }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float LoadA<TOps>(in TOps ops, int z, int m, int k, int mEnd, int kEnd) where TOps : struct, IGemmOperands =>
        m < mEnd && k < kEnd ? ops.A(z, m, k) : 0f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float LoadB<TOps>(in TOps ops, int z, int k, int n, int nEnd, int kEnd) where TOps : struct, IGemmOperands =>
        n < nEnd && k < kEnd ? ops.B(z, k, n) : 0f;

    /// <summary>A's run of four from (m, k): along k if kMajor, else along m; one vector load when allowed and whole.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static F4 FetchA<TOps>(in TOps ops, int z, int m, int k, bool kMajor, bool vector, int mEnd, int kEnd) where TOps : struct, IGemmOperands
    {
        if (vector && (kMajor ? m < mEnd && k + 3 < kEnd : m + 3 < mEnd && k < kEnd)) return ops.A4(z, m, k);
        return kMajor
            ? new F4(LoadA(ops, z, m, k, mEnd, kEnd), LoadA(ops, z, m, k + 1, mEnd, kEnd), LoadA(ops, z, m, k + 2, mEnd, kEnd), LoadA(ops, z, m, k + 3, mEnd, kEnd))
            : new F4(LoadA(ops, z, m, k, mEnd, kEnd), LoadA(ops, z, m + 1, k, mEnd, kEnd), LoadA(ops, z, m + 2, k, mEnd, kEnd), LoadA(ops, z, m + 3, k, mEnd, kEnd));
    }

    /// <summary>B's run of four from (k, n): along k if kMajor, else along n.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static F4 FetchB<TOps>(in TOps ops, int z, int n, int k, bool kMajor, bool vector, int nEnd, int kEnd) where TOps : struct, IGemmOperands
    {
        if (vector && (kMajor ? n < nEnd && k + 3 < kEnd : n + 3 < nEnd && k < kEnd)) return ops.B4(z, k, n);
        return kMajor
            ? new F4(LoadB(ops, z, k, n, nEnd, kEnd), LoadB(ops, z, k + 1, n, nEnd, kEnd), LoadB(ops, z, k + 2, n, nEnd, kEnd), LoadB(ops, z, k + 3, n, nEnd, kEnd))
            : new F4(LoadB(ops, z, k, n, nEnd, kEnd), LoadB(ops, z, k, n + 1, nEnd, kEnd), LoadB(ops, z, k, n + 2, nEnd, kEnd), LoadB(ops, z, k, n + 3, nEnd, kEnd));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void PutSimtRun(FView s, ArrayView<F4> s4, int offset, int stride, int row, int k, bool kMajor, in F4 v)
    {
        int o = offset + k * stride + row;
        if (!kMajor) { s4[o >> 2] = v; return; }   // row is a multiple of 4, as are stride and offset
        s[o] = v.X; s[o + stride] = v.Y; s[o + 2 * stride] = v.Z; s[o + 3 * stride] = v.W;
    }

    /// <summary>Where (row, k) of a TF32 operand tile lives in its slab: 16 floats a row, as four 16-byte chunks.
    /// Chunk c = k mod 4 holds k = c, c + 4, c + 8, c + 12, so lane (g, t) of an mma reads every k it needs of a row
    /// (t + 4 j, both k8 steps) as one vector. Chunks are XOR-swizzled by rows' bits 1-2 and 5-6, and the four
    /// values inside by bits 3-4 (constants where the fragments are read), which leaves the fragment loads and the
    /// stores of a k-major run conflict-free; the stores of a row-major run conflict two ways, the least 16-float
    /// rows allow.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Tf32Index(int row, int k) => (row << 4) + ((k & 3 ^ Tf32Chunk(row)) << 2) + (k >> 2 ^ Tf32Order(row));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static int Tf32Chunk(int row) => (row >> 1 ^ row >> 5) & 3;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static int Tf32Order(int row) => row >> 3 & 3;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void PutTf32Run(FView s, int offset, int row, int k, bool kMajor, in F4 v)
    {
        if (kMajor)
        {
            s[offset + Tf32Index(row, k)] = Round(v.X, true); s[offset + Tf32Index(row, k + 1)] = Round(v.Y, true);
            s[offset + Tf32Index(row, k + 2)] = Round(v.Z, true); s[offset + Tf32Index(row, k + 3)] = Round(v.W, true);
        }
        else
        {
            s[offset + Tf32Index(row, k)] = Round(v.X, true); s[offset + Tf32Index(row + 1, k)] = Round(v.Y, true);
            s[offset + Tf32Index(row + 2, k)] = Round(v.Z, true); s[offset + Tf32Index(row + 3, k)] = Round(v.W, true);
        }
    }

    /// <summary>Round to nearest (ties away) on TF32's 10-bit mantissa, what cvt.rna.tf32.f32 does for finite values.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Round(float x, bool tf32) => tf32 ? Interop.IntAsFloat((Interop.FloatAsInt(x) + 0x1000u) & 0xFFFFE000u) : x;

    /// <summary>Row m of C from this thread: columns n + j and n + half + j, j &lt; 4.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void StoreRow<TOps>(in TOps ops, int z, int m, int n, int half, int mEnd, int nEnd, in R8 r, bool atomic) where TOps : struct, IGemmOperands
    {
        if (m >= mEnd) return;
        if (n < nEnd) ops.Store(z, m, n, r.X0, atomic);
        if (n + 1 < nEnd) ops.Store(z, m, n + 1, r.X1, atomic);
        if (n + 2 < nEnd) ops.Store(z, m, n + 2, r.X2, atomic);
        if (n + 3 < nEnd) ops.Store(z, m, n + 3, r.X3, atomic);
        if (n + half < nEnd) ops.Store(z, m, n + half, r.X4, atomic);
        if (n + half + 1 < nEnd) ops.Store(z, m, n + half + 1, r.X5, atomic);
        if (n + half + 2 < nEnd) ops.Store(z, m, n + half + 2, r.X6, atomic);
        if (n + half + 3 < nEnd) ops.Store(z, m, n + half + 3, r.X7, atomic);
    }

    /// <summary>The SIMT kernel. Grid (ceil(N / 8 Side), ceil(M / 8 Side), matrices x Splits), group (Side, Side).</summary>
    public static void Simt<TOps>(TOps ops, TileParams p) where TOps : struct, IGemmOperands
    {
        var shared = SharedMemory.GetDynamic<float>();
        var shared4 = shared.Cast<F4>();
        int side = p.Side, log = p.SideLog, tile = side << 3, half = tile >> 1, threads = side * side;
        int tx = Group.IdxX, ty = Group.IdxY, tid = ty * side + tx;
        int stride = tile + 4, slab = side * stride, buffer = 2 * slab;   // A slab then B slab; rows 16-byte aligned
        int m0 = Grid.IdxY * tile, n0 = Grid.IdxX * tile;
        int zz = Grid.IdxZ, z = zz / p.Splits, split = zz - z * p.Splits;
        int kBegin = split * p.KChunk, kEnd = Math.Min(p.K, kBegin + p.KChunk);
        var stage = new TileStager(tid, threads, log + 3, log, p, z, m0, n0, kEnd, stride, slab);

        var acc = default(Acc8x8);
        stage.Fetch(ops, kBegin, out var pa, out var pb);
        stage.PutSimt(shared, shared4, 0, pa, pb);
        Group.Barrier();
        int current = 0, stride4 = stride >> 2;
        for (int k0 = kBegin; k0 < kEnd; k0 += side)
        {
            bool more = k0 + side < kEnd;
            if (more) stage.Fetch(ops, k0 + side, out pa, out pb);
            int ao = (current >> 2) + ty, bo = ((current + slab) >> 2) + tx;   // in 16-byte units
            for (int kk = 0; kk < side; kk++)
            {
                acc.AddOuter(new R8(shared4[ao], shared4[ao + side]), new R8(shared4[bo], shared4[bo + side]));
                ao += stride4; bo += stride4;
            }
            if (more)
            {
                current = buffer - current;
                stage.PutSimt(shared, shared4, current, pa, pb);
            }
            Group.Barrier();
        }

        bool atomic = p.Splits > 1;
        int m = m0 + (ty << 2), n = n0 + (tx << 2);
        StoreRow(ops, z, m, n, half, p.M, p.N, acc.R0, atomic);
        StoreRow(ops, z, m + 1, n, half, p.M, p.N, acc.R1, atomic);
        StoreRow(ops, z, m + 2, n, half, p.M, p.N, acc.R2, atomic);
        StoreRow(ops, z, m + 3, n, half, p.M, p.N, acc.R3, atomic);
        StoreRow(ops, z, m + half, n, half, p.M, p.N, acc.R4, atomic);
        StoreRow(ops, z, m + half + 1, n, half, p.M, p.N, acc.R5, atomic);
        StoreRow(ops, z, m + half + 2, n, half, p.M, p.N, acc.R6, atomic);
        StoreRow(ops, z, m + half + 3, n, half, p.M, p.N, acc.R7, atomic);
    }

    // ---- TF32 tensor cores ----------------------------------------------------------------------------------

    /// <summary>A lane's chunk of row `row` in the slab at slabBase, in 16-byte units: its k = t + 4 j, j &lt; 4, in
    /// the order <see cref="Tf32Order"/> gives.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static F4 Chunk(ArrayView<F4> s4, int slabBase, int row, int t) => s4[(slabBase >> 2) + (row << 2) + (t ^ Tf32Chunk(row))];

    /// <summary>D = A B + D for one warp's m16n8k8 tile into half (0: X0..X3, 1: X4..X7) of c: this lane's
    /// accumulators for rows g, g, g + 8, g + 8 and columns 2t, 2t + 1, 2t, 2t + 1, from its fragments (the PTX
    /// ISA's layout, g = lane / 4, t = lane % 4): a0 = A[g][t], a1 = A[g+8][t], a2 = A[g][t+4], a3 = A[g+8][t+4],
    /// b0 = B[t][g], b1 = B[t+4][g] (TF32 bit patterns). On CUDA one mma.sync. Elsewhere the same arithmetic from
    /// the tiles in shared memory, the A tile's rows from aRow, the B tile's from bRow, k from k8; and if any of the
    /// lane's own fragment registers is not the element the ISA assigns it, its sums become NaN, so a wrong layout,
    /// chunk or order fails on the CPU accelerator as it would on the GPU.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Mma(ref R8 c, int half, float a0, float a1, float a2, float a3, float b0, float b1, FView s, int aSlab, int aRow, int bSlab, int bRow, int k8, int lane)
    {
        float c0 = half == 0 ? c.X0 : c.X4, c1 = half == 0 ? c.X1 : c.X5, c2 = half == 0 ? c.X2 : c.X6, c3 = half == 0 ? c.X3 : c.X7;
        if (CudaAsm.IsSupported)
        {
            Ref<float> d0 = c0, d1 = c1, d2 = c2, d3 = c3;
            Input<uint> x0 = Interop.FloatAsInt(a0), x1 = Interop.FloatAsInt(a1), x2 = Interop.FloatAsInt(a2), x3 = Interop.FloatAsInt(a3),
                y0 = Interop.FloatAsInt(b0), y1 = Interop.FloatAsInt(b1);   // .b32 registers, as the instruction declares
            CudaAsm.EmitRef("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};",
                ref d0, ref d1, ref d2, ref d3, ref x0, ref x1, ref x2, ref x3, ref y0, ref y1);
            c0 = d0.Value; c1 = d1.Value; c2 = d2.Value; c3 = d3.Value;
        }
        else
        {
            int g = lane >> 2, t = lane & 3;
            bool own = Same(a0, s[aSlab + Tf32Index(aRow + g, k8 + t)]) && Same(a1, s[aSlab + Tf32Index(aRow + g + 8, k8 + t)])
                && Same(a2, s[aSlab + Tf32Index(aRow + g, k8 + t + 4)]) && Same(a3, s[aSlab + Tf32Index(aRow + g + 8, k8 + t + 4)])
                && Same(b0, s[bSlab + Tf32Index(bRow + g, k8 + t)]) && Same(b1, s[bSlab + Tf32Index(bRow + g, k8 + t + 4)]);
            for (int k = k8; k < k8 + 8; k++)
            {
                float top = s[aSlab + Tf32Index(aRow + g, k)], bottom = s[aSlab + Tf32Index(aRow + g + 8, k)];
                float left = s[bSlab + Tf32Index(bRow + 2 * t, k)], right = s[bSlab + Tf32Index(bRow + 2 * t + 1, k)];
                c0 += top * left; c1 += top * right; c2 += bottom * left; c3 += bottom * right;
            }
            if (!own) c0 = c1 = c2 = c3 = float.NaN;
        }
        if (half == 0) { c.X0 = c0; c.X1 = c1; c.X2 = c2; c.X3 = c3; }
        else { c.X4 = c0; c.X5 = c1; c.X6 = c2; c.X7 = c3; }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static bool Same(float x, float y) => Interop.FloatAsInt(x) == Interop.FloatAsInt(y);

    /// <summary>The TF32 kernel. Grid (ceil(N / 128), ceil(M / 128), matrices x Splits), group 256.</summary>
    public static void Tf32<TOps>(TOps ops, TileParams p) where TOps : struct, IGemmOperands
    {
        var shared = SharedMemory.GetDynamic<float>();
        var shared4 = shared.Cast<F4>();
        const int tile = Tf32Tile, depth = Tf32Depth, threads = Tf32Threads, slab = Tf32Slab, buffer = 2 * slab;
        int tid = Group.IdxX, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;   // 32-lane warps on any accelerator
        int warpRow = (warp >> 2) * 64, warpCol = (warp & 3) * 32;   // 2 x 4 warps of 64 x 32
        int m0 = Grid.IdxY * tile, n0 = Grid.IdxX * tile;
        int zz = Grid.IdxZ, z = zz / p.Splits, split = zz - z * p.Splits;
        int kBegin = split * p.KChunk, kEnd = Math.Min(p.K, kBegin + p.KChunk);
        var stage = new TileStager(tid, threads, 7, 4, p, z, m0, n0, kEnd, 0, slab);

        // Accumulators of the 4 x 4 mma tiles (mi, ni): row mi * 2 + ni / 2 of acc, half ni % 2 of that row.
        var acc = default(Acc8x8);
        stage.Fetch(ops, kBegin, out var pa, out var pb);
        stage.PutTf32(shared, 0, pa, pb);
        Group.Barrier();
        int current = 0;
        for (int k0 = kBegin; k0 < kEnd; k0 += depth)
        {
            bool more = k0 + depth < kEnd;
            if (more) stage.Fetch(ops, k0 + depth, out pa, out pb);
            int aSlab = current, bSlab = current + slab;
            // The B fragments of the warp's four n8 tiles for all 16 k: four 16-byte loads.
            var n0Chunk = Chunk(shared4, bSlab, warpCol + g, t);
            var n1Chunk = Chunk(shared4, bSlab, warpCol + 8 + g, t);
            var n2Chunk = Chunk(shared4, bSlab, warpCol + 16 + g, t);
            var n3Chunk = Chunk(shared4, bSlab, warpCol + 24 + g, t);
            MmaRow(ref acc.R0, ref acc.R1, 0, shared, shared4, aSlab, warpRow, bSlab, warpCol, lane, n0Chunk, n1Chunk, n2Chunk, n3Chunk);
            MmaRow(ref acc.R2, ref acc.R3, 1, shared, shared4, aSlab, warpRow, bSlab, warpCol, lane, n0Chunk, n1Chunk, n2Chunk, n3Chunk);
            MmaRow(ref acc.R4, ref acc.R5, 2, shared, shared4, aSlab, warpRow, bSlab, warpCol, lane, n0Chunk, n1Chunk, n2Chunk, n3Chunk);
            MmaRow(ref acc.R6, ref acc.R7, 3, shared, shared4, aSlab, warpRow, bSlab, warpCol, lane, n0Chunk, n1Chunk, n2Chunk, n3Chunk);
            if (more)
            {
                current = buffer - current;
                stage.PutTf32(shared, current, pa, pb);
            }
            Group.Barrier();
        }

        bool atomic = p.Splits > 1;
        int m = m0 + warpRow + g, n = n0 + warpCol + 2 * t;
        StoreMmaRow(ops, z, m, n, p, acc.R0, acc.R1, atomic);
        StoreMmaRow(ops, z, m + 16, n, p, acc.R2, acc.R3, atomic);
        StoreMmaRow(ops, z, m + 32, n, p, acc.R4, acc.R5, atomic);
        StoreMmaRow(ops, z, m + 48, n, p, acc.R6, acc.R7, atomic);
    }

    /// <summary>Row mi of m16 mma tiles (A rows warpRow + 16 mi + g, + 8: two 16-byte loads) against the warp's four
    /// n8 tiles, over both k8 steps of the tile. The values inside a chunk are ordered by the row's bits 3-4:
    /// 2 mi (+ 1 for the lower rows) for A, ni for B, so every Get below has a constant index.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void MmaRow(ref R8 left, ref R8 right, int mi, FView s, ArrayView<F4> s4, int aSlab, int warpRow, int bSlab, int warpCol, int lane,
        in F4 n0, in F4 n1, in F4 n2, in F4 n3)
    {
        int g = lane >> 2, t = lane & 3, aRow = warpRow + 16 * mi, upper = 2 * mi & 3, lower = upper | 1;
        var top = Chunk(s4, aSlab, aRow + g, t);
        var bottom = Chunk(s4, aSlab, aRow + g + 8, t);
        for (int step = 0; step < 2; step++)
        {
            int j = 2 * step, k8 = 8 * step;
            float a0 = top.Get(j ^ upper), a2 = top.Get(j + 1 ^ upper), a1 = bottom.Get(j ^ lower), a3 = bottom.Get(j + 1 ^ lower);
            Mma(ref left, 0, a0, a1, a2, a3, n0.Get(j), n0.Get(j + 1), s, aSlab, aRow, bSlab, warpCol, k8, lane);
            Mma(ref left, 1, a0, a1, a2, a3, n1.Get(j ^ 1), n1.Get(j + 1 ^ 1), s, aSlab, aRow, bSlab, warpCol + 8, k8, lane);
            Mma(ref right, 0, a0, a1, a2, a3, n2.Get(j ^ 2), n2.Get(j + 1 ^ 2), s, aSlab, aRow, bSlab, warpCol + 16, k8, lane);
            Mma(ref right, 1, a0, a1, a2, a3, n3.Get(j ^ 3), n3.Get(j + 1 ^ 3), s, aSlab, aRow, bSlab, warpCol + 24, k8, lane);
        }
    }

    /// <summary>Writes one m16 row of accumulators: rows m and m + 8, columns n + 8 ni and n + 8 ni + 1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void StoreMmaRow<TOps>(in TOps ops, int z, int m, int n, in TileParams p, in R8 left, in R8 right, bool atomic) where TOps : struct, IGemmOperands
    {
        StorePair(ops, z, m, n, p, left.X0, left.X1, atomic); StorePair(ops, z, m + 8, n, p, left.X2, left.X3, atomic);
        StorePair(ops, z, m, n + 8, p, left.X4, left.X5, atomic); StorePair(ops, z, m + 8, n + 8, p, left.X6, left.X7, atomic);
        StorePair(ops, z, m, n + 16, p, right.X0, right.X1, atomic); StorePair(ops, z, m + 8, n + 16, p, right.X2, right.X3, atomic);
        StorePair(ops, z, m, n + 24, p, right.X4, right.X5, atomic); StorePair(ops, z, m + 8, n + 24, p, right.X6, right.X7, atomic);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void StorePair<TOps>(in TOps ops, int z, int m, int n, in TileParams p, float v0, float v1, bool atomic) where TOps : struct, IGemmOperands
    {
        if (m >= p.M) return;
        if (n < p.N) ops.Store(z, m, n, v0, atomic);
        if (n + 1 < p.N) ops.Store(z, m, n + 1, v1, atomic);
    }
}
