namespace LsKd.Kernels.Reference;

/// <summary>Float64 definitions of the sequence-model ops: embeddings, layer norm, and attention composed the plain
/// way (scores, mask, softmax, dropout, weighted sum) with its chain-rule backward.</summary>
public static partial class ReferenceOps
{
    public static double[] Embedding(ReadOnlySpan<float> table, ReadOnlySpan<int> ids, int dim)
    {
        var y = new double[ids.Length * dim];
        for (int t = 0; t < ids.Length; t++)
            for (int c = 0; c < dim; c++) y[t * dim + c] = table[ids[t] * dim + c];
        return y;
    }

    public static double[] EmbeddingBackward(ReadOnlySpan<int> ids, ReadOnlySpan<float> dy, int vocab, int dim, int paddingIndex)
    {
        var d = new double[vocab * dim];
        for (int t = 0; t < ids.Length; t++)
            if (ids[t] != paddingIndex)
                for (int c = 0; c < dim; c++) d[ids[t] * dim + c] += dy[t * dim + c];
        return d;
    }

    /// <summary>Layer norm of s = x (+ residual): y, and each row's mean and 1 / sqrt(var + eps).</summary>
    public static (double[] Y, double[] Mean, double[] InvStd) LayerNorm(in LayerNormSpec s, ReadOnlySpan<float> x, ReadOnlySpan<float> residual,
        ReadOnlySpan<float> gamma, ReadOnlySpan<float> beta) => LayerNorm(s, ToDouble(x), residual.IsEmpty ? default : ToDouble(residual), ToDouble(gamma), ToDouble(beta));

    public static (double[] Y, double[] Mean, double[] InvStd) LayerNorm(in LayerNormSpec s, ReadOnlySpan<double> x, ReadOnlySpan<double> residual,
        ReadOnlySpan<double> gamma, ReadOnlySpan<double> beta)
    {
        var y = new double[s.Size];
        var mean = new double[s.Rows];
        var inv = new double[s.Rows];
        var row = new double[s.Dim];
        for (int r = 0; r < s.Rows; r++)
        {
            double m = 0;
            for (int c = 0; c < s.Dim; c++) { row[c] = x[r * s.Dim + c] + (residual.IsEmpty ? 0.0 : residual[r * s.Dim + c]); m += row[c]; }
            m /= s.Dim;
            double v = 0;
            for (int c = 0; c < s.Dim; c++) v += (row[c] - m) * (row[c] - m);
            double istd = 1.0 / Math.Sqrt(v / s.Dim + s.Epsilon);
            mean[r] = m; inv[r] = istd;
            for (int c = 0; c < s.Dim; c++) y[r * s.Dim + c] = (row[c] - m) * istd * gamma[c] + beta[c];
        }
        return (y, mean, inv);
    }

    /// <summary>Layer-norm gradients for output gradient dy (statistics recomputed in float64).</summary>
    public static (double[] Dx, double[] DGamma, double[] DBeta) LayerNormBackward(in LayerNormSpec s, ReadOnlySpan<float> x, ReadOnlySpan<float> dy, ReadOnlySpan<float> gamma)
    {
        var (_, mean, inv) = LayerNorm(s, x, default, gamma, new float[s.Dim]);
        var dx = new double[s.Size];
        var dg = new double[s.Dim];
        var db = new double[s.Dim];
        for (int r = 0; r < s.Rows; r++)
        {
            double a = 0, b = 0;
            for (int c = 0; c < s.Dim; c++)
            {
                int i = r * s.Dim + c;
                double xhat = (x[i] - mean[r]) * inv[r], g = dy[i] * gamma[c];
                a += g; b += g * xhat;
                dg[c] += dy[i] * xhat; db[c] += dy[i];
            }
            a /= s.Dim; b /= s.Dim;
            for (int c = 0; c < s.Dim; c++)
            {
                int i = r * s.Dim + c;
                double xhat = (x[i] - mean[r]) * inv[r];
                dx[i] = inv[r] * (dy[i] * gamma[c] - a - xhat * b);
            }
        }
        return (dx, dg, db);
    }

    /// <summary>The attention weights of one (batch, head) after mask, softmax and dropout, [Lq, Lk], and each row's
    /// log-sum-exp (+infinity when the row sees no key).</summary>
    static (double[] P, double[] Pdrop, double[] Lse) AttentionWeights(in AttentionSpec s, ReadOnlySpan<double> q, ReadOnlySpan<double> k, ReadOnlySpan<int> keyMask, int b, int h)
    {
        int lq = s.QueryLength, lk = s.KeyLength, d = s.HeadDim;
        var p = new double[lq * lk];
        var pd = new double[lq * lk];
        var lse = new double[lq];
        double scale = 1.0 / Math.Sqrt(d);
        for (int i = 0; i < lq; i++)
        {
            double max = double.NegativeInfinity;
            var sc = new double[lk];
            for (int j = 0; j < lk; j++)
            {
                bool visible = j < s.KeyLimit(i) && (keyMask.IsEmpty || keyMask[b * lk + j] != 0);
                if (!visible) { sc[j] = double.NegativeInfinity; continue; }
                double dot = 0;
                for (int c = 0; c < d; c++)
                    dot += (double)q[(int)s.QIndex(b, i, h) + c] * k[(int)s.KIndex(b, j, h) + c];
                sc[j] = dot * scale;
                max = Math.Max(max, sc[j]);
            }
            if (double.IsNegativeInfinity(max)) { lse[i] = double.PositiveInfinity; continue; }
            double sum = 0;
            for (int j = 0; j < lk; j++) sum += Math.Exp(sc[j] - max);
            lse[i] = max + Math.Log(sum);
            for (int j = 0; j < lk; j++)
            {
                p[i * lk + j] = Math.Exp(sc[j] - lse[i]);
                bool keep = s.DropoutP == 0f || ScalarMath.DropoutKeep(s.DropoutSeed, s.DropoutIndex(b, h, i, j), s.DropoutP);
                pd[i * lk + j] = keep ? p[i * lk + j] / (1.0 - s.DropoutP) : 0.0;
            }
        }
        return (p, pd, lse);
    }

    /// <summary>Attention forward: O on O's strided view (other elements zero) and lse [B, H, Lq].</summary>
    public static (double[] O, double[] Lse) Attention(in AttentionSpec s, ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, ReadOnlySpan<int> keyMask) =>
        Attention(s, ToDouble(q), ToDouble(k), ToDouble(v), keyMask);

    public static (double[] O, double[] Lse) Attention(in AttentionSpec s, ReadOnlySpan<double> q, ReadOnlySpan<double> k, ReadOnlySpan<double> v, ReadOnlySpan<int> keyMask)
    {
        var o = new double[s.OExtent];
        var lseAll = new double[s.LseLength];
        int lq = s.QueryLength, lk = s.KeyLength, d = s.HeadDim;
        for (int b = 0; b < s.Batch; b++)
            for (int h = 0; h < s.Heads; h++)
            {
                var (_, pd, lse) = AttentionWeights(s, q, k, keyMask, b, h);
                for (int i = 0; i < lq; i++)
                {
                    lseAll[(b * s.Heads + h) * lq + i] = lse[i];
                    for (int c = 0; c < d; c++)
                    {
                        double acc = 0;
                        for (int j = 0; j < lk; j++) acc += pd[i * lk + j] * v[(int)s.VIndex(b, j, h) + c];
                        o[s.OIndex(b, i, h) + c] = acc;
                    }
                }
            }
        return (o, lseAll);
    }

    /// <summary>Attention backward by the chain rule through the composed forward: dQ, dK, dV on their views.</summary>
    public static (double[] Dq, double[] Dk, double[] Dv) AttentionBackward(in AttentionSpec s, ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v,
        ReadOnlySpan<int> keyMask, ReadOnlySpan<float> dO) => AttentionBackward(s, ToDouble(q), ToDouble(k), ToDouble(v), keyMask, ToDouble(dO));

    public static (double[] Dq, double[] Dk, double[] Dv) AttentionBackward(in AttentionSpec s, ReadOnlySpan<double> q, ReadOnlySpan<double> k, ReadOnlySpan<double> v,
        ReadOnlySpan<int> keyMask, ReadOnlySpan<double> dO)
    {
        var dq = new double[s.QExtent];
        var dk = new double[s.KExtent];
        var dv = new double[s.VExtent];
        int lq = s.QueryLength, lk = s.KeyLength, d = s.HeadDim;
        double scale = 1.0 / Math.Sqrt(d), keepScale = 1.0 / (1.0 - s.DropoutP);
        for (int b = 0; b < s.Batch; b++)
            for (int h = 0; h < s.Heads; h++)
            {
                var (p, pd, _) = AttentionWeights(s, q, k, keyMask, b, h);
                for (int i = 0; i < lq; i++)
                {
                    var dpd = new double[lk];
                    for (int j = 0; j < lk; j++)
                    {
                        double dot = 0;
                        for (int c = 0; c < d; c++)
                        {
                            double g = dO[(int)s.OIndex(b, i, h) + c];
                            dot += g * v[(int)s.VIndex(b, j, h) + c];
                            dv[s.VIndex(b, j, h) + c] += pd[i * lk + j] * g;
                        }
                        // Through dropout: dP = dPdrop * mask / (1 - p), with the forward's draw.
                        bool keep = s.DropoutP == 0f || ScalarMath.DropoutKeep(s.DropoutSeed, s.DropoutIndex(b, h, i, j), s.DropoutP);
                        dpd[j] = keep ? dot * keepScale : 0.0;
                    }
                    double rowDot = 0;
                    for (int j = 0; j < lk; j++) rowDot += p[i * lk + j] * dpd[j];
                    for (int j = 0; j < lk; j++)
                    {
                        double ds = p[i * lk + j] * (dpd[j] - rowDot) * scale;
                        if (ds == 0) continue;
                        for (int c = 0; c < d; c++)
                        {
                            dq[s.QIndex(b, i, h) + c] += ds * k[(int)s.KIndex(b, j, h) + c];
                            dk[s.KIndex(b, j, h) + c] += ds * q[(int)s.QIndex(b, i, h) + c];
                        }
                    }
                }
            }
        return (dq, dk, dv);
    }
}
