namespace LsKd.Kernels.Reference;

/// <summary>Float64 definitions of every op, written for clarity, not speed. Tests and `lskd check` compare each
/// backend against these.</summary>
public static class ReferenceOps
{
    public static double[] Gemm(in GemmSpec s, float[] a, float[] b, float[] c)
    {
        var result = new double[c.Length];
        for (int i = 0; i < c.Length; i++) result[i] = c[i];
        for (int batch = 0; batch < s.BatchCount; batch++)
        {
            long ao = s.OffsetA + batch * s.StrideA, bo = s.OffsetB + batch * s.StrideB, co = s.OffsetC + batch * s.StrideC;
            for (int i = 0; i < s.M; i++)
                for (int j = 0; j < s.N; j++)
                {
                    double acc = 0;
                    for (int p = 0; p < s.K; p++)
                    {
                        double av = s.TransA ? a[ao + (long)p * s.M + i] : a[ao + (long)i * s.K + p];
                        double bv = s.TransB ? b[bo + (long)j * s.K + p] : b[bo + (long)p * s.N + j];
                        acc += av * bv;
                    }
                    long idx = co + (long)i * s.N + j;
                    result[idx] = s.Alpha * acc + (s.Beta == 0f ? 0.0 : s.Beta * (double)c[idx]);
                }
        }
        return result;
    }

    public static double Gelu(double x) => 0.5 * x * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));

    public static double Unary(UnaryOp op, double x, double s) => op switch
    {
        UnaryOp.Copy => x,
        UnaryOp.Relu => Math.Max(x, 0),
        UnaryOp.Relu6 => Math.Min(Math.Max(x, 0), 6),
        UnaryOp.Gelu => Gelu(x),
        UnaryOp.Scale => s * x,
        UnaryOp.AddScalar => x + s,
        UnaryOp.Neg => -x,
        UnaryOp.Square => x * x,
        UnaryOp.Exp => Math.Exp(x),
        UnaryOp.Log => Math.Log(x),
        UnaryOp.Sqrt => Math.Sqrt(x),
        UnaryOp.Tanh => Math.Tanh(x),
        UnaryOp.Sigmoid => 1 / (1 + Math.Exp(-x)),
        _ => throw new ArgumentOutOfRangeException(nameof(op)),
    };

    /// <summary>Analytic derivative (used against finite differences in tests, and as the backward reference).</summary>
    public static double UnaryGrad(UnaryOp op, double x, double s)
    {
        switch (op)
        {
            case UnaryOp.Relu: return x > 0 ? 1 : 0;
            case UnaryOp.Relu6: return x > 0 && x < 6 ? 1 : 0;
            case UnaryOp.Gelu:
                {
                    double c = Math.Sqrt(2 / Math.PI), u = c * (x + 0.044715 * x * x * x), t = Math.Tanh(u);
                    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x);
                }
            case UnaryOp.Scale: return s;
            case UnaryOp.Copy: case UnaryOp.AddScalar: return 1;
            case UnaryOp.Neg: return -1;
            case UnaryOp.Square: return 2 * x;
            case UnaryOp.Exp: return Math.Exp(x);
            case UnaryOp.Log: return 1 / x;
            case UnaryOp.Sqrt: return 0.5 / Math.Sqrt(x);
            case UnaryOp.Tanh: return 1 - Math.Tanh(x) * Math.Tanh(x);
            default: { double sg = 1 / (1 + Math.Exp(-x)); return sg * (1 - sg); }
        }
    }

    public static double Binary(BinaryOp op, double a, double b) => op switch
    {
        BinaryOp.Add => a + b,
        BinaryOp.Sub => a - b,
        BinaryOp.Mul => a * b,
        BinaryOp.Div => a / b,
        BinaryOp.Max => Math.Max(a, b),
        _ => Math.Min(a, b),
    };

    public static double[] Reduce(ReduceOp op, float[] x, int outer, int axis, int inner, out int[] argIndex)
    {
        var y = new double[outer * inner];
        argIndex = new int[outer * inner];
        for (int o = 0; o < outer; o++)
            for (int k = 0; k < inner; k++)
            {
                double acc = op == ReduceOp.Max ? double.NegativeInfinity : 0;
                int best = 0;
                for (int a = 0; a < axis; a++)
                {
                    double v = x[((long)o * axis + a) * inner + k];
                    if (op == ReduceOp.Max) { if (v > acc) { acc = v; best = a; } }
                    else acc += v;
                }
                y[o * inner + k] = op == ReduceOp.Mean ? acc / axis : acc;
                argIndex[o * inner + k] = best;
            }
        return y;
    }

    /// <summary>log_softmax(z / T) of one row, by log-sum-exp in float64.</summary>
    public static double[] LogSoftmax(ReadOnlySpan<float> z, double t)
    {
        double max = double.NegativeInfinity;
        foreach (var v in z) max = Math.Max(max, v / t);
        double sum = 0;
        foreach (var v in z) sum += Math.Exp(v / t - max);
        double lse = max + Math.Log(sum);
        var r = new double[z.Length];
        for (int i = 0; i < z.Length; i++) r[i] = z[i] / t - lse;
        return r;
    }

    public static double[] Softmax(ReadOnlySpan<float> z, double t)
    {
        var r = LogSoftmax(z, t);
        for (int i = 0; i < r.Length; i++) r[i] = Math.Exp(r[i]);
        return r;
    }

    /// <summary>Label-smoothing cross-entropy of one row and its gradient (unscaled).</summary>
    public static double LabelSmoothing(ReadOnlySpan<float> z, int label, double alpha, double[]? grad)
    {
        int k = z.Length;
        var logp = LogSoftmax(z, 1);
        double loss = 0;
        for (int i = 0; i < k; i++)
        {
            double target = (i == label ? 1 - alpha : 0) + alpha / k;
            loss -= target * logp[i];
            if (grad != null) grad[i] = Math.Exp(logp[i]) - target;
        }
        return loss;
    }

    /// <summary>KD loss of one row: (1-b) CE_ls(y, z_s) + b T^2 KL(p_t || p_s), and its gradient w.r.t. z_s (unscaled).</summary>
    public static double Kd(ReadOnlySpan<float> zs, ReadOnlySpan<float> zt, int label, double t, double beta, double alpha, double[]? grad)
    {
        int k = zs.Length;
        var lps = LogSoftmax(zs, t);
        var lpt = LogSoftmax(zt, t);
        double kl = 0;
        for (int i = 0; i < k; i++)
        {
            double pt = Math.Exp(lpt[i]);
            if (pt > 0) kl += pt * (lpt[i] - lps[i]);
        }
        var hardGrad = new double[k];
        double ce = LabelSmoothing(zs, label, alpha, hardGrad);
        if (grad != null)
            for (int i = 0; i < k; i++)
                grad[i] = beta * t * (Math.Exp(lps[i]) - Math.Exp(lpt[i])) + (1 - beta) * hardGrad[i];
        return (1 - beta) * ce + beta * t * t * kl;
    }

    public static double Entropy(ReadOnlySpan<float> z, double t)
    {
        var lp = LogSoftmax(z, t);
        double h = 0;
        foreach (var v in lp) h -= Math.Exp(v) * v;
        return h;
    }

    public static bool TopKCorrect(ReadOnlySpan<float> z, int label, int k)
    {
        // Stable descending sort: ties keep index order.
        var order = Enumerable.Range(0, z.Length).ToArray();
        var keys = z.ToArray();
        Array.Sort(order, (i, j) => keys[j] != keys[i] ? keys[j].CompareTo(keys[i]) : i.CompareTo(j));
        return Array.IndexOf(order, label) < k;
    }

    public static void Sgd(double[] p, float[] g, double[] v, SgdConfig c)
    {
        for (int i = 0; i < p.Length; i++)
        {
            double gv = g[i] + c.WeightDecay * p[i];
            v[i] = c.Momentum * v[i] + gv;
            double step = c.Nesterov ? gv + c.Momentum * v[i] : v[i];
            p[i] -= c.LearningRate * step;
        }
    }

    public static void AdamW(double[] p, float[] g, double[] m, double[] v, AdamWConfig c, int step)
    {
        for (int i = 0; i < p.Length; i++)
        {
            p[i] *= 1 - c.LearningRate * c.WeightDecay;
            m[i] = c.Beta1 * m[i] + (1 - c.Beta1) * g[i];
            v[i] = c.Beta2 * v[i] + (1 - c.Beta2) * (double)g[i] * g[i];
            double mh = m[i] / (1 - Math.Pow(c.Beta1, step)), vh = v[i] / (1 - Math.Pow(c.Beta2, step));
            p[i] -= c.LearningRate * mh / (Math.Sqrt(vh) + c.Epsilon);
        }
    }
}
