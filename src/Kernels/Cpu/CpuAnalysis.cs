using System.Runtime.Intrinsics;

namespace LsKd.Kernels.Cpu;

/// <summary>Feature-geometry kernels for the analysis: class centroids and pairwise distances.</summary>
public unsafe partial class CpuBackend
{
    /// <summary>Parallel over feature columns (each worker owns a column range of every centroid, so no two
    /// workers write the same value); sums in float64 in row order, so the result is deterministic.</summary>
    protected override void ClassCentroidsCore(DeviceBuffer<float> features, DeviceBuffer<int> labels, DeviceBuffer<float> centroids, int count, int dim, int classes)
    {
        float* fp = P(features), cp = P(centroids);
        int* lp = P(labels);
        var counts = new int[classes];
        for (int i = 0; i < count; i++) counts[lp[i]]++;
        _parallel.For(dim, (long)count * 2, (d0, d1) =>
        {
            int width = d1 - d0;
            var sums = new double[classes * width];
            fixed (double* sp = sums)
                for (int i = 0; i < count; i++)
                {
                    float* row = fp + (long)i * dim + d0;
                    double* acc = sp + lp[i] * width;
                    int j = 0;
                    for (; j <= width - 8; j += 8)
                    {
                        var (lo, hi) = Vector256.Widen(Vector256.Load(row + j));   // float64 sums, four lanes at a time
                        (Vector256.Load(acc + j) + lo).Store(acc + j);
                        (Vector256.Load(acc + j + 4) + hi).Store(acc + j + 4);
                    }
                    for (; j < width; j++) acc[j] += row[j];
                }
            for (int c = 0; c < classes; c++)
                for (int j = 0; j < width; j++)
                    cp[(long)c * dim + d0 + j] = counts[c] == 0 ? 0f : (float)(sums[c * width + j] / counts[c]);
        });
    }

    /// <summary>sqrt(sum (a - b)^2) per pair, eight lanes at a time; parallel over rows of a.</summary>
    protected override void PairwiseDistancesCore(DeviceBuffer<float> a, DeviceBuffer<float> b, DeviceBuffer<float> distances, int m, int n, int dim)
    {
        float* ap = P(a), bp = P(b), dp = P(distances);
        _parallel.For(m, (long)n * dim * 3, (i0, i1) =>
        {
            for (int i = i0; i < i1; i++)
            {
                float* ai = ap + (long)i * dim;
                for (int j = 0; j < n; j++)
                {
                    float* bj = bp + (long)j * dim;
                    int k = 0;
                    var acc = Vector256<float>.Zero;
                    for (; k <= dim - 8; k += 8) { var d = Vector256.Load(ai + k) - Vector256.Load(bj + k); acc = Vector256.FusedMultiplyAdd(d, d, acc); }
                    double s = Vector256.Sum(acc);
                    for (; k < dim; k++) { double d = ai[k] - bj[k]; s += d * d; }
                    dp[(long)i * n + j] = (float)Math.Sqrt(s);
                }
            }
        });
    }
}
