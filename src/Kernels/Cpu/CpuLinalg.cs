using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace LsKd.Kernels.Cpu;

/// <summary>Dense linear algebra for the analysis: Householder QR of tall-skinny matrices and the parallel
/// Jacobi eigen-solver (PCA's covariance is composed in <see cref="BackendBase.Covariance"/>).</summary>
public unsafe partial class CpuBackend
{
    /// <summary>Columns per panel of the blocked QR.</summary>
    const int QrBlock = 32;

    /// <summary>
    /// Blocked Householder QR (LAPACK's geqrf/orgqr scheme) on a row-major copy W of a. Each panel of 32 columns is
    /// factored column by column: one pass forms w = v^T W over the panel (row chunks with float64 partial sums,
    /// SIMD across columns), a second applies W -= 2 v w^T and sums the squares of the next column. The panel's
    /// reflectors then act on the rest of the matrix at once as I - V T V^T (compact WY, T upper triangular),
    /// through two GEMMs on contiguous copies. Q = H_0 ... H_{n-1} [I; 0] is accumulated backwards panel by panel
    /// in the same way; R's diagonal is made non-negative.
    /// </summary>
    protected override void HouseholderQrCore(DeviceBuffer<float> a, DeviceBuffer<float> q, DeviceBuffer<float> r, int m, int n)
    {
        float* qp = P(q), rp = P(r);
        long size = (long)m * n;
        int panels = (n + QrBlock - 1) / QrBlock;
        // Panel p's reflectors, (m - j0) x b row-major, one after another: exactly the V the GEMMs need.
        var offsets = new long[panels + 1];
        for (int p = 0; p < panels; p++) offsets[p + 1] = offsets[p] + (long)(m - p * QrBlock) * Math.Min(QrBlock, n - p * QrBlock);
        float* w = Alloc(size), reflectors = Alloc(offsets[panels]), panel = Alloc((long)m * QrBlock);
        float* work = Alloc((long)m * (n + QrBlock) + 2L * QrBlock * n);   // trailing block, Y, Z
        float* v = Alloc(m), dots = Alloc(QrBlock);
        var ts = new double[panels][];
        try
        {
            Buffer.MemoryCopy(P(a), w, size * sizeof(float), size * sizeof(float));
            for (int p = 0; p < panels; p++)
            {
                int j0 = p * QrBlock, b = Math.Min(QrBlock, n - j0), rows = m - j0;
                float* vp = reflectors + offsets[p];
                // Factor the panel in a contiguous rows x b copy (short rows: no TLB misses, the panel stays in cache).
                CopyBlock(w, n, j0, j0, rows, b, panel, toBlock: true);
                new Span<float>(vp, rows * b).Clear();
                double norm2 = 0;
                for (int i = 0; i < rows; i++) { double x = panel[(long)i * b]; norm2 += x * x; }
                for (int j = 0; j < b; j++)
                {
                    double x0 = panel[(long)j * b + j], norm = Math.Sqrt(norm2);
                    double alpha = x0 >= 0 ? -norm : norm;
                    double vnorm2 = 2 * norm * (norm + Math.Abs(x0));      // |x - alpha e_1|^2, without cancellation
                    double inv = vnorm2 > 0 ? 1 / Math.Sqrt(vnorm2) : 0;   // a zero column reflects nothing
                    for (int i = j; i < rows; i++)
                    {
                        double x = i == j ? x0 - alpha : panel[(long)i * b + j];
                        v[i] = (float)(x * inv);
                        vp[(long)i * b + j] = v[i];
                    }
                    panel[(long)j * b + j] = (float)alpha;
                    norm2 = ReflectTrailing(panel, v, dots, rows, b, j, j + 1, b, nextColumnNorm: j + 1 < b);
                }
                CopyBlock(w, n, j0, j0, b, b, panel, toBlock: false);   // the panel's rows of R
                ts[p] = BlockReflectorT(vp, work, rows, b);
                if (j0 + b < n) ApplyBlockReflector(w, vp, work, m, n, j0, b, j0 + b, ts[p], transposeT: true);
            }

            // R gets a non-negative diagonal: row j of R and column j of Q change sign together.
            var sign = new float[n];
            for (int j = 0; j < n; j++)
            {
                sign[j] = w[(long)j * n + j] < 0 ? -1f : 1f;
                for (int c = 0; c < n; c++) rp[(long)j * n + c] = c >= j ? sign[j] * w[(long)j * n + c] : 0f;
            }
            new Span<float>(qp, (int)size).Clear();
            for (int j = 0; j < n; j++) qp[(long)j * n + j] = 1f;
            for (int p = panels - 1; p >= 0; p--)
            {
                int j0 = p * QrBlock;
                ApplyBlockReflector(qp, reflectors + offsets[p], work, m, n, j0, Math.Min(QrBlock, n - j0), j0, ts[p], transposeT: false);
            }
            _parallel.For(m, n, (i0, i1) =>
            {
                for (long i = i0; i < i1; i++)
                    for (int j = 0; j < n; j++) qp[i * n + j] *= sign[j];
            });
        }
        finally
        {
            NativeMemory.AlignedFree(w); NativeMemory.AlignedFree(reflectors); NativeMemory.AlignedFree(panel);
            NativeMemory.AlignedFree(work); NativeMemory.AlignedFree(v); NativeMemory.AlignedFree(dots);
        }
    }

    static float* Alloc(long count) => (float*)NativeMemory.AlignedAlloc((nuint)(Math.Max(1, count) * sizeof(float)), 64);

    /// <summary>T of H_0 ... H_(b-1) = I - V T V^T for a panel's reflectors vp (rows x b; LAPACK larft, forward,
    /// columnwise) with H = I - tau v v^T, tau = 2 for a unit reflector and 0 for an empty one:
    /// T[i, i] = tau_i, T[:i, i] = -tau_i T[:i, :i] (V^T V)[:i, i].</summary>
    double[] BlockReflectorT(float* vp, float* work, int rows, int b)
    {
        float* gram = work;
        _gemm.Run(new GemmSpec(TransA: true, TransB: false, M: b, N: b, K: rows), vp, vp, gram);
        var t = new double[b * b];
        for (int i = 0; i < b; i++)
        {
            double tau = gram[i * b + i] > 0 ? 2 : 0;
            t[i * b + i] = tau;
            for (int row = 0; row < i; row++)
            {
                double acc = 0;
                for (int k = row; k < i; k++) acc += t[row * b + k] * gram[k * b + i];
                t[row * b + i] = -tau * acc;
            }
        }
        return t;
    }

    /// <summary>mat[row0:, col0:] = (I - V T' V^T) mat[row0:, col0:] with T' = T^T (applying Q^T, factorisation) or
    /// T (applying Q, forming Q), V = a panel's reflectors vp ((m - row0) x b). Two GEMMs on a contiguous copy of
    /// the block: Y = V^T M, then M -= V (T' Y).</summary>
    void ApplyBlockReflector(float* mat, float* vp, float* work, int m, int n, int row0, int b, int col0, double[] t, bool transposeT)
    {
        int rows = m - row0, cols = n - col0;
        float* mt = work, y = mt + (long)rows * cols, z = y + (long)b * cols;
        CopyBlock(mat, n, row0, col0, rows, cols, mt, toBlock: true);
        _gemm.Run(new GemmSpec(TransA: true, TransB: false, M: b, N: cols, K: rows), vp, mt, y);
        for (int i = 0; i < b; i++)
            for (int c = 0; c < cols; c++)
            {
                double acc = 0;
                for (int k = 0; k < b; k++) acc += (transposeT ? t[k * b + i] : t[i * b + k]) * y[(long)k * cols + c];
                z[(long)i * cols + c] = (float)acc;
            }
        _gemm.Run(new GemmSpec(TransA: false, TransB: false, M: rows, N: cols, K: b, Alpha: -1f, Beta: 1f), vp, z, mt);
        CopyBlock(mat, n, row0, col0, rows, cols, mt, toBlock: false);
    }

    /// <summary>Copies the rows x cols block at (row0, col0) of a row-major matrix with n columns to or from a
    /// contiguous buffer.</summary>
    void CopyBlock(float* mat, int n, int row0, int col0, int rows, int cols, float* block, bool toBlock)
    {
        _parallel.For(rows, cols, (i0, i1) =>
        {
            for (long i = i0; i < i1; i++)
            {
                float* src = mat + (row0 + i) * n + col0, dst = block + i * cols;
                if (toBlock) Buffer.MemoryCopy(src, dst, cols * sizeof(float), cols * sizeof(float));
                else Buffer.MemoryCopy(dst, src, cols * sizeof(float), cols * sizeof(float));
            }
        });
    }

    /// <summary>mat[i, c] -= 2 v[i] (v^T mat)[c] for rows i >= row0 and columns col0 &lt;= c &lt; colEnd; returns the
    /// sum of squares of the updated column col0 over rows > row0 when asked (the next step's column norm).</summary>
    double ReflectTrailing(float* mat, float* v, float* dots, int m, int n, int row0, int col0, int colEnd, bool nextColumnNorm)
    {
        int width = colEnd - col0, rows = m - row0;
        if (width <= 0) return 0;
        int chunks = (long)rows * width < (1 << 15) ? 1 : Math.Min(_parallel.Threads, rows);
        var partial = new double[chunks * width];
        _parallel.Chunks(chunks, ch =>
        {
            int i0 = row0 + (int)((long)ch * rows / chunks), i1 = row0 + (int)((long)(ch + 1) * rows / chunks);
            float* acc = stackalloc float[width];
            new Span<float>(acc, width).Clear();
            int inBlock = 0;
            for (int i = i0; i < i1; i++)
            {
                float* row = mat + (long)i * n + col0;
                var s = Vector256.Create(v[i]);
                int c = 0;
                for (; c <= width - 8; c += 8) Vector256.FusedMultiplyAdd(s, Vector256.Load(row + c), Vector256.Load(acc + c)).Store(acc + c);
                for (; c < width; c++) acc[c] += v[i] * row[c];
                // Fold into float64 every 64 rows: float sums stay short, so long columns lose no accuracy.
                if (++inBlock == 64 || i == i1 - 1)
                {
                    for (c = 0; c < width; c++) { partial[ch * width + c] += acc[c]; acc[c] = 0f; }
                    inBlock = 0;
                }
            }
        });
        for (int c = 0; c < width; c++)
        {
            double s = 0;
            for (int ch = 0; ch < chunks; ch++) s += partial[ch * width + c];
            dots[c] = (float)s;
        }
        var norms = new double[chunks];
        _parallel.Chunks(chunks, ch =>
        {
            int i0 = row0 + (int)((long)ch * rows / chunks), i1 = row0 + (int)((long)(ch + 1) * rows / chunks);
            double norm = 0;
            for (int i = i0; i < i1; i++)
            {
                float* row = mat + (long)i * n + col0;
                var s = Vector256.Create(-2f * v[i]);
                int c = 0;
                for (; c <= width - 8; c += 8) Vector256.FusedMultiplyAdd(s, Vector256.Load(dots + c), Vector256.Load(row + c)).Store(row + c);
                for (; c < width; c++) row[c] += -2f * v[i] * dots[c];
                if (nextColumnNorm && i > row0) { double x = row[0]; norm += x * x; }
            }
            norms[ch] = norm;
        });
        return norms.Sum();
    }

    /// <summary>
    /// Symmetric eigen-decomposition in float64 by Householder reduction to tridiagonal form followed by the
    /// implicit QL algorithm (the EISPACK tred2/tql2 pair, O(d^3) with a small constant; the ILGPU backend uses
    /// parallel Jacobi instead, which suits a GPU). The QL rotations act on rows of V^T, so they are contiguous
    /// four-lane updates.
    /// </summary>
    protected override void SymmetricEigenCore(DeviceBuffer<float> a, DeviceBuffer<float> eigenvalues, DeviceBuffer<float> eigenvectors, int d)
    {
        float* ap = P(a);
        var v = new double[d * d];
        for (int i = 0; i < d * d; i++) v[i] = ap[i];
        var diag = new double[d]; var off = new double[d];
        Tridiagonalize(v, diag, off, d);                  // v: rows = the basis vectors
        TridiagonalQl(v, diag, off, d);
        float* vp = P(eigenvalues), ep = P(eigenvectors);
        for (int i = 0; i < d; i++) vp[i] = (float)diag[i];
        for (int i = 0; i < d * d; i++) ep[i] = (float)v[i];
    }

    /// <summary>Householder tridiagonalisation of the symmetric v, stored transposed relative to the textbook
    /// (EISPACK tred2) so every O(d^3) inner loop runs along a row; v is overwritten by the accumulated
    /// orthogonal transformation with rows = basis vectors. diag and off receive the tridiagonal matrix.</summary>
    static void Tridiagonalize(double[] v, double[] diag, double[] off, int n)
    {
        for (int j = 0; j < n; j++) diag[j] = v[j * n + (n - 1)];
        for (int i = n - 1; i > 0; i--)
        {
            double scale = 0, h = 0;
            for (int k = 0; k < i; k++) scale += Math.Abs(diag[k]);
            if (scale == 0)
            {
                off[i] = diag[i - 1];
                for (int j = 0; j < i; j++) { diag[j] = v[j * n + (i - 1)]; v[j * n + i] = 0; v[i * n + j] = 0; }
            }
            else
            {
                for (int k = 0; k < i; k++) { diag[k] /= scale; h += diag[k] * diag[k]; }
                double f = diag[i - 1], g = Math.Sqrt(h);
                if (f > 0) g = -g;
                off[i] = scale * g;
                h -= f * g;
                diag[i - 1] = f - g;
                for (int j = 0; j < i; j++) off[j] = 0;
                for (int j = 0; j < i; j++)
                {
                    f = diag[j];
                    v[i * n + j] = f;
                    g = off[j] + v[j * n + j] * f;
                    for (int k = j + 1; k <= i - 1; k++) { g += v[j * n + k] * diag[k]; off[k] += v[j * n + k] * f; }
                    off[j] = g;
                }
                f = 0;
                for (int j = 0; j < i; j++) { off[j] /= h; f += off[j] * diag[j]; }
                double hh = f / (h + h);
                for (int j = 0; j < i; j++) off[j] -= hh * diag[j];
                for (int j = 0; j < i; j++)
                {
                    f = diag[j]; g = off[j];
                    for (int k = j; k <= i - 1; k++) v[j * n + k] -= f * off[k] + g * diag[k];
                    diag[j] = v[j * n + (i - 1)];
                    v[j * n + i] = 0;
                }
            }
            diag[i] = h;
        }
        // Accumulate the transformations.
        for (int i = 0; i < n - 1; i++)
        {
            v[i * n + (n - 1)] = v[i * n + i];
            v[i * n + i] = 1;
            double h = diag[i + 1];
            if (h != 0)
            {
                for (int k = 0; k <= i; k++) diag[k] = v[(i + 1) * n + k] / h;
                for (int j = 0; j <= i; j++)
                {
                    double g = 0;
                    for (int k = 0; k <= i; k++) g += v[(i + 1) * n + k] * v[j * n + k];
                    for (int k = 0; k <= i; k++) v[j * n + k] -= g * diag[k];
                }
            }
            for (int k = 0; k <= i; k++) v[(i + 1) * n + k] = 0;
        }
        for (int j = 0; j < n; j++) { diag[j] = v[j * n + (n - 1)]; v[j * n + (n - 1)] = 0; }
        v[(n - 1) * n + (n - 1)] = 1;
        off[0] = 0;
    }

    /// <summary>Implicit QL iterations with Wilkinson-style shifts on the tridiagonal (diag, off); vt's rows are
    /// rotated along, ending as the eigenvectors; diag ends as the eigenvalues (unordered).</summary>
    static void TridiagonalQl(double[] vt, double[] diag, double[] off, int n)
    {
        for (int i = 1; i < n; i++) off[i - 1] = off[i];
        off[n - 1] = 0;
        double shift = 0, norm = 0, eps = Math.Pow(2, -52);
        for (int l = 0; l < n; l++)
        {
            norm = Math.Max(norm, Math.Abs(diag[l]) + Math.Abs(off[l]));
            int m = l;
            while (m < n - 1 && Math.Abs(off[m]) > eps * norm) m++;
            if (m > l)
            {
                for (int iteration = 0; iteration < 60; iteration++)
                {
                    double g = diag[l];
                    double p = (diag[l + 1] - g) / (2 * off[l]);
                    double r = Hypot(p, 1);
                    if (p < 0) r = -r;
                    diag[l] = off[l] / (p + r);
                    diag[l + 1] = off[l] * (p + r);
                    double dl1 = diag[l + 1], h = g - diag[l];
                    for (int i = l + 2; i < n; i++) diag[i] -= h;
                    shift += h;
                    p = diag[m];
                    double c = 1, c2 = 1, c3 = 1, el1 = off[l + 1], s = 0, s2 = 0;
                    for (int i = m - 1; i >= l; i--)
                    {
                        c3 = c2; c2 = c; s2 = s;
                        g = c * off[i]; h = c * p;
                        r = Hypot(p, off[i]);
                        off[i + 1] = s * r;
                        s = off[i] / r; c = p / r;
                        p = c * diag[i] - s * g;
                        diag[i + 1] = h + s * (c * g + s * diag[i]);
                        // Columns i, i+1 of V are rows i, i+1 of V^T: (x, y) -> (c x - s y, s x + c y) with x = row i.
                        RotateRows(vt, n, i, i + 1, c, s);
                    }
                    p = -s * s2 * c3 * el1 * off[l] / dl1;
                    off[l] = s * p;
                    diag[l] = c * p;
                    if (Math.Abs(off[l]) <= eps * norm) break;
                }
            }
            diag[l] += shift;
            off[l] = 0;
        }
    }

    static double Hypot(double a, double b)
    {
        double x = Math.Abs(a), y = Math.Abs(b);
        if (x < y) (x, y) = (y, x);
        if (x == 0) return 0;
        double t = y / x;
        return x * Math.Sqrt(1 + t * t);
    }

    /// <summary>Rows p and q of m become c m_p - s m_q and s m_p + c m_q (four float64 lanes at a time).</summary>
    static void RotateRows(double[] m, int d, int p, int q, double c, double s)
    {
        fixed (double* mp = m)
        {
            double* rp = mp + (long)p * d, rq = mp + (long)q * d;
            var vc = Vector256.Create(c); var vs = Vector256.Create(s);
            int j = 0;
            for (; j <= d - 4; j += 4)
            {
                var x = Vector256.Load(rp + j); var y = Vector256.Load(rq + j);
                (vc * x - vs * y).Store(rp + j);
                (vs * x + vc * y).Store(rq + j);
            }
            for (; j < d; j++) { double x = rp[j], y = rq[j]; rp[j] = c * x - s * y; rq[j] = s * x + c * y; }
        }
    }
}
