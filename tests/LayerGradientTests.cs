using LsKd.Autograd;
using LsKd.Kernels;
using LsKd.Kernels.Reference;

namespace LsKd.Tests;

/// <summary>Finite-difference checks of the convolutional-network ops (same method and tolerance as the other
/// gradient checks): convolutions (padding, stride 2, groups, depthwise, 1x1), batch norm in training and
/// evaluation, max and average pooling, global average pooling and dropout.</summary>
public partial class GradientCheckTests
{
    static IEnumerable<TestCaseData> ConvCases() => ForBackends("3x3-pad", "3x3-stride2", "groups2", "depthwise", "depthwise-stride2", "1x1", "1x1-stride2");

    [TestCaseSource(nameof(ConvCases))]
    public void Conv(string backend, string kind)
    {
        var s = kind switch
        {
            "3x3-pad" => new ConvSpec(2, 3, 5, 6, 4, 3, 3, 1, 1),
            "3x3-stride2" => new ConvSpec(2, 2, 7, 7, 3, 3, 3, 2, 1),
            "groups2" => new ConvSpec(2, 4, 5, 5, 6, 3, 3, 1, 1, 2),
            "depthwise" => new ConvSpec(2, 3, 5, 5, 3, 3, 3, 1, 1, 3),
            "depthwise-stride2" => new ConvSpec(2, 3, 7, 6, 3, 3, 3, 2, 1, 3),
            "1x1-stride2" => new ConvSpec(2, 3, 5, 5, 4, 1, 1, 2, 0),
            _ => new ConvSpec(2, 3, 4, 4, 5, 1, 1),
        };
        int[] xs = [s.N, s.C, s.H, s.W], ws = [s.K, s.CPerGroup, s.R, s.S];
        Check(backend, [xs, ws], t => Weighted(Ops.Conv2d(t[0], t[1], s.Stride, s.Pad, s.Groups)), x => Weighted(ReferenceOps.Conv2d(s, x[0], x[1])));
    }

    static double[] BatchNormD(double[] x, double[] gamma, double[] beta, int n, int c, int spatial, bool training, double[] rm, double[] rv)
    {
        var y = new double[x.Length];
        int m = n * spatial;
        for (int ch = 0; ch < c; ch++)
        {
            double mu = rm[ch], var = rv[ch];
            if (training)
            {
                mu = 0; var = 0;
                for (int i = 0; i < n; i++) for (int j = 0; j < spatial; j++) mu += x[(i * c + ch) * spatial + j];
                mu /= m;
                for (int i = 0; i < n; i++) for (int j = 0; j < spatial; j++) { double d = x[(i * c + ch) * spatial + j] - mu; var += d * d; }
                var /= m;
            }
            for (int i = 0; i < n; i++)
                for (int j = 0; j < spatial; j++)
                {
                    int o = (i * c + ch) * spatial + j;
                    y[o] = (x[o] - mu) / Math.Sqrt(var + 1e-5) * gamma[ch] + beta[ch];
                }
        }
        return y;
    }

    static IEnumerable<TestCaseData> BatchNormCases() => ForBackends("train", "eval", "train-2d", "train-relu", "eval-relu6");

    [TestCaseSource(nameof(BatchNormCases))]
    public void BatchNorm(string backend, string kind)
    {
        bool training = !kind.StartsWith("eval");
        var act = kind.EndsWith("relu6") ? NormActivation.Relu6 : kind.EndsWith("relu") ? NormActivation.Relu : NormActivation.None;
        double Act(double v) => act == NormActivation.Relu ? Math.Max(v, 0) : act == NormActivation.Relu6 ? Math.Clamp(v, 0, 6) : v;
        int n = 3, c = 4, spatial = kind == "train-2d" ? 1 : 6;
        int[] xs = kind == "train-2d" ? [n, c] : [n, c, 2, 3];
        var be = Backends.Get(backend);
        var rmHost = Rand(c, 50, 0.3f); var rvHost = Rand(c, 51, 0.3f, 1f);
        var rm = Tensor.FromArray(be, rmHost, [c]); var rv = Tensor.FromArray(be, rvHost, [c]);
        // Running statistics are updated in place by every training call, so each evaluation starts from a copy.
        Check(backend, [xs, [c], [c]], t =>
        {
            rm.Buffer.Upload(rmHost); rv.Buffer.Upload(rvHost);
            return Weighted(Ops.BatchNorm(t[0], t[1], t[2], rm, rv, training, activation: act));
        }, x =>
        {
            // ReLU6 needs pre-activations above 6 too: the reference scales gamma the same way as the op below.
            var y = BatchNormD(x[0], x[1], x[2], n, c, spatial, training, rmHost.Select(v => (double)v).ToArray(), rvHost.Select(v => (double)v).ToArray());
            return Weighted(y.Select(Act).ToArray());
        },
        scale: act == NormActivation.Relu6 ? 6f : 2f, shift: 0.5f);
        rm.Buffer.Dispose(); rv.Buffer.Dispose();
    }

    static IEnumerable<TestCaseData> BatchNormAddReluCases() => ForBackends("train", "eval");

    /// <summary>relu(batchnorm(x) + r), the fused residual end: gradients of x, gamma, beta and the residual.</summary>
    [TestCaseSource(nameof(BatchNormAddReluCases))]
    public void BatchNormAddRelu(string backend, string kind)
    {
        bool training = kind == "train";
        int n = 3, c = 4, spatial = 6;
        int[] xs = [n, c, 2, 3];
        var be = Backends.Get(backend);
        var rmHost = Rand(c, 52, 0.3f); var rvHost = Rand(c, 53, 0.3f, 1f);
        var rm = Tensor.FromArray(be, rmHost, [c]); var rv = Tensor.FromArray(be, rvHost, [c]);
        Check(backend, [xs, [c], [c], xs], t =>
        {
            rm.Buffer.Upload(rmHost); rv.Buffer.Upload(rvHost);
            return Weighted(Ops.BatchNormAddRelu(t[0], t[3], t[1], t[2], rm, rv, training));
        }, x =>
        {
            var y = BatchNormD(x[0], x[1], x[2], n, c, spatial, training, rmHost.Select(v => (double)v).ToArray(), rvHost.Select(v => (double)v).ToArray());
            return Weighted(y.Select((v, i) => Math.Max(v + x[3][i], 0)).ToArray());
        });
        rm.Buffer.Dispose(); rv.Buffer.Dispose();
    }

    static IEnumerable<TestCaseData> PoolCases() => ForBackends("max-2x2", "max-3x3-stride2-pad1", "avg-2x2", "avg-3x3-stride2-pad1", "global-avg", "dropout");

    [TestCaseSource(nameof(PoolCases))]
    public void Pooling(string backend, string kind)
    {
        const int n = 2, c = 3, h = 7, w = 6;
        if (kind == "global-avg")
        {
            Check(backend, [[n, c, h, w]], t => Weighted(Ops.GlobalAvgPool(t[0])),
                x => Weighted(Enumerable.Range(0, n * c).Select(p => x[0].Skip(p * h * w).Take(h * w).Average()).ToArray()));
            return;
        }
        if (kind == "dropout")
        {
            Check(backend, [[n, c, h, w]], t => Weighted(Ops.Dropout(t[0], 0.3f, 11)),
                x => Weighted(x[0].Select((v, i) => ScalarMath.DropoutKeep(11, (ulong)i, 0.3f) ? v / 0.7 : 0).ToArray()));
            return;
        }
        bool max = kind.StartsWith("max", StringComparison.Ordinal);
        int k = kind.Contains("3x3") ? 3 : 2, stride = kind.Contains("stride2") ? 2 : 2, pad = kind.Contains("pad1") ? 1 : 0;
        var spec = new PoolSpec(max ? PoolOp.Max : PoolOp.Average, n, c, h, w, k, stride, pad);
        Check(backend, [[n, c, h, w]], t => Weighted(max ? Ops.MaxPool2d(t[0], k, stride, pad) : Ops.AvgPool2d(t[0], k, stride, pad)), x =>
        {
            var y = new double[spec.OutputSize];
            for (int p = 0; p < n * c; p++)
                for (int oh = 0; oh < spec.OutH; oh++)
                    for (int ow = 0; ow < spec.OutW; ow++)
                    {
                        double best = double.NegativeInfinity, sum = 0;
                        for (int r = 0; r < k; r++)
                            for (int q = 0; q < k; q++)
                            {
                                int ih = oh * stride - pad + r, iw = ow * stride - pad + q;
                                if (ih < 0 || ih >= h || iw < 0 || iw >= w) continue;
                                double v = x[0][(p * h + ih) * w + iw];
                                sum += v; best = Math.Max(best, v);
                            }
                        y[(p * spec.OutH + oh) * spec.OutW + ow] = max ? best : sum / (k * k);
                    }
            return Weighted(y);
        });
    }
}
