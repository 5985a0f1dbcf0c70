using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Algorithms.ScanReduceOperations;
using ILGPU.Runtime;

namespace LsKd.Kernels.Gpu;

using FView = ArrayView1D<float, Stride1D.Dense>;
using DView = ArrayView1D<double, Stride1D.Dense>;
using IView = ArrayView1D<int, Stride1D.Dense>;

/// <summary>Householder QR and the Jacobi eigen-solver on an ILGPU accelerator: the same algorithms as the CPU
/// backend, one launch per step (the host loops over columns, rounds and sweeps).</summary>
public sealed partial class IlgpuBackend
{
    const int QrRowsPerBlock = 128;
    Action<KernelConfig, FView, FView, FView, int, int, int>? _qrReflector;
    Action<Index2D, FView, FView, FView, int, int, int, int, int>? _qrDots;
    Action<Index2D, FView, FView, FView, int, int, int>? _qrUpdate;
    Action<Index1D, FView, FView, int, int>? _qrCopyColumn, _qrFormColumn;
    Action<Index2D, FView, FView, int>? _qrFinishR, _qrFinishQ;
    Action<Index1D, FView, DView>? _toDouble;
    Action<Index1D, DView, int>? _identity;
    Action<Index1D, DView, DView, IView, int, int, int>? _jacobiRotations;
    Action<Index2D, DView, DView, DView, IView, int>? _jacobiRows;
    Action<Index2D, DView, DView, IView, int>? _jacobiColumns;
    Action<Index1D, DView, DView, int, int>? _squares;
    Action<Index1D, DView, DView, FView, FView, int>? _jacobiStore;

    static ArrayView1D<T, Stride1D.Dense> V<T>(DeviceBuffer<T> b) where T : unmanaged => ((IlgpuBuffer<T>)b).View;

    // QR's workspace (the reflectors, m x n: 123 MB for 60,000 x 512 features), kept between calls and grown when a
    // larger matrix comes: a fresh device allocation per call costs more than the factorisation of small matrices.
    IlgpuBuffer<float>? _qrWork, _qrVector, _qrDotSums;

    /// <summary>Device allocations QR has made so far (its workspace is reused while the shapes fit).</summary>
    public int QrWorkspaceAllocations { get; private set; }

    IlgpuBuffer<float> Workspace(ref IlgpuBuffer<float>? slot, int length)
    {
        if (slot != null && slot.Length >= length) return slot;
        slot?.Dispose();
        QrWorkspaceAllocations++;
        return slot = new IlgpuBuffer<float>(this, length);
    }

    void DisposeLinalgWorkspace()
    {
        _qrWork?.Dispose(); _qrVector?.Dispose(); _qrDotSums?.Dispose();
        _qrWork = _qrVector = _qrDotSums = null;
    }

    protected override void HouseholderQrCore(DeviceBuffer<float> a, DeviceBuffer<float> q, DeviceBuffer<float> r, int m, int n)
    {
        var work = Workspace(ref _qrWork, checked(m * n));
        var v = Workspace(ref _qrVector, m);
        var dots = Workspace(ref _qrDotSums, n);
        Copy(a, 0, work, 0, m * n);
        Fill(q, 0, m * n, 0f);
        _qrReflector ??= Accelerator.LoadStreamKernel<FView, FView, FView, int, int, int>(IlgpuLinalgKernels.QrReflector);
        _qrDots ??= Accelerator.LoadAutoGroupedStreamKernel<Index2D, FView, FView, FView, int, int, int, int, int>(IlgpuLinalgKernels.QrDots);
        _qrUpdate ??= Accelerator.LoadAutoGroupedStreamKernel<Index2D, FView, FView, FView, int, int, int>(IlgpuLinalgKernels.QrUpdate);
        _qrCopyColumn ??= Accelerator.LoadAutoGroupedStreamKernel<Index1D, FView, FView, int, int>(IlgpuLinalgKernels.QrCopyColumn);
        _qrFormColumn ??= Accelerator.LoadAutoGroupedStreamKernel<Index1D, FView, FView, int, int>(IlgpuLinalgKernels.QrFormColumn);
        _qrFinishR ??= Accelerator.LoadAutoGroupedStreamKernel<Index2D, FView, FView, int>(IlgpuLinalgKernels.QrFinishR);
        _qrFinishQ ??= Accelerator.LoadAutoGroupedStreamKernel<Index2D, FView, FView, int>(IlgpuLinalgKernels.QrFinishQ);
        var group = new KernelConfig(new Index1D(1), new Index1D(RowGroupSize));

        void Reflect(DeviceBuffer<float> mat, int row0, int col0)
        {
            int width = n - col0, rows = m - row0;
            if (width <= 0) return;
            Fill(dots, 0, n, 0f);
            _qrDots!(new Index2D(width, (rows + QrRowsPerBlock - 1) / QrRowsPerBlock), V(mat), V(v), V(dots), m, n, row0, col0, QrRowsPerBlock);
            _qrUpdate!(new Index2D(width, rows), V(mat), V(v), V(dots), n, row0, col0);
        }

        for (int j = 0; j < n; j++)
        {
            _qrReflector(group, V(work), V(q), V(v), m, n, j);
            Reflect(work, j, j + 1);
        }
        for (int j = n - 1; j >= 0; j--)
        {
            _qrCopyColumn(m - j, V(q), V(v), n, j);
            Reflect(q, j, j + 1);
            _qrFormColumn(m - j, V(q), V(v), n, j);
        }
        _qrFinishR(new Index2D(n, n), V(work), V(r), n);
        _qrFinishQ(new Index2D(n, m), V(work), V(q), n);
    }

    protected override void SymmetricEigenCore(DeviceBuffer<float> a, DeviceBuffer<float> eigenvalues, DeviceBuffer<float> eigenvectors, int d)
    {
        int padded = Jacobi.PaddedSize(d), pairs = padded / 2;
        using var A = new IlgpuBuffer<double>(this, d * d);
        using var Vt = new IlgpuBuffer<double>(this, d * d);
        using var cs = new IlgpuBuffer<double>(this, 2 * pairs);
        using var pq = new IlgpuBuffer<int>(this, 2 * pairs);
        using var sum = new IlgpuBuffer<double>(this, 1);
        _toDouble ??= Accelerator.LoadAutoGroupedStreamKernel<Index1D, FView, DView>(IlgpuLinalgKernels.ToDouble);
        _identity ??= Accelerator.LoadAutoGroupedStreamKernel<Index1D, DView, int>(IlgpuLinalgKernels.Identity);
        _jacobiRotations ??= Accelerator.LoadAutoGroupedStreamKernel<Index1D, DView, DView, IView, int, int, int>(IlgpuLinalgKernels.JacobiRotations);
        _jacobiRows ??= Accelerator.LoadAutoGroupedStreamKernel<Index2D, DView, DView, DView, IView, int>(IlgpuLinalgKernels.JacobiRows);
        _jacobiColumns ??= Accelerator.LoadAutoGroupedStreamKernel<Index2D, DView, DView, IView, int>(IlgpuLinalgKernels.JacobiColumns);
        _squares ??= Accelerator.LoadAutoGroupedStreamKernel<Index1D, DView, DView, int, int>(IlgpuLinalgKernels.RowSquares);
        _jacobiStore ??= Accelerator.LoadAutoGroupedStreamKernel<Index1D, DView, DView, FView, FView, int>(IlgpuLinalgKernels.JacobiStore);

        _toDouble(d * d, V(a), A.View);
        _identity(d * d, Vt.View, d);
        double Squares(bool offDiagonalOnly)
        {
            sum.Upload([0.0]);
            _squares!(d, A.View, sum.View, d, offDiagonalOnly ? 1 : 0);
            return sum.ToArray()[0];
        }
        double total = Squares(false);
        for (int sweep = 0; sweep < Jacobi.MaxSweeps; sweep++)
        {
            if (Squares(true) <= Jacobi.RelativeTolerance * Jacobi.RelativeTolerance * total) break;
            for (int round = 0; round < padded - 1; round++)
            {
                _jacobiRotations(pairs, A.View, cs.View, pq.View, d, padded, round);
                _jacobiRows(new Index2D(d, pairs), A.View, Vt.View, cs.View, pq.View, d);
                _jacobiColumns(new Index2D(pairs, d), A.View, cs.View, pq.View, d);
            }
        }
        _jacobiStore(d, A.View, Vt.View, V(eigenvalues), V(eigenvectors), d);
    }
}

internal static class IlgpuLinalgKernels
{
    /// <summary>One group: the norm of column j below the diagonal, then the unit reflector v (also kept in q's
    /// column j) and R's diagonal entry alpha.</summary>
    public static void QrReflector(FView w, FView q, FView v, int m, int n, int j)
    {
        double part = 0;
        for (int i = j + Group.IdxX; i < m; i += Group.DimX) { double x = w[(long)i * n + j]; part += x * x; }
        double norm2 = GroupExtensions.AllReduce<double, AddDouble>(part);
        double x0 = w[(long)j * n + j], norm = Math.Sqrt(norm2);
        double alpha = x0 >= 0 ? -norm : norm;
        double vnorm2 = 2 * norm * (norm + Math.Abs(x0));
        double inv = vnorm2 > 0 ? 1 / Math.Sqrt(vnorm2) : 0;
        for (int i = j + Group.IdxX; i < m; i += Group.DimX)
        {
            double x = i == j ? x0 - alpha : w[(long)i * n + j];
            float vi = (float)(x * inv);
            v[i] = vi;
            q[(long)i * n + j] = vi;
        }
        Group.Barrier();
        if (Group.IdxX == 0) w[(long)j * n + j] = (float)alpha;
    }

    /// <summary>dots[c] += sum over one block of rows of v[i] mat[i, c].</summary>
    public static void QrDots(Index2D index, FView mat, FView v, FView dots, int m, int n, int row0, int col0, int rowsPerBlock)
    {
        int c = col0 + index.X, i0 = row0 + index.Y * rowsPerBlock, i1 = Math.Min(m, i0 + rowsPerBlock);
        float s = 0f;
        for (int i = i0; i < i1; i++) s += v[i] * mat[(long)i * n + c];
        Atomic.Add(ref dots[c], s);
    }

    public static void QrUpdate(Index2D index, FView mat, FView v, FView dots, int n, int row0, int col0)
    {
        int c = col0 + index.X, i = row0 + index.Y;
        long o = (long)i * n + c;
        mat[o] = mat[o] - 2f * v[i] * dots[c];
    }

    public static void QrCopyColumn(Index1D index, FView q, FView v, int n, int j)
    {
        int i = j + index;
        v[i] = q[(long)i * n + j];
    }

    public static void QrFormColumn(Index1D index, FView q, FView v, int n, int j)
    {
        int i = j + index;
        q[(long)i * n + j] = (i == j ? 1f : 0f) - 2f * v[i] * v[j];
    }

    public static void QrFinishR(Index2D index, FView w, FView r, int n)
    {
        int c = index.X, j = index.Y;
        float sign = w[(long)j * n + j] < 0 ? -1f : 1f;
        r[(long)j * n + c] = c >= j ? sign * w[(long)j * n + c] : 0f;
    }

    public static void QrFinishQ(Index2D index, FView w, FView q, int n)
    {
        int c = index.X, i = index.Y;
        if (w[(long)c * n + c] < 0) q[(long)i * n + c] = -q[(long)i * n + c];
    }

    public static void ToDouble(Index1D i, FView x, DView y) => y[i] = x[i];

    public static void Identity(Index1D index, DView m, int d) { int i = index; m[i] = i / d == i % d ? 1.0 : 0.0; }

    public static void JacobiRotations(Index1D k, DView A, DView cs, IView pq, int d, int padded, int round)
    {
        Jacobi.Pair(padded, round, k, out int p, out int q);
        double c = 1, s = 0;
        if (q < d) Jacobi.Rotation(A[(long)p * d + p], A[(long)q * d + q], A[(long)p * d + q], out c, out s);
        cs[2 * k] = c; cs[2 * k + 1] = s;
        pq[2 * k] = p; pq[2 * k + 1] = q;
    }

    /// <summary>Element j of rows p and q, in A (J^T A) and in V^T.</summary>
    public static void JacobiRows(Index2D index, DView A, DView Vt, DView cs, IView pq, int d)
    {
        int j = index.X, k = index.Y, p = pq[2 * k], q = pq[2 * k + 1];
        if (q >= d) return;
        double c = cs[2 * k], s = cs[2 * k + 1];
        long op = (long)p * d + j, oq = (long)q * d + j;
        double x = A[op], y = A[oq];
        A[op] = c * x - s * y; A[oq] = s * x + c * y;
        x = Vt[op]; y = Vt[oq];
        Vt[op] = c * x - s * y; Vt[oq] = s * x + c * y;
    }

    /// <summary>Columns p and q of row l of A (A J).</summary>
    public static void JacobiColumns(Index2D index, DView A, DView cs, IView pq, int d)
    {
        int k = index.X, l = index.Y, p = pq[2 * k], q = pq[2 * k + 1];
        if (q >= d) return;
        double c = cs[2 * k], s = cs[2 * k + 1];
        long op = (long)l * d + p, oq = (long)l * d + q;
        double x = A[op], y = A[oq];
        A[op] = c * x - s * y; A[oq] = s * x + c * y;
    }

    public static void RowSquares(Index1D index, DView A, DView sum, int d, int offDiagonalOnly)
    {
        int row = index;
        double s = 0;
        for (int j = 0; j < d; j++)
            if (offDiagonalOnly == 0 || j != row) { double x = A[(long)row * d + j]; s += x * x; }
        Atomic.Add(ref sum[0], s);
    }

    public static void JacobiStore(Index1D index, DView A, DView Vt, FView values, FView vectors, int d)
    {
        int i = index;
        values[i] = (float)A[(long)i * d + i];
        for (int j = 0; j < d; j++) vectors[(long)i * d + j] = (float)Vt[(long)i * d + j];
    }
}
