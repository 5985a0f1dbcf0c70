using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace LsKd.Kernels.Cpu;

/// <summary>
/// BLIS-style packed GEMM. op(B) is packed into KC x NR column panels shared by all threads, op(A) into MR x KC
/// row panels per thread, and a register-blocked micro-kernel (6 x 32 with Vector512, 6 x 16 with Vector256)
/// accumulates one tile in 12 vector registers. Work is split over (row block, column group) tiles so that both
/// tall (im2col) and short-wide shapes use every thread. Each C element is always accumulated in the same order,
/// so results are independent of the thread schedule.
/// </summary>
/// <summary>Writes op(B)[pc:pc+kc, j0:j0+cols] as one k-major panel of width nr (columns past cols zeroed): lets a
/// caller produce B on the fly (a convolution packs straight from the image, with no im2col buffer).</summary>
internal unsafe interface IPanelPacker
{
    void Pack(float* dst, int pc, int kc, int j0, int cols, int nr);
}

internal sealed unsafe class CpuGemm
{
    const int MR = 6;
    const int KC = 256;
    const int MC = 96;      // rows of A per block: 96 x 256 floats = 96 KiB, stays in L2
    const int NC = 3072;    // columns of B per block: 256 x 3072 floats = 3 MiB, stays in L3
    const long SingleThreadFlops = 1L << 22;

    readonly CpuParallel _parallel;
    readonly int _nr;
    readonly bool _use512, _use256;
    float[] _packedB = [];
    float* _packedBPtr;

    [ThreadStatic] static float[]? t_packedA;

    /// <param name="forceVector512">Run the Vector512 kernels even without AVX-512 (software vectors: slow; for checks).</param>
    public CpuGemm(CpuParallel parallel, bool allowVector512 = true, bool forceVector512 = false)
    {
        _parallel = parallel;
        _use512 = forceVector512 || (allowVector512 && Vector512.IsHardwareAccelerated);
        _use256 = !_use512 && Vector256.IsHardwareAccelerated;
        _nr = _use512 ? 32 : 16;
    }

    public int PanelWidth => _nr;
    public string Kernel => _use512 ? "Vector512 6x32" : _use256 ? "Vector256 6x16" : "scalar 6x16";

    public void Run(in GemmSpec s, float* a, float* b, float* c)
    {
        for (int z = 0; z < s.Matrices; z++)
            Single(s, a + s.BaseA(z), b + s.BaseB(z), c + s.BaseC(z), default(NoPacker));
    }

    /// <summary>C = alpha op(A) B + beta C where the packer supplies B's panels (s.TransB and batching are ignored).</summary>
    public void Run<TPacker>(in GemmSpec s, float* a, TPacker packer, float* c) where TPacker : struct, IPanelPacker =>
        Single(s, a, null, c, packer);

    struct NoPacker : IPanelPacker
    {
        public void Pack(float* dst, int pc, int kc, int j0, int cols, int nr) => throw new InvalidOperationException();
    }

    void Single<TPacker>(in GemmSpec s, float* a, float* b, float* c, TPacker packer) where TPacker : struct, IPanelPacker
    {
        int m = s.M, n = s.N, k = s.K;
        if (k == 0 || s.Alpha == 0f) { for (int i = 0; i < m; i++) ScaleC(c + (long)i * s.LdC, n, s.Beta); return; }

        bool parallel = _parallel.Threads > 1 && 2L * m * n * k >= SingleThreadFlops;
        int nr = _nr;
        for (int jc = 0; jc < n; jc += NC)
        {
            int nc = Math.Min(NC, n - jc);
            int nPanels = (nc + nr - 1) / nr;
            EnsurePackedB(nPanels * nr * KC);
            for (int pc = 0; pc < k; pc += KC)
            {
                int kc = Math.Min(KC, k - pc);
                float beta = pc == 0 ? s.Beta : 1f;
                if (b != null) PackBAll(s.TransB, b, s.LdB, pc, kc, jc, nc, nPanels, parallel);
                else for (int p = 0; p < nPanels; p++) packer.Pack(_packedBPtr + (long)p * nr * KC, pc, kc, jc + p * nr, Math.Min(nr, nc - p * nr), nr);

                int mBlocks = (m + MC - 1) / MC;
                // Short matrices: split the column panels too, so every thread has work.
                int nGroups = parallel && mBlocks < 2 * _parallel.Threads ? Math.Min(nPanels, _parallel.Threads * 2) : 1;
                int items = mBlocks * nGroups;
                var spec = s;
                var packedB = _packedBPtr;
                if (parallel && items > 1)
                    _parallel.Chunks(items, item => Block(spec, a, c, packedB, item / nGroups, item % nGroups, nGroups, nPanels, pc, kc, jc, nc, beta));
                else
                    for (int item = 0; item < items; item++)
                        Block(spec, a, c, packedB, item / nGroups, item % nGroups, nGroups, nPanels, pc, kc, jc, nc, beta);
            }
        }
    }

    void Block(in GemmSpec s, float* a, float* c, float* packedB, int mBlock, int group, int nGroups, int nPanels,
        int pc, int kc, int jc, int nc, float beta)
    {
        int ic = mBlock * MC, mc = Math.Min(MC, s.M - ic);
        int p0 = (int)((long)group * nPanels / nGroups), p1 = (int)((long)(group + 1) * nPanels / nGroups);
        if (p0 >= p1) return;
        var packedA = t_packedA ??= GC.AllocateArray<float>(MC * KC, pinned: true);
        fixed (float* pa = packedA)
        {
            PackA(s.TransA, a, s.LdA, ic, mc, pc, kc, pa);
            int nr = _nr, ldc = s.LdC;
            for (int panel = p0; panel < p1; panel++)
            {
                int jr = panel * nr, nrEff = Math.Min(nr, nc - jr);
                float* bp = packedB + (long)panel * nr * KC;
                for (int ir = 0; ir < mc; ir += MR)
                {
                    int mrEff = Math.Min(MR, mc - ir);
                    float* cTile = c + (long)(ic + ir) * ldc + jc + jr;
                    float* ap = pa + ir * kc;
                    if (_use512) Kernel512(kc, ap, bp, cTile, ldc, s.Alpha, beta, mrEff, nrEff);
                    else if (_use256) Kernel256(kc, ap, bp, cTile, ldc, s.Alpha, beta, mrEff, nrEff);
                    else KernelScalar(kc, ap, bp, cTile, ldc, s.Alpha, beta, mrEff, nrEff, nr);
                }
            }
        }
    }

    void EnsurePackedB(int length)
    {
        if (_packedB.Length >= length) return;
        _packedB = GC.AllocateArray<float>(length, pinned: true);
        _packedBPtr = (float*)Unsafe.AsPointer(ref _packedB[0]);
    }

    static void ScaleC(float* c, int count, float beta)
    {
        for (int i = 0; i < count; i++) c[i] = beta == 0f ? 0f : beta * c[i];
    }

    /// <summary>Packs op(A)[ic:ic+mc, pc:pc+kc] as MR-row panels, k-major inside a panel, zero-padded rows.</summary>
    static void PackA(bool transA, float* a, int lda, int ic, int mc, int pc, int kc, float* dst)
    {
        for (int ir = 0; ir < mc; ir += MR)
        {
            int rows = Math.Min(MR, mc - ir);
            float* panel = dst + ir * kc;
            if (!transA && rows == MR && Avx.IsSupported)
            {
                // A is m x k row-major: six rows of eight columns loaded as vectors and transposed in registers
                // (a scalar transpose here cost half the micro-kernel's time when n is small: Transformer layers).
                float* s0 = a + (long)(ic + ir) * lda + pc;
                int p = 0;
                for (; p + 8 < kc; p += 8) Transpose6x8(s0 + p, lda, panel + p * MR);   // "<": the spill lands in column p + 8
                for (; p < kc; p++)
                    for (int r = 0; r < MR; r++) panel[p * MR + r] = s0[(long)r * lda + p];
            }
            else if (!transA)
            {
                // A is m x k row-major: element (i, p) at a[i*lda + p].
                for (int r = 0; r < MR; r++)
                {
                    if (r < rows)
                    {
                        float* src = a + (long)(ic + ir + r) * lda + pc;
                        for (int p = 0; p < kc; p++) panel[p * MR + r] = src[p];
                    }
                    else for (int p = 0; p < kc; p++) panel[p * MR + r] = 0f;
                }
            }
            else
            {
                // A is stored k x m: element (i, p) at a[p*lda + i], rows of a panel are contiguous.
                for (int p = 0; p < kc; p++)
                {
                    float* src = a + (long)(pc + p) * lda + ic + ir;
                    float* d = panel + p * MR;
                    int r = 0;
                    for (; r < rows; r++) d[r] = src[r];
                    for (; r < MR; r++) d[r] = 0f;
                }
            }
        }
    }

    /// <summary>Writes columns 0..7 of six rows (row r at src + r*lda) k-major, six floats a column, to dst. Each
    /// column is stored as eight floats whose last two (zeros) are overwritten by the next column, so dst needs
    /// room for 8 x 6 + 2 floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Transpose6x8(float* src, int lda, float* dst)
    {
        var r0 = Avx.LoadVector256(src); var r1 = Avx.LoadVector256(src + lda);
        var r2 = Avx.LoadVector256(src + 2L * lda); var r3 = Avx.LoadVector256(src + 3L * lda);
        var r4 = Avx.LoadVector256(src + 4L * lda); var r5 = Avx.LoadVector256(src + 5L * lda);
        var z = Vector256<float>.Zero;
        var t0 = Avx.UnpackLow(r0, r1); var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3); var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5); var t5 = Avx.UnpackHigh(r4, r5);
        var u0 = Avx.Shuffle(t0, t2, 0x44); var u1 = Avx.Shuffle(t0, t2, 0xEE);
        var u2 = Avx.Shuffle(t1, t3, 0x44); var u3 = Avx.Shuffle(t1, t3, 0xEE);
        var u4 = Avx.Shuffle(t4, z, 0x44); var u5 = Avx.Shuffle(t4, z, 0xEE);
        var u6 = Avx.Shuffle(t5, z, 0x44); var u7 = Avx.Shuffle(t5, z, 0xEE);
        Avx.Store(dst + 0 * MR, Avx.Permute2x128(u0, u4, 0x20));
        Avx.Store(dst + 1 * MR, Avx.Permute2x128(u1, u5, 0x20));
        Avx.Store(dst + 2 * MR, Avx.Permute2x128(u2, u6, 0x20));
        Avx.Store(dst + 3 * MR, Avx.Permute2x128(u3, u7, 0x20));
        Avx.Store(dst + 4 * MR, Avx.Permute2x128(u0, u4, 0x31));
        Avx.Store(dst + 5 * MR, Avx.Permute2x128(u1, u5, 0x31));
        Avx.Store(dst + 6 * MR, Avx.Permute2x128(u2, u6, 0x31));
        Avx.Store(dst + 7 * MR, Avx.Permute2x128(u3, u7, 0x31));
    }

    void PackBAll(bool transB, float* b, int ldb, int pc, int kc, int jc, int nc, int nPanels, bool parallel)
    {
        float* dst = _packedBPtr;
        int nr = _nr;
        if (parallel && (long)kc * nc > 1 << 15)
            _parallel.For(nPanels, (long)kc * nr, (p0, p1) => { for (int p = p0; p < p1; p++) PackBPanel(transB, b, ldb, pc, kc, jc + p * nr, Math.Min(nr, nc - p * nr), nr, dst + (long)p * nr * KC); }, 1);
        else
            for (int p = 0; p < nPanels; p++) PackBPanel(transB, b, ldb, pc, kc, jc + p * nr, Math.Min(nr, nc - p * nr), nr, dst + (long)p * nr * KC);
    }

    /// <summary>Packs op(B)[pc:pc+kc, j0:j0+cols] into one k-major NR-wide panel, zero-padded columns.</summary>
    static void PackBPanel(bool transB, float* b, int ldb, int pc, int kc, int j0, int cols, int nr, float* dst)
    {
        if (!transB)
        {
            for (int p = 0; p < kc; p++)
            {
                float* src = b + (long)(pc + p) * ldb + j0;
                float* d = dst + p * nr;
                if (cols == nr)
                {
                    if (nr == 32) { Vector512.Store(Vector512.Load(src), d); Vector512.Store(Vector512.Load(src + 16), d + 16); }
                    else for (int j = 0; j < nr; j++) d[j] = src[j];
                }
                else
                {
                    int j = 0;
                    for (; j < cols; j++) d[j] = src[j];
                    for (; j < nr; j++) d[j] = 0f;
                }
            }
        }
        else
        {
            // B is stored n x k: element (p, j) at b[j*ldb + p]; walk each source row contiguously.
            for (int j = 0; j < nr; j++)
            {
                if (j < cols)
                {
                    float* src = b + (long)(j0 + j) * ldb + pc;
                    for (int p = 0; p < kc; p++) dst[p * nr + j] = src[p];
                }
                else for (int p = 0; p < kc; p++) dst[p * nr + j] = 0f;
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Kernel512(int kc, float* a, float* b, float* c, int ldc, float alpha, float beta, int mr, int nr)
    {
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector512<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        for (int p = 0; p < kc; p++)
        {
            var b0 = Vector512.Load(b);
            var b1 = Vector512.Load(b + 16);
            var av = Vector512.Create(a[0]); c00 = Vector512.FusedMultiplyAdd(av, b0, c00); c01 = Vector512.FusedMultiplyAdd(av, b1, c01);
            av = Vector512.Create(a[1]); c10 = Vector512.FusedMultiplyAdd(av, b0, c10); c11 = Vector512.FusedMultiplyAdd(av, b1, c11);
            av = Vector512.Create(a[2]); c20 = Vector512.FusedMultiplyAdd(av, b0, c20); c21 = Vector512.FusedMultiplyAdd(av, b1, c21);
            av = Vector512.Create(a[3]); c30 = Vector512.FusedMultiplyAdd(av, b0, c30); c31 = Vector512.FusedMultiplyAdd(av, b1, c31);
            av = Vector512.Create(a[4]); c40 = Vector512.FusedMultiplyAdd(av, b0, c40); c41 = Vector512.FusedMultiplyAdd(av, b1, c41);
            av = Vector512.Create(a[5]); c50 = Vector512.FusedMultiplyAdd(av, b0, c50); c51 = Vector512.FusedMultiplyAdd(av, b1, c51);
            a += MR; b += 32;
        }
        if (nr == 32)
        {
            // Full-width tiles store row by row with vectors, also when the last row block has fewer than 6 rows.
            Store512(c, c00, c01, alpha, beta);
            if (mr > 1) Store512(c + ldc, c10, c11, alpha, beta);
            if (mr > 2) Store512(c + 2 * ldc, c20, c21, alpha, beta);
            if (mr > 3) Store512(c + 3 * ldc, c30, c31, alpha, beta);
            if (mr > 4) Store512(c + 4 * ldc, c40, c41, alpha, beta);
            if (mr > 5) Store512(c + 5 * ldc, c50, c51, alpha, beta);
            return;
        }
        float* tile = stackalloc float[MR * 32];
        Vector512.Store(c00, tile); Vector512.Store(c01, tile + 16); Vector512.Store(c10, tile + 32); Vector512.Store(c11, tile + 48);
        Vector512.Store(c20, tile + 64); Vector512.Store(c21, tile + 80); Vector512.Store(c30, tile + 96); Vector512.Store(c31, tile + 112);
        Vector512.Store(c40, tile + 128); Vector512.Store(c41, tile + 144); Vector512.Store(c50, tile + 160); Vector512.Store(c51, tile + 176);
        StoreEdge(tile, 32, c, ldc, alpha, beta, mr, nr);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Store512(float* c, Vector512<float> lo, Vector512<float> hi, float alpha, float beta)
    {
        var va = Vector512.Create(alpha);
        if (beta == 0f)
        {
            Vector512.Store(lo * va, c); Vector512.Store(hi * va, c + 16);
        }
        else
        {
            var vb = Vector512.Create(beta);
            Vector512.Store(Vector512.FusedMultiplyAdd(lo, va, Vector512.Load(c) * vb), c);
            Vector512.Store(Vector512.FusedMultiplyAdd(hi, va, Vector512.Load(c + 16) * vb), c + 16);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Kernel256(int kc, float* a, float* b, float* c, int ldc, float alpha, float beta, int mr, int nr)
    {
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector256<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        for (int p = 0; p < kc; p++)
        {
            var b0 = Vector256.Load(b);
            var b1 = Vector256.Load(b + 8);
            var av = Vector256.Create(a[0]); c00 = Vector256.FusedMultiplyAdd(av, b0, c00); c01 = Vector256.FusedMultiplyAdd(av, b1, c01);
            av = Vector256.Create(a[1]); c10 = Vector256.FusedMultiplyAdd(av, b0, c10); c11 = Vector256.FusedMultiplyAdd(av, b1, c11);
            av = Vector256.Create(a[2]); c20 = Vector256.FusedMultiplyAdd(av, b0, c20); c21 = Vector256.FusedMultiplyAdd(av, b1, c21);
            av = Vector256.Create(a[3]); c30 = Vector256.FusedMultiplyAdd(av, b0, c30); c31 = Vector256.FusedMultiplyAdd(av, b1, c31);
            av = Vector256.Create(a[4]); c40 = Vector256.FusedMultiplyAdd(av, b0, c40); c41 = Vector256.FusedMultiplyAdd(av, b1, c41);
            av = Vector256.Create(a[5]); c50 = Vector256.FusedMultiplyAdd(av, b0, c50); c51 = Vector256.FusedMultiplyAdd(av, b1, c51);
            a += MR; b += 16;
        }
        float* tile = stackalloc float[MR * 16];
        Vector256.Store(c00, tile); Vector256.Store(c01, tile + 8); Vector256.Store(c10, tile + 16); Vector256.Store(c11, tile + 24);
        Vector256.Store(c20, tile + 32); Vector256.Store(c21, tile + 40); Vector256.Store(c30, tile + 48); Vector256.Store(c31, tile + 56);
        Vector256.Store(c40, tile + 64); Vector256.Store(c41, tile + 72); Vector256.Store(c50, tile + 80); Vector256.Store(c51, tile + 88);
        StoreEdge(tile, 16, c, ldc, alpha, beta, mr, nr);
    }

    static void KernelScalar(int kc, float* a, float* b, float* c, int ldc, float alpha, float beta, int mr, int nr, int nrFull)
    {
        float* tile = stackalloc float[MR * nrFull];
        for (int i = 0; i < MR * nrFull; i++) tile[i] = 0f;
        for (int p = 0; p < kc; p++)
            for (int r = 0; r < MR; r++)
            {
                float av = a[p * MR + r];
                for (int j = 0; j < nrFull; j++) tile[r * nrFull + j] = MathF.FusedMultiplyAdd(av, b[p * nrFull + j], tile[r * nrFull + j]);
            }
        StoreEdge(tile, nrFull, c, ldc, alpha, beta, mr, nr);
    }

    static void StoreEdge(float* tile, int tileStride, float* c, int ldc, float alpha, float beta, int mr, int nr)
    {
        for (int r = 0; r < mr; r++)
            for (int j = 0; j < nr; j++)
            {
                float* dst = c + (long)r * ldc + j;
                *dst = beta == 0f ? alpha * tile[r * tileStride + j] : MathF.FusedMultiplyAdd(tile[r * tileStride + j], alpha, *dst * beta);
            }
    }
}
