using MathNet.Numerics.LinearAlgebra;

namespace LsKd.Tests;

/// <summary>MathNet matrices for the kernel tests: seeded random values that are exact floats, and row-major
/// conversions to and from the flat float buffers the backends use.</summary>
internal static class Matrices
{
    public static Matrix<double> Random(int rows, int cols, int seed)
    {
        var r = new Random(seed);
        return Matrix<double>.Build.Dense(rows, cols, (_, _) => (float)(r.NextDouble() * 4 - 2));
    }

    public static float[] RowMajor(Matrix<double> m)
    {
        var x = new float[m.RowCount * m.ColumnCount];
        for (int i = 0; i < m.RowCount; i++) for (int j = 0; j < m.ColumnCount; j++) x[i * m.ColumnCount + j] = (float)m[i, j];
        return x;
    }

    public static Matrix<double> FromRowMajor(float[] x, int rows, int cols) => Matrix<double>.Build.Dense(rows, cols, (i, j) => x[i * cols + j]);
}
