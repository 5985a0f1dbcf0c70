namespace LsKd.Kernels.Cpu;

/// <summary>Batch-norm statistics in the convolution's output pass: each (image, channel) row of the output gets
/// its mean and sum of squared deviations (two passes over the row while the kernel has just written it, so from L1
/// or L2), and the rows are combined exactly (equal counts: the mean of the means; M2 = sum of the rows' M2 plus
/// the spread of their means). Batch norm in training then skips its own two statistics passes over memory.</summary>
public unsafe partial class CpuBackend
{
    double[] _rowStats = [];

    /// <summary>Pinned [N, K, 2] (mean, M2) scratch for one forward.</summary>
    double* RowStatsScratch(int rows)
    {
        if (_rowStats.Length < 2 * rows) _rowStats = GC.AllocateArray<double>(2 * rows, pinned: true);
        fixed (double* p = _rowStats) return p;   // pinned: the address stays valid
    }

    /// <summary>(mean, M2) of one row into slot[0], slot[1].</summary>
    void RowStats(float* y, int n, double* slot)
    {
        if (_use512) RowStats<V512>(y, n, slot); else RowStats<V256>(y, n, slot);
    }

    static void RowStats<TV>(float* y, int n, double* slot) where TV : struct, ISimd<TV>
    {
        double mean = (double)RowSum<TV>(y, n) / n;
        float mf = (float)mean;
        // Deviations are taken from the float mean; sum (y - mf)^2 = M2 + n (mean - mf)^2.
        double m2 = SquaredDeviation<TV>(y, n, mf) - n * (mean - mf) * (mean - mf);
        slot[0] = mean; slot[1] = Math.Max(m2, 0);
    }

    /// <summary>Row statistics of every row of y (for the algorithms that do not form them as they write).</summary>
    void AllRowStats(in ConvSpec s, float* yp, double* rows)
    {
        int k = s.K, ohw = s.OutH * s.OutW;
        _parallel.For(s.N * k, (long)ohw * 2, (r0, r1) =>
        {
            for (int r = r0; r < r1; r++) RowStats(yp + (long)r * ohw, ohw, rows + 2L * r);
        });
    }

    /// <summary>stats[k] = batch mean, stats[K + k] = biased batch variance of channel k from its N row statistics.</summary>
    static void CombineRowStats(double* rows, int n, int k, int ohw, float* stats)
    {
        for (int c = 0; c < k; c++)
        {
            double mean = 0;
            for (int i = 0; i < n; i++) mean += rows[2L * (i * k + c)];
            mean /= n;
            double m2 = 0;
            for (int i = 0; i < n; i++)
            {
                double d = rows[2L * (i * k + c)] - mean;
                m2 += rows[2L * (i * k + c) + 1] + ohw * d * d;
            }
            stats[c] = (float)mean;
            stats[k + c] = (float)(m2 / ((double)n * ohw));
        }
    }
}
