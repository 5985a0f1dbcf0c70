using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime.Cuda;

namespace LsKd.Kernels.Gpu;

using FView = ILGPU.Runtime.ArrayView1D<float, ILGPU.Stride1D.Dense>;

/// <summary>Where a tiled GEMM reads A [M, K] and B [K, N] and writes C [M, N] of matrix z. Dense matrices, and the
/// three convolution passes as implicit GEMMs (the im2col matrix is gathered while a tile is loaded, never stored).
/// Loads are only asked for in range; Store gets alpha-free sums, and atomic when K is split over several groups.</summary>
public interface IGemmOperands
{
    float A(int z, int m, int k);
    float B(int z, int k, int n);
    void Store(int z, int m, int n, float sum, bool atomic);
}

/// <summary>Launch shape of a tiled GEMM. Side: threads per side of a group (8 or 16, a power of two, SideLog its
/// log2). AKMajor: consecutive k of A are adjacent in memory (else consecutive m); BNMajor: consecutive n of B are
/// adjacent (else consecutive k): the tile loaders let neighbouring threads read neighbouring addresses. K is cut
/// into Splits chunks of KChunk (a multiple of the tile depth), one group per chunk, summed atomically.</summary>
public readonly record struct TileParams(int M, int N, int K, int Side, int SideLog, int AKMajor, int BNMajor, int Splits, int KChunk);

/// <summary>Eight floats in registers: one thread's slice of a tile row or column.</summary>
public struct R8
{
    public float X0, X1, X2, X3, X4, X5, X6, X7;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public R8(float x0, float x1, float x2, float x3, float x4, float x5, float x6, float x7)
    { X0 = x0; X1 = x1; X2 = x2; X3 = x3; X4 = x4; X5 = x5; X6 = x6; X7 = x7; }

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

/// <summary>One thread's share of staging the A and B tiles of a k step into shared memory: where it fetches
/// (its load map, from <see cref="IlgpuTiledGemm"/>'s LoadMap) and where it stores (A slab at the buffer's
/// start, B slab a slab further, rows of stride floats), shared by the SIMT and TF32 kernels.</summary>
public readonly struct TileStager
{
    readonly int _z, _m0, _n0, _mEnd, _nEnd, _kEnd, _stride, _slab;
    readonly int _aRow, _aDRow, _aK, _aDK, _bCol, _bDCol, _bK, _bDK;
    readonly bool _tf32;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TileStager(int tid, int threads, int tile, int depth, int depthLog, in TileParams p, int z, int m0, int n0, int kEnd, int stride, bool tf32)
    {
        (_z, _m0, _n0, _mEnd, _nEnd, _kEnd, _stride, _slab, _tf32) = (z, m0, n0, p.M, p.N, kEnd, stride, depth * stride, tf32);
        IlgpuTiledGemm.LoadMap(tid, threads, tile, depth, depthLog, p.AKMajor != 0, out _aRow, out _aDRow, out _aK, out _aDK);
        IlgpuTiledGemm.LoadMap(tid, threads, tile, depth, depthLog, p.BNMajor == 0, out _bCol, out _bDCol, out _bK, out _bDK);
    }

    /// <summary>Issues this thread's loads of the tiles at depth k0 (into registers; nothing waits for them yet).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Fetch<TOps>(in TOps ops, int k0, out R8 a, out R8 b) where TOps : struct, IGemmOperands
    {
        a = IlgpuTiledGemm.FetchA(ops, _z, _m0 + _aRow, _aDRow, k0 + _aK, _aDK, _mEnd, _kEnd);
        b = IlgpuTiledGemm.FetchB(ops, _z, _n0 + _bCol, _bDCol, k0 + _bK, _bDK, _nEnd, _kEnd);
    }

    /// <summary>Stores fetched tiles into the shared buffer at offset (rounded to TF32 for the tensor-core kernel).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Put(FView shared, int offset, in R8 a, in R8 b)
    {
        IlgpuTiledGemm.Put(shared, offset, _stride, _aRow, _aDRow, _aK, _aDK, a, _tf32);
        IlgpuTiledGemm.Put(shared, offset + _slab, _stride, _bCol, _bDCol, _bK, _bDK, b, _tf32);
    }
}

/// <summary>The register-tiled GEMM kernels. Both stage tiles of A and B in double-buffered shared memory: while
/// the group multiplies one buffer, each thread's loads for the next tile are already in flight into registers,
/// and they are stored to the other buffer afterwards; one barrier per tile.
/// <para>SIMT: a group of Side x Side threads owns a (8 Side) x (8 Side) tile of C (64 x 64 or 128 x 128), tile
/// depth Side; thread (tx, ty) owns rows ty + Side i and columns tx + Side j, i, j &lt; 8, so shared-memory reads
/// are broadcasts (A) or consecutive (B) and C's stores are coalesced.</para>
/// <para>TF32: 256 threads own a 128 x 128 tile, depth 16; each of the 8 warps a 64 x 32 sub-tile of 4 x 4
/// mma.sync.m16n8k8 tiles. Inputs are rounded to TF32 (10-bit mantissa) on their way into shared memory; sums
/// stay fp32. Off CUDA (ILGPU's CPU accelerator) the mma is emulated from the fragment addresses, so the fragment
/// layout is tested without a GPU.</para></summary>
public static class IlgpuTiledGemm
{
    public const int Tf32Tile = 128, Tf32Depth = 16, Tf32Stride = Tf32Tile + 8, Tf32Threads = 256;

    /// <summary>Shared floats a SIMT launch needs: two buffers, each a depth x (tile + 1) slab of A and of B.</summary>
    public static int SimtSharedFloats(int side) => 2 * 2 * side * (8 * side + 1);
    public static int Tf32SharedFloats => 2 * 2 * Tf32Depth * Tf32Stride;

    /// <summary>Element e of this thread's share of an operand tile: position (row, k) = (rowBase + e dRow, kBase + e dK).
    /// kMajor: neighbouring threads take neighbouring k (the operand is contiguous along k).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void LoadMap(int tid, int threads, int tile, int depth, int depthLog, bool kMajor, out int rowBase, out int dRow, out int kBase, out int dK)
    {
        if (kMajor) { rowBase = tid >> depthLog; dRow = threads >> depthLog; kBase = tid & (depth - 1); dK = 0; }
        else { rowBase = tid % tile; dRow = 0; kBase = tid / tile; dK = threads / tile; }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float LoadA<TOps>(in TOps ops, int z, int m, int k, int mEnd, int kEnd) where TOps : struct, IGemmOperands =>
        m < mEnd && k < kEnd ? ops.A(z, m, k) : 0f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float LoadB<TOps>(in TOps ops, int z, int k, int n, int nEnd, int kEnd) where TOps : struct, IGemmOperands =>
        n < nEnd && k < kEnd ? ops.B(z, k, n) : 0f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static R8 FetchA<TOps>(in TOps ops, int z, int m, int dm, int k, int dk, int mEnd, int kEnd) where TOps : struct, IGemmOperands =>
        new(LoadA(ops, z, m, k, mEnd, kEnd), LoadA(ops, z, m + dm, k + dk, mEnd, kEnd),
            LoadA(ops, z, m + 2 * dm, k + 2 * dk, mEnd, kEnd), LoadA(ops, z, m + 3 * dm, k + 3 * dk, mEnd, kEnd),
            LoadA(ops, z, m + 4 * dm, k + 4 * dk, mEnd, kEnd), LoadA(ops, z, m + 5 * dm, k + 5 * dk, mEnd, kEnd),
            LoadA(ops, z, m + 6 * dm, k + 6 * dk, mEnd, kEnd), LoadA(ops, z, m + 7 * dm, k + 7 * dk, mEnd, kEnd));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static R8 FetchB<TOps>(in TOps ops, int z, int n, int dn, int k, int dk, int nEnd, int kEnd) where TOps : struct, IGemmOperands =>
        new(LoadB(ops, z, k, n, nEnd, kEnd), LoadB(ops, z, k + dk, n + dn, nEnd, kEnd),
            LoadB(ops, z, k + 2 * dk, n + 2 * dn, nEnd, kEnd), LoadB(ops, z, k + 3 * dk, n + 3 * dn, nEnd, kEnd),
            LoadB(ops, z, k + 4 * dk, n + 4 * dn, nEnd, kEnd), LoadB(ops, z, k + 5 * dk, n + 5 * dn, nEnd, kEnd),
            LoadB(ops, z, k + 6 * dk, n + 6 * dn, nEnd, kEnd), LoadB(ops, z, k + 7 * dk, n + 7 * dn, nEnd, kEnd));

    /// <summary>Stores eight fetched values at shared[offset + (k + e dk) stride + row + e dRow], rounded to TF32 if asked.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Put(FView s, int offset, int stride, int row, int dRow, int k, int dk, in R8 v, bool tf32)
    {
        int step = dk * stride + dRow, o = offset + k * stride + row;
        s[o] = Round(v.X0, tf32); s[o + step] = Round(v.X1, tf32); s[o + 2 * step] = Round(v.X2, tf32); s[o + 3 * step] = Round(v.X3, tf32);
        s[o + 4 * step] = Round(v.X4, tf32); s[o + 5 * step] = Round(v.X5, tf32); s[o + 6 * step] = Round(v.X6, tf32); s[o + 7 * step] = Round(v.X7, tf32);
    }

    /// <summary>Round to nearest (ties away) on TF32's 10-bit mantissa, what cvt.rna.tf32.f32 does for finite values.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Round(float x, bool tf32) => tf32 ? Interop.IntAsFloat((Interop.FloatAsInt(x) + 0x1000u) & 0xFFFFE000u) : x;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static R8 Read8(FView s, int o, int step) =>
        new(s[o], s[o + step], s[o + 2 * step], s[o + 3 * step], s[o + 4 * step], s[o + 5 * step], s[o + 6 * step], s[o + 7 * step]);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void StoreRow<TOps>(in TOps ops, int z, int m, int n, int dn, int mEnd, int nEnd, in R8 r, bool atomic) where TOps : struct, IGemmOperands
    {
        if (m >= mEnd) return;
        if (n < nEnd) ops.Store(z, m, n, r.X0, atomic);
        if (n + dn < nEnd) ops.Store(z, m, n + dn, r.X1, atomic);
        if (n + 2 * dn < nEnd) ops.Store(z, m, n + 2 * dn, r.X2, atomic);
        if (n + 3 * dn < nEnd) ops.Store(z, m, n + 3 * dn, r.X3, atomic);
        if (n + 4 * dn < nEnd) ops.Store(z, m, n + 4 * dn, r.X4, atomic);
        if (n + 5 * dn < nEnd) ops.Store(z, m, n + 5 * dn, r.X5, atomic);
        if (n + 6 * dn < nEnd) ops.Store(z, m, n + 6 * dn, r.X6, atomic);
        if (n + 7 * dn < nEnd) ops.Store(z, m, n + 7 * dn, r.X7, atomic);
    }

    /// <summary>The SIMT kernel. Grid (ceil(N / 8 Side), ceil(M / 8 Side), matrices x Splits), group (Side, Side).</summary>
    public static void Simt<TOps>(TOps ops, TileParams p) where TOps : struct, IGemmOperands
    {
        var shared = SharedMemory.GetDynamic<float>();
        int side = p.Side, log = p.SideLog, tile = side << 3, threads = side * side;
        int tx = Group.IdxX, ty = Group.IdxY, tid = ty * side + tx;
        int stride = tile + 1, slab = side * stride, buffer = 2 * slab;   // A slab then B slab; +1 pad spreads the k-major stores over banks
        int m0 = Grid.IdxY * tile, n0 = Grid.IdxX * tile;
        int zz = Grid.IdxZ, z = zz / p.Splits, split = zz - z * p.Splits;
        int kBegin = split * p.KChunk, kEnd = Math.Min(p.K, kBegin + p.KChunk);
        var stage = new TileStager(tid, threads, tile, side, log, p, z, m0, n0, kEnd, stride, false);

        var acc = default(Acc8x8);
        stage.Fetch(ops, kBegin, out var pa, out var pb);
        stage.Put(shared, 0, pa, pb);
        Group.Barrier();
        int current = 0;
        for (int k0 = kBegin; k0 < kEnd; k0 += side)
        {
            bool more = k0 + side < kEnd;
            if (more) stage.Fetch(ops, k0 + side, out pa, out pb);
            int ao = current + ty, bo = current + slab + tx;
            for (int kk = 0; kk < side; kk++)
            {
                acc.AddOuter(Read8(shared, ao, side), Read8(shared, bo, side));
                ao += stride; bo += stride;
            }
            if (more)
            {
                current = buffer - current;
                stage.Put(shared, current, pa, pb);
            }
            Group.Barrier();
        }

        bool atomic = p.Splits > 1;
        int m = m0 + ty, n = n0 + tx;
        StoreRow(ops, z, m, n, side, p.M, p.N, acc.R0, atomic);
        StoreRow(ops, z, m + side, n, side, p.M, p.N, acc.R1, atomic);
        StoreRow(ops, z, m + 2 * side, n, side, p.M, p.N, acc.R2, atomic);
        StoreRow(ops, z, m + 3 * side, n, side, p.M, p.N, acc.R3, atomic);
        StoreRow(ops, z, m + 4 * side, n, side, p.M, p.N, acc.R4, atomic);
        StoreRow(ops, z, m + 5 * side, n, side, p.M, p.N, acc.R5, atomic);
        StoreRow(ops, z, m + 6 * side, n, side, p.M, p.N, acc.R6, atomic);
        StoreRow(ops, z, m + 7 * side, n, side, p.M, p.N, acc.R7, atomic);
    }

    // ---- TF32 tensor cores ----------------------------------------------------------------------------------

    /// <summary>Shared-memory address of A-fragment register reg (0..3) of a lane, for the m16 x k8 tile whose
    /// first element is at aBase (A is stored k-major: row k of the tile is stride floats further). The PTX ISA's
    /// m16n8k8 TF32 layout, g = lane / 4, t = lane % 4: a0 = A[g][t], a1 = A[g+8][t], a2 = A[g][t+4], a3 = A[g+8][t+4].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static int AFragment(int aBase, int lane, int reg) => aBase + ((lane & 3) + (reg & 2) * 2) * Tf32Stride + (lane >> 2) + (reg & 1) * 8;

    /// <summary>Address of B-fragment register reg (0, 1) of a lane for the k8 x n8 tile at bBase: b0 = B[t][g], b1 = B[t+4][g].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static int BFragment(int bBase, int lane, int reg) => bBase + ((lane & 3) + reg * 4) * Tf32Stride + (lane >> 2);

    /// <summary>D = A B + D for one warp's m16n8k8 tile into half (0: X0..X3, 1: X4..X7) of c: this lane's
    /// accumulators for rows g, g, g + 8, g + 8 and columns 2t, 2t + 1, 2t, 2t + 1. On CUDA one mma.sync on the
    /// fragments a0..a3, b0, b1 (TF32 bit patterns). Elsewhere the same arithmetic: each product's operands are read
    /// where the documented owner lane's fragment register was loaded from (AFragment / BFragment of that lane), so
    /// a wrong fragment address fails on the CPU accelerator as it would on the GPU, with no warp traffic.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Mma(ref R8 c, int half, float a0, float a1, float a2, float a3, float b0, float b1, FView s, int aBase, int bBase, int lane)
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
            for (int k = 0; k < 8; k++)
            {
                int aReg = k >> 1 & 2, bReg = k >> 2;
                float top = s[AFragment(aBase, g * 4 + (k & 3), aReg)], bottom = s[AFragment(aBase, g * 4 + (k & 3), aReg + 1)];
                float left = s[BFragment(bBase, 2 * t * 4 + (k & 3), bReg)], right = s[BFragment(bBase, (2 * t + 1) * 4 + (k & 3), bReg)];
                c0 += top * left; c1 += top * right; c2 += bottom * left; c3 += bottom * right;
            }
        }
        if (half == 0) { c.X0 = c0; c.X1 = c1; c.X2 = c2; c.X3 = c3; }
        else { c.X4 = c0; c.X5 = c1; c.X6 = c2; c.X7 = c3; }
    }

    /// <summary>The TF32 kernel. Grid (ceil(N / 128), ceil(M / 128), matrices x Splits), group 256.</summary>
    public static void Tf32<TOps>(TOps ops, TileParams p) where TOps : struct, IGemmOperands
    {
        var shared = SharedMemory.GetDynamic<float>();
        const int tile = Tf32Tile, depth = Tf32Depth, stride = Tf32Stride, threads = Tf32Threads;
        const int slab = depth * stride, buffer = 2 * slab;
        int tid = Group.IdxX, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;   // 32-lane warps on any accelerator
        int warpRow = (warp >> 2) * 64, warpCol = (warp & 3) * 32;   // 2 x 4 warps of 64 x 32
        int m0 = Grid.IdxY * tile, n0 = Grid.IdxX * tile;
        int zz = Grid.IdxZ, z = zz / p.Splits, split = zz - z * p.Splits;
        int kBegin = split * p.KChunk, kEnd = Math.Min(p.K, kBegin + p.KChunk);
        var stage = new TileStager(tid, threads, tile, depth, 4, p, z, m0, n0, kEnd, stride, true);

        // Accumulators of the 4 x 4 mma tiles (mi, ni): row mi * 2 + ni / 2 of acc, half ni % 2 of that row.
        var acc = default(Acc8x8);
        stage.Fetch(ops, kBegin, out var pa, out var pb);
        stage.Put(shared, 0, pa, pb);
        Group.Barrier();
        int current = 0;
        for (int k0 = kBegin; k0 < kEnd; k0 += depth)
        {
            bool more = k0 + depth < kEnd;
            if (more) stage.Fetch(ops, k0 + depth, out pa, out pb);
            for (int k8 = 0; k8 < depth; k8 += 8)
            {
                int aBase = current + k8 * stride + warpRow, bBase = current + slab + k8 * stride + warpCol;
                int b0 = BFragment(bBase, lane, 0), b1 = BFragment(bBase, lane, 1);
                var b = new R8(shared[b0], shared[b1], shared[b0 + 8], shared[b1 + 8], shared[b0 + 16], shared[b1 + 16], shared[b0 + 24], shared[b1 + 24]);
                MmaRow(ref acc.R0, ref acc.R1, shared, aBase, bBase, lane, b);
                MmaRow(ref acc.R2, ref acc.R3, shared, aBase + 16, bBase, lane, b);
                MmaRow(ref acc.R4, ref acc.R5, shared, aBase + 32, bBase, lane, b);
                MmaRow(ref acc.R6, ref acc.R7, shared, aBase + 48, bBase, lane, b);
            }
            if (more)
            {
                current = buffer - current;
                stage.Put(shared, current, pa, pb);
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

    /// <summary>One m16 row of mma tiles (A at aBase) against the four n8 tiles of the warp (B at bBase + 8 ni,
    /// their fragments given as b0, b1 pairs).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void MmaRow(ref R8 left, ref R8 right, FView s, int aBase, int bBase, int lane, in R8 b)
    {
        float a0 = s[AFragment(aBase, lane, 0)], a1 = s[AFragment(aBase, lane, 1)], a2 = s[AFragment(aBase, lane, 2)], a3 = s[AFragment(aBase, lane, 3)];
        Mma(ref left, 0, a0, a1, a2, a3, b.X0, b.X1, s, aBase, bBase, lane);
        Mma(ref left, 1, a0, a1, a2, a3, b.X2, b.X3, s, aBase, bBase + 8, lane);
        Mma(ref right, 0, a0, a1, a2, a3, b.X4, b.X5, s, aBase, bBase + 16, lane);
        Mma(ref right, 1, a0, a1, a2, a3, b.X6, b.X7, s, aBase, bBase + 24, lane);
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
