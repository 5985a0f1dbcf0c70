using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace LsKd.Kernels.Cpu;

/// <summary>Dense linear algebra for the analysis: Householder QR of tall-skinny matrices and the parallel
/// Jacobi eigen-solver (PCA's covariance is composed in <see cref="BackendBase.Covariance"/>).</summary>
public unsafe partial class CpuBackend
{
    /// <summary>
    /// Unblocked Householder QR on a row-major copy W of a. Step j reflects rows j.. of the trailing columns with
    /// H = I - 2 v v^T (unit v): one pass forms w = v^T W (row chunks with private float64 sums, SIMD across
    /// columns), a second applies W -= 2 v w^T and, in the same sweep, sums the squares of the next column, so a
    /// column's norm never costs a strided pass of its own. The reflectors are kept in the columns of q (v_j has
    /// zeros above row j); Q = H_0 ... H_{n-1} [I; 0] is then accumulated backwards in place.
    /// </summary>
    protected override void HouseholderQrCore(DeviceBuffer<float> a, DeviceBuffer<float> q, DeviceBuffer<float> r, int m, int n)
    {
        float* qp = P(q), rp = P(r);
        long size = (long)m * n;
        float* w = (float*)NativeMemory.AlignedAlloc((nuint)(size * sizeof(float)), 64);
        float* v = (float*)NativeMemory.AlignedAlloc((nuint)m * sizeof(float), 64);
        float* dots = (float*)NativeMemory.AlignedAlloc((nuint)n * sizeof(float), 64);
        try
        {
            Buffer.MemoryCopy(P(a), w, size * sizeof(float), size * sizeof(float));
            new Span<float>(qp, (int)size).Clear();
            double norm2 = 0;
            for (int i = 0; i < m; i++) { double x = w[(long)i * n]; norm2 += x * x; }
            for (int j = 0; j < n; j++)
            {
                double x0 = w[(long)j * n + j], norm = Math.Sqrt(norm2);
                double alpha = x0 >= 0 ? -norm : norm;
                double vnorm2 = 2 * norm * (norm + Math.Abs(x0));      // |x - alpha e_1|^2, without cancellation
                double inv = vnorm2 > 0 ? 1 / Math.Sqrt(vnorm2) : 0;   // a zero column reflects nothing
                for (int i = j; i < m; i++)
                {
                    double x = i == j ? x0 - alpha : w[(long)i * n + j];
                    v[i] = (float)(x * inv);
                    qp[(long)i * n + j] = v[i];
                }
                w[(long)j * n + j] = (float)alpha;
                norm2 = ReflectTrailing(w, v, dots, m, n, j, j + 1, nextColumnNorm: true);
            }

            // R gets a non-negative diagonal: row j of R and column j of Q change sign together.
            var sign = new float[n];
            for (int j = 0; j < n; j++)
            {
                sign[j] = w[(long)j * n + j] < 0 ? -1f : 1f;
                for (int c = 0; c < n; c++) rp[(long)j * n + c] = c >= j ? sign[j] * w[(long)j * n + c] : 0f;
            }
            for (int j = n - 1; j >= 0; j--)
            {
                for (int i = j; i < m; i++) v[i] = qp[(long)i * n + j];
                ReflectTrailing(qp, v, dots, m, n, j, j + 1, nextColumnNorm: false);
                float vj = v[j];
                for (int i = j; i < m; i++) qp[(long)i * n + j] = (i == j ? 1f : 0f) - 2f * v[i] * vj;
            }
            _parallel.For(m, n, (i0, i1) =>
            {
                for (long i = i0; i < i1; i++)
                    for (int j = 0; j < n; j++) qp[i * n + j] *= sign[j];
            });
        }
        finally
        {
            NativeMemory.AlignedFree(w); NativeMemory.AlignedFree(v); NativeMemory.AlignedFree(dots);
        }
    }

    /// <summary>mat[i, c] -= 2 v[i] (v^T mat)[c] for rows i >= row0 and columns c >= col0; returns the sum of
    /// squares of the updated column col0 over rows > row0 when asked (the next step's column norm).</summary>
    double ReflectTrailing(float* mat, float* v, float* dots, int m, int n, int row0, int col0, bool nextColumnNorm)
    {
        int width = n - col0, rows = m - row0;
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

    /// <summary>Parallel cyclic Jacobi in float64. Each round rotates D/2 disjoint pairs: rows p, q of A (J^T A),
    /// then columns p, q of every row (A J), and rows p, q of V^T (the eigenvectors, kept as rows so the update
    /// is contiguous). Sweeps stop when the off-diagonal norm falls below 1e-13 of the total.</summary>
    protected override void SymmetricEigenCore(DeviceBuffer<float> a, DeviceBuffer<float> eigenvalues, DeviceBuffer<float> eigenvectors, int d)
    {
        float* ap = P(a);
        var A = new double[d * d];
        for (int i = 0; i < d * d; i++) A[i] = ap[i];
        var Vt = new double[d * d];
        for (int i = 0; i < d; i++) Vt[i * d + i] = 1;
        double total = 0;
        foreach (double x in A) total += x * x;
        int padded = Jacobi.PaddedSize(d), pairs = padded / 2;
        var ps = new int[pairs]; var qs = new int[pairs]; var cs = new double[pairs]; var ss = new double[pairs];
        for (int sweep = 0; sweep < Jacobi.MaxSweeps; sweep++)
        {
            double off = 0;
            for (int i = 0; i < d; i++) for (int j = 0; j < d; j++) if (i != j) off += A[i * d + j] * A[i * d + j];
            if (off <= Jacobi.RelativeTolerance * Jacobi.RelativeTolerance * total) break;
            for (int round = 0; round < padded - 1; round++)
            {
                for (int k = 0; k < pairs; k++)
                {
                    Jacobi.Pair(padded, round, k, out ps[k], out qs[k]);
                    if (qs[k] >= d) { cs[k] = 1; ss[k] = 0; continue; }
                    Jacobi.Rotation(A[ps[k] * d + ps[k]], A[qs[k] * d + qs[k]], A[ps[k] * d + qs[k]], out cs[k], out ss[k]);
                }
                _parallel.For(pairs, 4L * d, (k0, k1) =>
                {
                    for (int k = k0; k < k1; k++)
                    {
                        if (qs[k] >= d || ss[k] == 0) continue;
                        RotateRows(A, d, ps[k], qs[k], cs[k], ss[k]);
                        RotateRows(Vt, d, ps[k], qs[k], cs[k], ss[k]);
                    }
                });
                _parallel.For(d, 4L * pairs, (l0, l1) =>
                {
                    for (int l = l0; l < l1; l++)
                    {
                        int row = l * d;
                        for (int k = 0; k < pairs; k++)
                        {
                            if (qs[k] >= d || ss[k] == 0) continue;
                            double x = A[row + ps[k]], y = A[row + qs[k]];
                            A[row + ps[k]] = cs[k] * x - ss[k] * y;
                            A[row + qs[k]] = ss[k] * x + cs[k] * y;
                        }
                    }
                });
            }
        }
        float* vp = P(eigenvalues), ep = P(eigenvectors);
        for (int i = 0; i < d; i++) vp[i] = (float)A[i * d + i];
        for (int i = 0; i < d * d; i++) ep[i] = (float)Vt[i];
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
