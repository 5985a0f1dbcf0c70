using LsKd.Kernels;

namespace LsKd.Autograd;

/// <summary>Convolutional-network ops: convolution, batch norm, pooling, global average pooling, dropout.
/// Each records one tape node whose backward calls the matching backend kernel.</summary>
public static partial class Ops
{
    /// <summary>y = conv2d(x, w) for x [N, C, H, W] and w [K, C / groups, R, S]; no bias (batch norm follows).</summary>
    /// <summary>2-D convolution. With batchStats, the output also carries its per-channel batch mean and variance,
    /// formed in the convolution's output pass, for the batch norm that follows (which then reads its input once).</summary>
    public static Tensor Conv2d(Tensor x, Tensor w, int stride = 1, int pad = 0, int groups = 1, string layer = "conv2d", bool batchStats = false)
    {
        CheckSameBackend(x, w, layer);
        if (x.Rank != 4) throw new ArgumentException($"{layer}: input must be [N, C, H, W], got {Tensor.ShapeString(x.Shape)}");
        if (w.Rank != 4) throw new ArgumentException($"{layer}: weight must be [K, C/groups, R, S], got {Tensor.ShapeString(w.Shape)}");
        var spec = new ConvSpec(x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3], w.Shape[0], w.Shape[2], w.Shape[3], stride, pad, groups);
        if (w.Shape[1] * groups != x.Shape[1])
            throw new ArgumentException($"{layer}: expected input with {w.Shape[1] * groups} channels (weight {Tensor.ShapeString(w.Shape)}, groups {groups}), got input {Tensor.ShapeString(x.Shape)}");
        spec.Validate(layer);
        FlopCounter.Add(spec.Flops);
        var y = Output(x, [spec.N, spec.K, spec.OutH, spec.OutW], x, w);
        var stats = batchStats && (long)spec.N * spec.OutH * spec.OutW > 1 ? T.NewTransient(x.Backend, [2 * spec.K], false) : null;
        x.Backend.Conv2d(spec, x.Buffer, w.Buffer, y.Buffer, stats?.Buffer);
        y.ChannelStats = stats;
        T.Record(y, [x, w], o =>
        {
            Accumulate(w, (g, acc) => x.Backend.Conv2dBackwardWeight(spec, x.Buffer, o.Grad!, g, acc));
            Accumulate(x, (g, acc) => x.Backend.Conv2dBackwardInput(spec, o.Grad!, w.Buffer, g, acc));
        });
        return y;
    }

    /// <summary>Batch normalisation over the channel axis (dimension 1) of [N, C, ...]. In training the batch
    /// statistics are used and the running ones updated in place; in evaluation the running ones are used. An
    /// activation (ReLU, ReLU6) can be fused: it costs no extra pass over memory, forward or backward (the backward
    /// recomputes the mask from x and beta, so y is not read).</summary>
    public static Tensor BatchNorm(Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar, bool training,
        float epsilon = 1e-5f, float momentum = 0.1f, string layer = "batchnorm", NormActivation activation = NormActivation.None)
    {
        if (x.Rank < 2 || x.Shape[1] != gamma.Size)
            throw new ArgumentException($"{layer}: expected input [N, {gamma.Size}, ...], got {Tensor.ShapeString(x.Shape)}");
        var spec = new BatchNormSpec(x.Shape[0], x.Shape[1], x.Size / Math.Max(1, x.Shape[0] * x.Shape[1]), epsilon, momentum, activation);
        var be = x.Backend;
        var y = Output(x, x.Shape, x, gamma, beta);
        var mean = T.NewTransient(be, [spec.C], false);
        var invStd = T.NewTransient(be, [spec.C], false);
        var given = training && x.ChannelStats is { } st && st.Size == 2 * spec.C ? st.Buffer : null;
        be.BatchNorm(spec, x.Buffer, gamma.Buffer, beta.Buffer, y.Buffer, mean.Buffer, invStd.Buffer, runningMean.Buffer, runningVar.Buffer, training, given);
        T.Record(y, [x, gamma, beta], o =>
        {
            var dGamma = T.Pool.Rent(be, spec.C);
            var dBeta = T.Pool.Rent(be, spec.C);
            // dx is computed even when x needs no gradient only if it does; otherwise into a scratch buffer.
            DeviceBuffer<float>? scratch = x.RequiresGrad ? null : T.Pool.Rent(be, x.Size);
            if (scratch != null)
                be.BatchNormBackward(spec, x.Buffer, o.Grad!, gamma.Buffer, mean.Buffer, invStd.Buffer, scratch, dGamma, dBeta, training, false, beta.Buffer);
            else
                Accumulate(x, (g, acc) => be.BatchNormBackward(spec, x.Buffer, o.Grad!, gamma.Buffer, mean.Buffer, invStd.Buffer, g, dGamma, dBeta, training, acc, beta.Buffer));
            AccumulateFrom(gamma, dGamma);
            AccumulateFrom(beta, dBeta);
            T.Pool.Return(dGamma); T.Pool.Return(dBeta);
            if (scratch != null) T.Pool.Return(scratch);
        });
        return y;
    }

    /// <summary>relu(batchnorm(x) + residual), the end of a residual block, as one op (one pass over memory forward,
    /// two backward, the masked gradient never a tensor of its own); the same float operations as
    /// <c>AddRelu(BatchNorm(x), residual)</c>, so results are identical.</summary>
    public static Tensor BatchNormAddRelu(Tensor x, Tensor residual, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar, bool training,
        float epsilon = 1e-5f, float momentum = 0.1f, string layer = "batchnorm")
    {
        CheckSameBackend(x, residual, layer);
        if (x.Rank < 2 || x.Shape[1] != gamma.Size)
            throw new ArgumentException($"{layer}: expected input [N, {gamma.Size}, ...], got {Tensor.ShapeString(x.Shape)}");
        if (!x.Shape.SequenceEqual(residual.Shape))
            throw new ArgumentException($"{layer}: the residual {Tensor.ShapeString(residual.Shape)} differs from the input {Tensor.ShapeString(x.Shape)}");
        if (ReferenceEquals(x, residual)) return AddRelu(BatchNorm(x, gamma, beta, runningMean, runningVar, training, epsilon, momentum, layer), residual);
        var spec = new BatchNormSpec(x.Shape[0], x.Shape[1], x.Size / Math.Max(1, x.Shape[0] * x.Shape[1]), epsilon, momentum);
        var be = x.Backend;
        var y = Output(x, x.Shape, x, gamma, beta, residual);
        var mean = T.NewTransient(be, [spec.C], false);
        var invStd = T.NewTransient(be, [spec.C], false);
        var given = training && x.ChannelStats is { } st && st.Size == 2 * spec.C ? st.Buffer : null;
        be.BatchNormAddRelu(spec, x.Buffer, gamma.Buffer, beta.Buffer, residual.Buffer, y.Buffer, mean.Buffer, invStd.Buffer, runningMean.Buffer, runningVar.Buffer, training, given);
        T.Record(y, [x, gamma, beta, residual], o =>
        {
            var dGamma = T.Pool.Rent(be, spec.C);
            var dBeta = T.Pool.Rent(be, spec.C);
            // An input that needs no gradient still gets one, in scratch: the kernel writes both.
            bool freshX = true, freshR = true;
            var dx = x.RequiresGrad ? x.EnsureGrad(out freshX) : T.Pool.Rent(be, x.Size);
            var dr = residual.RequiresGrad ? residual.EnsureGrad(out freshR) : T.Pool.Rent(be, x.Size);
            be.BatchNormAddReluBackward(spec, x.Buffer, y.Buffer, o.Grad!, gamma.Buffer, mean.Buffer, invStd.Buffer, dx, dr, dGamma, dBeta, training, !freshX, !freshR);
            AccumulateFrom(gamma, dGamma);
            AccumulateFrom(beta, dBeta);
            T.Pool.Return(dGamma); T.Pool.Return(dBeta);
            if (!x.RequiresGrad) T.Pool.Return(dx);
            if (!residual.RequiresGrad) T.Pool.Return(dr);
        });
        return y;
    }

    public static Tensor MaxPool2d(Tensor x, int kernel, int stride, int pad = 0) => Pool(PoolOp.Max, x, kernel, stride, pad);
    public static Tensor AvgPool2d(Tensor x, int kernel, int stride, int pad = 0) => Pool(PoolOp.Average, x, kernel, stride, pad);

    static Tensor Pool(PoolOp op, Tensor x, int kernel, int stride, int pad)
    {
        string layer = op == PoolOp.Max ? "max-pool" : "avg-pool";
        if (x.Rank != 4) throw new ArgumentException($"{layer}: input must be [N, C, H, W], got {Tensor.ShapeString(x.Shape)}");
        var spec = new PoolSpec(op, x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3], kernel, stride, pad);
        spec.Validate(layer);
        var be = x.Backend;
        var y = Output(x, [spec.N, spec.C, spec.OutH, spec.OutW], x);
        var arg = op == PoolOp.Max && y.RequiresGrad ? T.NewIntTransient(be, (int)spec.OutputSize) : null;
        be.Pool2d(spec, x.Buffer, y.Buffer, arg);
        T.Record(y, [x], o => Accumulate(x, (g, acc) => be.Pool2dBackward(spec, o.Grad!, arg, g, acc)));
        return y;
    }

    /// <summary>[N, C, H, W] to [N, C]: the mean over each plane.</summary>
    public static Tensor GlobalAvgPool(Tensor x)
    {
        if (x.Rank != 4) throw new ArgumentException($"global-avg-pool: input must be [N, C, H, W], got {Tensor.ShapeString(x.Shape)}");
        int planes = x.Shape[0] * x.Shape[1], hw = x.Shape[2] * x.Shape[3];
        var be = x.Backend;
        var y = Output(x, [x.Shape[0], x.Shape[1]], x);
        be.Reduce(ReduceOp.Mean, x.Buffer, y.Buffer, planes, hw, 1);
        T.Record(y, [x], o => Accumulate(x, (g, acc) =>
        {
            // dx[p, i] (+)= dy[p] / hw: broadcast the scaled gradient over each plane.
            var scaled = T.Pool.Rent(be, planes);
            be.Unary(UnaryOp.Scale, o.Grad!, scaled, planes, 1f / hw);
            if (!acc) be.Fill(g, 0, x.Size, 0f);
            be.Binary(BinaryOp.Add, g, scaled, g, x.Size, planes, hw);
            T.Pool.Return(scaled);
        }));
        return y;
    }

    /// <summary>Inverted dropout with a counter-based mask from seed (identity when p = 0).</summary>
    public static Tensor Dropout(Tensor x, float p, ulong seed)
    {
        if (p == 0f) return x;
        var be = x.Backend;
        var y = Output(x, x.Shape, x);
        be.Dropout(x.Buffer, y.Buffer, x.Size, p, seed);
        T.Record(y, [x], o =>
        {
            var tmp = T.Pool.Rent(be, x.Size);
            be.Dropout(o.Grad!, tmp, x.Size, p, seed);
            AccumulateFrom(x, tmp);
            T.Pool.Return(tmp);
        });
        return y;
    }
}

/// <summary>Counts forward FLOPs (2 x multiply-adds of convolutions and matrix products, the usual convention)
/// while a scope is open on this thread: `using (var c = FlopCounter.Start()) model.Forward(x);`.</summary>
public sealed class FlopCounter : IDisposable
{
    [ThreadStatic] static FlopCounter? t_current;
    readonly FlopCounter? _outer;

    FlopCounter() { _outer = t_current; t_current = this; }

    public long Flops { get; private set; }

    public static FlopCounter Start() => new();
    internal static void Add(long flops) { if (t_current != null) t_current.Flops += flops; }

    public void Dispose() => t_current = _outer;
}
