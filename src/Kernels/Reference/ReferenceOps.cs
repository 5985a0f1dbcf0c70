namespace LsKd.Kernels.Reference;

/// <summary>Float64 definitions of every op, written for clarity, not speed. Tests and `lskd check` compare each
/// backend against these.</summary>
public static partial class ReferenceOps
{
    public static double[] Gemm(in GemmSpec s, float[] a, float[] b, float[] c)
    {
        var result = new double[c.Length];
        for (int i = 0; i < c.Length; i++) result[i] = c[i];
        for (int z = 0; z < s.Matrices; z++)
        {
            long ao = s.BaseA(z), bo = s.BaseB(z), co = s.BaseC(z);
            for (int i = 0; i < s.M; i++)
                for (int j = 0; j < s.N; j++)
                {
                    double acc = 0;
                    for (int p = 0; p < s.K; p++)
                    {
                        double av = s.TransA ? a[ao + (long)p * s.LdA + i] : a[ao + (long)i * s.LdA + p];
                        double bv = s.TransB ? b[bo + (long)j * s.LdB + p] : b[bo + (long)p * s.LdB + j];
                        acc += av * bv;
                    }
                    long idx = co + (long)i * s.LdC + j;
                    result[idx] = s.Alpha * acc + (s.Beta == 0f ? 0.0 : s.Beta * (double)c[idx]);
                }
        }
        return result;
    }


    /// <summary>The float64 definition of a unary op, from its <see cref="IUnaryOp"/>.</summary>
    public static double Unary(UnaryOp op, double x, double s) => Of(op, s).Reference(x);

    /// <summary>Analytic derivative (used against finite differences in tests, and as the backward reference).</summary>
    public static double UnaryGrad(UnaryOp op, double x, double s) => Of(op, s).ReferenceGrad(x);

    /// <summary>The definition of each <see cref="UnaryOp"/> (boxed: fine for a reference).</summary>
    public static IUnaryOp Of(UnaryOp op, double s) => op switch
    {
        UnaryOp.Copy => new CopyOp(),
        UnaryOp.Relu => new ReluOp(),
        UnaryOp.Relu6 => new Relu6Op(),
        UnaryOp.Gelu => new GeluOp(),
        UnaryOp.Scale => new ScaleOp((float)s),
        UnaryOp.AddScalar => new AddScalarOp((float)s),
        UnaryOp.Neg => new ScaleOp(-1f),
        UnaryOp.Square => new SquareOp(),
        UnaryOp.Exp => new ExpOp(),
        UnaryOp.Log => new LogOp(),
        UnaryOp.Sqrt => new SqrtOp(),
        UnaryOp.Tanh => new TanhOp(),
        UnaryOp.Sigmoid => new SigmoidOp(),
        _ => throw new ArgumentOutOfRangeException(nameof(op)),
    };

    public static double Binary(BinaryOp op, double a, double b) => op switch
    {
        BinaryOp.Add => a + b,
        BinaryOp.Sub => a - b,
        BinaryOp.Mul => a * b,
        BinaryOp.Div => a / b,
        BinaryOp.Max => Math.Max(a, b),
        BinaryOp.AddRelu => Math.Max(a + b, 0),
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

    // ---- convolution, batch norm, pooling, dropout (direct float64 definitions) ---------------------------------

    public static double[] Conv2d(in ConvSpec s, ReadOnlySpan<float> x, ReadOnlySpan<float> w) => Conv2d(s, ToDouble(x), ToDouble(w));

    static double[] ToDouble(ReadOnlySpan<float> x)
    {
        var d = new double[x.Length];
        for (int i = 0; i < x.Length; i++) d[i] = x[i];
        return d;
    }

    /// <summary>The convolution in float64 from float64 inputs (finite-difference checks perturb them by 1e-5).</summary>
    public static double[] Conv2d(in ConvSpec s, ReadOnlySpan<double> x, ReadOnlySpan<double> w)
    {
        var y = new double[s.OutputSize];
        int cg = s.CPerGroup, kg = s.KPerGroup;
        for (int n = 0; n < s.N; n++)
            for (int k = 0; k < s.K; k++)
                for (int oh = 0; oh < s.OutH; oh++)
                    for (int ow = 0; ow < s.OutW; ow++)
                    {
                        double acc = 0;
                        int g = k / kg;
                        for (int c = 0; c < cg; c++)
                            for (int r = 0; r < s.R; r++)
                                for (int q = 0; q < s.S; q++)
                                {
                                    int ih = oh * s.Stride - s.Pad + r, iw = ow * s.Stride - s.Pad + q;
                                    if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) continue;
                                    acc += x[((n * s.C + g * cg + c) * s.H + ih) * s.W + iw] * w[((k * cg + c) * s.R + r) * s.S + q];
                                }
                        y[((n * s.K + k) * s.OutH + oh) * s.OutW + ow] = acc;
                    }
        return y;
    }

    /// <summary>Input and weight gradients of the convolution for an output gradient dy (by the chain rule on
    /// the same loops as <see cref="Conv2d"/>).</summary>
    public static (double[] Dx, double[] Dw) Conv2dBackward(in ConvSpec s, ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> dy)
    {
        var dx = new double[s.InputSize];
        var dw = new double[s.WeightSize];
        int cg = s.CPerGroup, kg = s.KPerGroup;
        for (int n = 0; n < s.N; n++)
            for (int k = 0; k < s.K; k++)
                for (int oh = 0; oh < s.OutH; oh++)
                    for (int ow = 0; ow < s.OutW; ow++)
                    {
                        double g = dy[((n * s.K + k) * s.OutH + oh) * s.OutW + ow];
                        int grp = k / kg;
                        for (int c = 0; c < cg; c++)
                            for (int r = 0; r < s.R; r++)
                                for (int q = 0; q < s.S; q++)
                                {
                                    int ih = oh * s.Stride - s.Pad + r, iw = ow * s.Stride - s.Pad + q;
                                    if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) continue;
                                    int xi = ((n * s.C + grp * cg + c) * s.H + ih) * s.W + iw, wi = ((k * cg + c) * s.R + r) * s.S + q;
                                    dx[xi] += g * w[wi];
                                    dw[wi] += g * x[xi];
                                }
                    }
        return (dx, dw);
    }

    /// <summary>Mean and biased variance of channel c over the batch and spatial positions, in two passes.</summary>
    static (double Mean, double Var) ChannelStats(in BatchNormSpec s, ReadOnlySpan<float> x, int c)
    {
        long m = (long)s.N * s.Spatial;
        double sum = 0, sq = 0;
        for (int n = 0; n < s.N; n++) for (int i = 0; i < s.Spatial; i++) sum += x[(n * s.C + c) * s.Spatial + i];
        double mu = sum / m;
        for (int n = 0; n < s.N; n++) for (int i = 0; i < s.Spatial; i++) { double d = x[(n * s.C + c) * s.Spatial + i] - mu; sq += d * d; }
        return (mu, sq / m);
    }

    /// <summary>Batch norm in float64: y, the batch (or running) mean and 1/sqrt(var + eps), and the updated running
    /// statistics.</summary>
    public static (double[] Y, double[] Mean, double[] InvStd, double[] RunMean, double[] RunVar) BatchNorm(in BatchNormSpec s, ReadOnlySpan<float> x,
        ReadOnlySpan<float> gamma, ReadOnlySpan<float> beta, ReadOnlySpan<float> runMean, ReadOnlySpan<float> runVar, bool training)
    {
        var y = new double[s.Size];
        double[] mean = new double[s.C], inv = new double[s.C], rm = new double[s.C], rv = new double[s.C];
        long m = (long)s.N * s.Spatial;
        for (int c = 0; c < s.C; c++)
        {
            double mu, var;
            if (training)
            {
                (mu, var) = ChannelStats(s, x, c);
                rm[c] = (1 - s.Momentum) * runMean[c] + s.Momentum * mu;
                rv[c] = (1 - s.Momentum) * runVar[c] + s.Momentum * var * m / (m - 1);
            }
            else { mu = runMean[c]; var = runVar[c]; rm[c] = runMean[c]; rv[c] = runVar[c]; }
            mean[c] = mu; inv[c] = 1 / Math.Sqrt(var + s.Epsilon);
            for (int n = 0; n < s.N; n++)
                for (int i = 0; i < s.Spatial; i++)
                {
                    int o = (n * s.C + c) * s.Spatial + i;
                    y[o] = Activate(s, (x[o] - mu) * inv[c] * gamma[c] + beta[c]);
                }
        }
        return (y, mean, inv, rm, rv);
    }

    static double Activate(in BatchNormSpec s, double v) => s.Activation switch
    {
        NormActivation.Relu => Math.Max(v, 0),
        NormActivation.Relu6 => Math.Clamp(v, 0, 6),
        _ => v,
    };

    /// <summary>Batch-norm gradients in float64 for output gradient dy; with a fused activation, dy is masked where
    /// the pre-activation (recomputed from beta) lies outside the activation's linear range.</summary>
    public static (double[] Dx, double[] DGamma, double[] DBeta) BatchNormBackward(in BatchNormSpec s, ReadOnlySpan<float> x, ReadOnlySpan<float> dyIn,
        ReadOnlySpan<float> gamma, ReadOnlySpan<float> runMean, ReadOnlySpan<float> runVar, bool training, ReadOnlySpan<float> beta = default)
    {
        var dy = new double[s.Size];
        for (int i = 0; i < dy.Length; i++) dy[i] = dyIn[i];
        if (s.Activation != NormActivation.None)
        {
            var (pre, _, _, _, _) = BatchNorm(s with { Activation = NormActivation.None }, x, gamma, beta, runMean, runVar, training);
            for (int i = 0; i < dy.Length; i++) if (!(pre[i] > 0 && pre[i] < s.Cap)) dy[i] = 0;
        }
        var dx = new double[s.Size];
        double[] dg = new double[s.C], db = new double[s.C];
        long m = (long)s.N * s.Spatial;
        for (int c = 0; c < s.C; c++)
        {
            double mu, var;
            if (training) (mu, var) = ChannelStats(s, x, c);
            else { mu = runMean[c]; var = runVar[c]; }
            double inv = 1 / Math.Sqrt(var + s.Epsilon), sdy = 0, sdyx = 0;
            for (int n = 0; n < s.N; n++)
                for (int i = 0; i < s.Spatial; i++)
                {
                    int o = (n * s.C + c) * s.Spatial + i;
                    sdy += dy[o]; sdyx += dy[o] * (x[o] - mu) * inv;
                }
            db[c] = sdy; dg[c] = sdyx;
            for (int n = 0; n < s.N; n++)
                for (int i = 0; i < s.Spatial; i++)
                {
                    int o = (n * s.C + c) * s.Spatial + i;
                    double xhat = (x[o] - mu) * inv;
                    dx[o] = training ? gamma[c] * inv * (dy[o] - sdy / m - xhat * sdyx / m) : gamma[c] * inv * dy[o];
                }
        }
        return (dx, dg, db);
    }

    /// <summary>Pooling forward and, for output gradient dy, the input gradient (max: to the first maximum).</summary>
    public static (double[] Y, double[] Dx) Pool2d(in PoolSpec s, ReadOnlySpan<float> x, ReadOnlySpan<float> dy)
    {
        var y = new double[s.OutputSize];
        var dx = new double[s.InputSize];
        for (int p = 0; p < s.N * s.C; p++)
            for (int oh = 0; oh < s.OutH; oh++)
                for (int ow = 0; ow < s.OutW; ow++)
                {
                    double best = double.NegativeInfinity, sum = 0;
                    int arg = -1;
                    for (int r = 0; r < s.Kernel; r++)
                        for (int q = 0; q < s.Kernel; q++)
                        {
                            int ih = oh * s.Stride - s.Pad + r, iw = ow * s.Stride - s.Pad + q;
                            if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) continue;
                            double v = x[(p * s.H + ih) * s.W + iw];
                            sum += v;
                            if (v > best || arg < 0) { best = v; arg = (p * s.H + ih) * s.W + iw; }
                        }
                    int o = (p * s.OutH + oh) * s.OutW + ow;
                    if (s.Op == PoolOp.Max) { y[o] = best; dx[arg] += dy[o]; continue; }
                    y[o] = sum / (s.Kernel * s.Kernel);
                    for (int r = 0; r < s.Kernel; r++)
                        for (int q = 0; q < s.Kernel; q++)
                        {
                            int ih = oh * s.Stride - s.Pad + r, iw = ow * s.Stride - s.Pad + q;
                            if (ih >= 0 && ih < s.H && iw >= 0 && iw < s.W) dx[(p * s.H + ih) * s.W + iw] += (double)dy[o] / (s.Kernel * s.Kernel);
                        }
                }
        return (y, dx);
    }

    public static double[] Dropout(ReadOnlySpan<float> x, float p, ulong seed)
    {
        var y = new double[x.Length];
        for (int i = 0; i < x.Length; i++) y[i] = ScalarMath.DropoutKeep(seed, (ulong)i, p) ? x[i] / (1.0 - p) : 0;
        return y;
    }

    public static double[] ClassCentroids(ReadOnlySpan<float> features, ReadOnlySpan<int> labels, int count, int dim, int classes)
    {
        var sums = new double[classes * dim];
        var counts = new int[classes];
        for (int i = 0; i < count; i++)
        {
            counts[labels[i]]++;
            for (int j = 0; j < dim; j++) sums[labels[i] * dim + j] += features[i * dim + j];
        }
        for (int c = 0; c < classes; c++)
            for (int j = 0; j < dim; j++) sums[c * dim + j] = counts[c] == 0 ? 0 : sums[c * dim + j] / counts[c];
        return sums;
    }

    public static double[] PairwiseDistances(ReadOnlySpan<float> a, ReadOnlySpan<float> b, int m, int n, int dim)
    {
        var d = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double s = 0;
                for (int k = 0; k < dim; k++) { double t = (double)a[i * dim + k] - b[j * dim + k]; s += t * t; }
                d[i * n + j] = Math.Sqrt(s);
            }
        return d;
    }

    /// <summary>Thin QR by Householder reflections in float64, with R's diagonal made non-negative (unique).</summary>
    public static (double[] Q, double[] R) HouseholderQr(ReadOnlySpan<float> a, int m, int n)
    {
        var w = new double[m * n];
        for (int i = 0; i < m * n; i++) w[i] = a[i];
        var vs = new double[n][];
        for (int j = 0; j < n; j++)
        {
            double norm = 0;
            for (int i = j; i < m; i++) norm += w[i * n + j] * w[i * n + j];
            norm = Math.Sqrt(norm);
            double alpha = w[j * n + j] >= 0 ? -norm : norm;
            var v = new double[m];
            for (int i = j; i < m; i++) v[i] = w[i * n + j];
            v[j] -= alpha;
            double vn = 0;
            for (int i = j; i < m; i++) vn += v[i] * v[i];
            vs[j] = v;
            if (vn == 0) continue;
            for (int c = j; c < n; c++)
            {
                double dot = 0;
                for (int i = j; i < m; i++) dot += v[i] * w[i * n + c];
                for (int i = j; i < m; i++) w[i * n + c] -= 2 * dot / vn * v[i];
            }
            for (int i = j; i < m; i++) v[i] /= Math.Sqrt(vn);
        }
        var q = new double[m * n];
        for (int j = 0; j < n; j++) q[j * n + j] = 1;
        for (int j = n - 1; j >= 0; j--)
            for (int c = 0; c < n; c++)
            {
                double dot = 0;
                for (int i = j; i < m; i++) dot += vs[j][i] * q[i * n + c];
                for (int i = j; i < m; i++) q[i * n + c] -= 2 * dot * vs[j][i];
            }
        var r = new double[n * n];
        for (int j = 0; j < n; j++)
        {
            double sign = w[j * n + j] < 0 ? -1 : 1;
            for (int c = j; c < n; c++) r[j * n + c] = sign * w[j * n + c];
            for (int i = 0; i < m; i++) q[i * n + j] *= sign;
        }
        return (q, r);
    }

    /// <summary>Column means and the unbiased covariance, in float64.</summary>
    public static (double[] Mean, double[] Cov) Covariance(ReadOnlySpan<float> x, int n, int d)
    {
        var mean = new double[d];
        for (int i = 0; i < n; i++) for (int j = 0; j < d; j++) mean[j] += x[i * d + j];
        for (int j = 0; j < d; j++) mean[j] /= n;
        var cov = new double[d * d];
        for (int i = 0; i < n; i++)
            for (int a = 0; a < d; a++)
            {
                double xa = x[i * d + a] - mean[a];
                for (int b = 0; b < d; b++) cov[a * d + b] += xa * (x[i * d + b] - mean[b]);
            }
        for (int k = 0; k < d * d; k++) cov[k] /= n - 1;
        return (mean, cov);
    }

    /// <summary>Eigenpairs of a symmetric matrix by serial cyclic Jacobi in float64 (a different rotation order from
    /// the backends' parallel one), descending, each vector signed so its largest-magnitude entry is positive.</summary>
    public static (double[] Values, double[] Vectors) SymmetricEigen(ReadOnlySpan<float> a, int d)
    {
        var A = new double[d * d];
        for (int i = 0; i < d * d; i++) A[i] = a[i];
        var V = new double[d * d];
        for (int i = 0; i < d; i++) V[i * d + i] = 1;
        for (int sweep = 0; sweep < 100; sweep++)
        {
            double off = 0, total = 0;
            for (int i = 0; i < d; i++) for (int j = 0; j < d; j++) { total += A[i * d + j] * A[i * d + j]; if (i != j) off += A[i * d + j] * A[i * d + j]; }
            if (off <= 1e-30 * total) break;
            for (int p = 0; p < d - 1; p++)
                for (int q = p + 1; q < d; q++)
                {
                    Jacobi.Rotation(A[p * d + p], A[q * d + q], A[p * d + q], out double c, out double s);
                    if (s == 0) continue;
                    for (int k = 0; k < d; k++)
                    {
                        double x = A[p * d + k], y = A[q * d + k];
                        A[p * d + k] = c * x - s * y; A[q * d + k] = s * x + c * y;
                    }
                    for (int k = 0; k < d; k++)
                    {
                        double x = A[k * d + p], y = A[k * d + q];
                        A[k * d + p] = c * x - s * y; A[k * d + q] = s * x + c * y;
                        x = V[k * d + p]; y = V[k * d + q];
                        V[k * d + p] = c * x - s * y; V[k * d + q] = s * x + c * y;
                    }
                }
        }
        var order = Enumerable.Range(0, d).OrderByDescending(k => A[k * d + k]).ToArray();
        var values = new double[d];
        var vectors = new double[d * d];
        for (int i = 0; i < d; i++)
        {
            int k = order[i];
            values[i] = A[k * d + k];
            int big = 0;
            for (int j = 1; j < d; j++) if (Math.Abs(V[j * d + k]) > Math.Abs(V[big * d + k])) big = j;
            double sign = V[big * d + k] < 0 ? -1 : 1;
            for (int j = 0; j < d; j++) vectors[i * d + j] = sign * V[j * d + k];
        }
        return (values, vectors);
    }
}
