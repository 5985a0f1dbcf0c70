namespace LsKd.Kernels;

/// <summary>The parts of the parallel Jacobi eigen-solver that every backend shares: the round-robin pairing
/// (each round rotates D/2 disjoint index pairs, so the rotations of a round commute and run in parallel) and
/// the rotation that zeroes one off-diagonal entry (Golub and Van Loan, symmetric Schur decomposition).</summary>
public static class Jacobi
{
    /// <summary>Indices padded to an even count; index d (when d is odd) is a dummy that pairs with nothing.</summary>
    public static int PaddedSize(int d) => d + (d & 1);

    /// <summary>The pair k of round r (0 &lt;= r &lt; D - 1) in the circle method: index 0 stays put, the others rotate.</summary>
    public static void Pair(int padded, int round, int k, out int p, out int q)
    {
        int players = padded - 1;
        int a = k == 0 ? 0 : (k + round) % players + 1;
        int b = ((k == 0 ? 0 : players - k) + round) % players + 1;
        p = Math.Min(a, b); q = Math.Max(a, b);
    }

    /// <summary>(c, s) with J = [[c, s], [-s, c]] on (p, q) such that (J^T A J)[p, q] = 0.</summary>
    public static void Rotation(double app, double aqq, double apq, out double c, out double s)
    {
        if (apq == 0.0) { c = 1.0; s = 0.0; return; }
        double theta = (aqq - app) / (2.0 * apq);
        double t = (theta >= 0 ? 1.0 : -1.0) / (Math.Abs(theta) + Math.Sqrt(1.0 + theta * theta));
        c = 1.0 / Math.Sqrt(1.0 + t * t);
        s = t * c;
    }

    /// <summary>Stop when the off-diagonal Frobenius norm is below this fraction of the whole norm.</summary>
    public const double RelativeTolerance = 1e-13;
    public const int MaxSweeps = 40;
}

public static class EigenOrder
{
    /// <summary>Sorts eigenpairs by descending eigenvalue and signs each vector so that its largest-magnitude
    /// component (the first such) is positive, which makes the result comparable across backends.</summary>
    public static (float[] Values, float[] Vectors) SortAndSign(float[] values, float[] vectors, int d)
    {
        var order = Enumerable.Range(0, d).OrderByDescending(k => values[k]).ThenBy(k => k).ToArray();
        var sortedValues = new float[d];
        var sortedVectors = new float[d * d];
        for (int i = 0; i < d; i++)
        {
            int k = order[i];
            sortedValues[i] = values[k];
            int big = 0;
            for (int j = 1; j < d; j++) if (Math.Abs(vectors[k * d + j]) > Math.Abs(vectors[k * d + big])) big = j;
            float sign = vectors[k * d + big] < 0 ? -1f : 1f;
            for (int j = 0; j < d; j++) sortedVectors[i * d + j] = sign * vectors[k * d + j];
        }
        return (sortedValues, sortedVectors);
    }
}
