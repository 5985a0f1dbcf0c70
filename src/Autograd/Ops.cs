using LsKd.Kernels;

namespace LsKd.Autograd;

/// <summary>Differentiable ops. Each forward calls backend kernels and records a backward that accumulates into
/// the inputs' gradients (first writer overwrites, later writers add), so no gradient buffer is zeroed per step.</summary>
public static partial class Ops
{
    static Tape T => Tape.Current;

    static void CheckSameBackend(Tensor a, Tensor b, string op)
    {
        if (!ReferenceEquals(a.Backend, b.Backend))
            throw new ArgumentException($"{op}: tensors live on different backends ({a.Backend.Name} and {b.Backend.Name})");
    }

    static Tensor Output(Tensor like, int[] shape, params Tensor[] inputs) =>
        T.NewTransient(like.Backend, shape, inputs.Any(i => i.RequiresGrad));

    /// <summary>Runs write(buffer, accumulate) against the input's gradient: accumulate is false when the gradient
    /// buffer was just created (its content is garbage and must be overwritten).</summary>
    static void Accumulate(Tensor input, Action<DeviceBuffer<float>, bool> write)
    {
        if (!input.RequiresGrad) return;
        var g = input.EnsureGrad(out bool fresh);
        write(g, !fresh);
    }

    /// <summary>Adds a computed gradient (in a scratch buffer) into the input's gradient.</summary>
    static void AccumulateFrom(Tensor input, DeviceBuffer<float> delta)
    {
        Accumulate(input, (g, acc) => input.Backend.Axpby(1f, delta, acc ? 1f : 0f, g, input.Size));
    }

    public static Tensor Reshape(Tensor x, int[] shape)
    {
        int n = Tensor.ShapeSize(shape);
        if (n != x.Size) throw new ArgumentException($"cannot reshape {Tensor.ShapeString(x.Shape)} ({x.Size} elements) to {Tensor.ShapeString(shape)} ({n} elements)");
        var y = new Tensor(x.Backend, (int[])shape.Clone(), x.Buffer, x.RequiresGrad && T.GradEnabled, transient: true) { _viewOfOther = true };
        T.TrackView(y);
        T.Record(y, [x], o => AccumulateFrom(x, o.Grad!));
        return y;
    }

    /// <summary>C = A B (or A B^T when transB) for 2-D A [M, K] and B [K, N] (or [N, K]).</summary>
    public static Tensor MatMul(Tensor a, Tensor b, bool transB = false)
    {
        CheckSameBackend(a, b, "matmul");
        if (a.Rank != 2 || b.Rank != 2) throw new ArgumentException($"matmul needs 2-D tensors, got {Tensor.ShapeString(a.Shape)} and {Tensor.ShapeString(b.Shape)}");
        int m = a.Shape[0], k = a.Shape[1];
        int kb = transB ? b.Shape[1] : b.Shape[0], n = transB ? b.Shape[0] : b.Shape[1];
        if (k != kb) throw new ArgumentException($"matmul shape mismatch: A {Tensor.ShapeString(a.Shape)} x B{(transB ? "^T" : "")} {Tensor.ShapeString(b.Shape)} (inner dimensions {k} and {kb})");
        var c = Output(a, [m, n], a, b);
        a.Backend.Gemm(new GemmSpec(false, transB, m, n, k), a.Buffer, b.Buffer, c.Buffer);
        FlopCounter.Add(2L * m * n * k);
        T.Record(c, [a, b], o =>
        {
            var be = a.Backend;
            // dA = dC op(B)^T
            Accumulate(a, (g, acc) => be.Gemm(new GemmSpec(false, !transB, m, k, n, Beta: acc ? 1f : 0f), o.Grad!, b.Buffer, g));
            // dB = A^T dC, or (dC^T A) when B is stored transposed
            if (!transB) Accumulate(b, (g, acc) => be.Gemm(new GemmSpec(true, false, k, n, m, Beta: acc ? 1f : 0f), a.Buffer, o.Grad!, g));
            else Accumulate(b, (g, acc) => be.Gemm(new GemmSpec(true, false, n, k, m, Beta: acc ? 1f : 0f), o.Grad!, a.Buffer, g));
        });
        return c;
    }

    /// <summary>y[r, c] = x[r, c] + bias[c] for x viewed as [rows, bias.Size].</summary>
    public static Tensor AddBias(Tensor x, Tensor bias)
    {
        CheckSameBackend(x, bias, "add-bias");
        int cols = bias.Size;
        if (x.Size % cols != 0 || x.Shape[^1] != cols)
            throw new ArgumentException($"add-bias: bias {Tensor.ShapeString(bias.Shape)} does not match the last dimension of x {Tensor.ShapeString(x.Shape)}");
        var y = Output(x, x.Shape, x, bias);
        x.Backend.Binary(BinaryOp.Add, x.Buffer, bias.Buffer, y.Buffer, x.Size, cols);
        T.Record(y, [x, bias], o =>
        {
            AccumulateFrom(x, o.Grad!);
            if (bias.RequiresGrad) ReduceInto(bias, o.Grad!, 1, x.Size / cols, cols);
        });
        return y;
    }

    /// <summary>Sums grad over the middle axis into target's gradient.</summary>
    static void ReduceInto(Tensor target, DeviceBuffer<float> grad, int outer, int axis, int inner)
    {
        var be = target.Backend;
        var g = target.EnsureGrad(out bool fresh);
        if (fresh) { be.Reduce(ReduceOp.Sum, grad, g, outer, axis, inner); return; }
        var tmp = T.Pool.Rent(be, target.Size);
        be.Reduce(ReduceOp.Sum, grad, tmp, outer, axis, inner);
        be.Axpby(1f, tmp, 1f, g, target.Size);
        T.Pool.Return(tmp);
    }

    static Tensor Elementwise(BinaryOp op, Tensor a, Tensor b)
    {
        CheckSameBackend(a, b, op.ToString());
        if (!a.Shape.SequenceEqual(b.Shape))
            throw new ArgumentException($"{op}: shapes differ: {Tensor.ShapeString(a.Shape)} and {Tensor.ShapeString(b.Shape)}");
        var y = Output(a, a.Shape, a, b);
        a.Backend.Binary(op, a.Buffer, b.Buffer, y.Buffer, a.Size, a.Size);
        T.Record(y, [a, b], o =>
        {
            var be = a.Backend;
            switch (op)
            {
                case BinaryOp.Add: AccumulateFrom(a, o.Grad!); AccumulateFrom(b, o.Grad!); break;
                case BinaryOp.Sub:
                    AccumulateFrom(a, o.Grad!);
                    Accumulate(b, (g, acc) => be.Axpby(-1f, o.Grad!, acc ? 1f : 0f, g, b.Size));
                    break;
                case BinaryOp.Mul:
                    foreach (var (self, other) in new[] { (a, b), (b, a) })
                    {
                        if (!self.RequiresGrad) continue;
                        var tmp = T.Pool.Rent(be, self.Size);
                        be.Binary(BinaryOp.Mul, o.Grad!, other.Buffer, tmp, self.Size, self.Size);
                        AccumulateFrom(self, tmp);
                        T.Pool.Return(tmp);
                    }
                    break;
                default: throw new NotSupportedException($"no gradient for {op}");
            }
        });
        return y;
    }

    public static Tensor Add(Tensor a, Tensor b) => Elementwise(BinaryOp.Add, a, b);

    /// <summary>relu(a + b), the end of a residual block, as one op: the sum is rectified in place, and the backward
    /// pass writes the masked gradient straight into each input's gradient (relu'(a + b) = [y &gt; 0]), instead of
    /// a ReLU gradient followed by two copies for the sum.</summary>
    public static Tensor AddRelu(Tensor a, Tensor b)
    {
        CheckSameBackend(a, b, "add-relu");
        if (!a.Shape.SequenceEqual(b.Shape))
            throw new ArgumentException($"add-relu: shapes differ: {Tensor.ShapeString(a.Shape)} and {Tensor.ShapeString(b.Shape)}");
        var y = Output(a, a.Shape, a, b);
        var be = a.Backend;
        be.Binary(BinaryOp.AddRelu, a.Buffer, b.Buffer, y.Buffer, a.Size, a.Size);
        T.Record(y, [a, b], o =>
        {
            // One pass masks dy and writes both gradients (a residual block's two branches).
            if (a.RequiresGrad && b.RequiresGrad && !ReferenceEquals(a, b))
            {
                var ga = a.EnsureGrad(out bool freshA);
                var gb = b.EnsureGrad(out bool freshB);
                be.AddReluBackward(y.Buffer, o.Grad!, ga, gb, a.Size, !freshA, !freshB);
                return;
            }
            foreach (var input in new[] { a, b })
                Accumulate(input, (g, acc) => be.UnaryBackward(UnaryOp.Relu, y.Buffer, o.Grad!, g, a.Size, 0f, acc));
        });
        return y;
    }
    public static Tensor Sub(Tensor a, Tensor b) => Elementwise(BinaryOp.Sub, a, b);
    public static Tensor Mul(Tensor a, Tensor b) => Elementwise(BinaryOp.Mul, a, b);

    public static Tensor Unary(UnaryOp op, Tensor x, float scalar = 0f)
    {
        var y = Output(x, x.Shape, x);
        x.Backend.Unary(op, x.Buffer, y.Buffer, x.Size, scalar);
        T.Record(y, [x], o => Accumulate(x, (g, acc) => x.Backend.UnaryBackward(op, x.Buffer, o.Grad!, g, x.Size, scalar, acc)));
        return y;
    }

    public static Tensor Relu(Tensor x) => Unary(UnaryOp.Relu, x);
    public static Tensor Relu6(Tensor x) => Unary(UnaryOp.Relu6, x);
    public static Tensor Gelu(Tensor x) => Unary(UnaryOp.Gelu, x);
    public static Tensor Scale(Tensor x, float s) => Unary(UnaryOp.Scale, x, s);

    /// <summary>Sum (or mean) of all elements, a [1] tensor.</summary>
    public static Tensor Sum(Tensor x, bool mean = false)
    {
        var y = Output(x, [1], x);
        x.Backend.Reduce(mean ? ReduceOp.Mean : ReduceOp.Sum, x.Buffer, y.Buffer, 1, x.Size, 1);
        T.Record(y, [x], o => Accumulate(x, (g, acc) =>
        {
            var be = x.Backend;
            if (!acc) be.Fill(g, 0, x.Size, 0f);
            if (mean)
            {
                var scaled = T.Pool.Rent(be, 1);
                be.Unary(UnaryOp.Scale, o.Grad!, scaled, 1, 1f / x.Size);
                be.Binary(BinaryOp.Add, g, scaled, g, x.Size, 1);
                T.Pool.Return(scaled);
            }
            else be.Binary(BinaryOp.Add, g, o.Grad!, g, x.Size, 1);
        }));
        return y;
    }

    public static Tensor Mean(Tensor x) => Sum(x, mean: true);

    /// <summary>softmax(x / T) or log_softmax(x / T) along the last dimension.</summary>
    public static Tensor Softmax(Tensor x, float temperature = 1f, bool log = false)
    {
        int cols = x.Shape[^1], rows = x.Size / cols;
        var y = Output(x, x.Shape, x);
        x.Backend.Softmax(x.Buffer, y.Buffer, rows, cols, temperature, log);
        T.Record(y, [x], o => Accumulate(x, (g, acc) => x.Backend.SoftmaxBackward(y.Buffer, o.Grad!, g, rows, cols, temperature, log, acc)));
        return y;
    }

    /// <summary>Fused label-smoothing cross-entropy, batch mean, one tape node. The kernel writes the per-sample
    /// losses and the logit gradient (already divided by B) in one pass; backward scales it by the incoming
    /// gradient.</summary>
    public static Tensor LabelSmoothingCrossEntropy(Tensor logits, DeviceBuffer<int> labels, float alpha) =>
        FusedLabelSmoothing(logits, labels, alpha, null, 0, "label-smoothing cross-entropy");

    /// <summary>Fused KD loss (1-beta) CE_ls + beta T^2 KL(teacher || student), batch mean, one tape node. The
    /// teacher gets no gradient.</summary>
    public static Tensor KdLoss(Tensor student, Tensor teacher, DeviceBuffer<int> labels, KdConfig config) =>
        FusedKd(student, teacher, labels, config, null, 0, "kd-loss");

    /// <summary>The fused LS-CE over rows; with an ignore label, padding rows are skipped and the mean is over the real
    /// rows (<paramref name="realRows"/>), else over all rows.</summary>
    static Tensor FusedLabelSmoothing(Tensor logits, DeviceBuffer<int> labels, float alpha, int? ignoreLabel, int realRows, string op)
    {
        (int rows, int cols) = RowsCols(logits, op);
        var be = logits.Backend;
        var perRow = T.NewTransient(be, [rows], false);
        DeviceBuffer<float>? grad = logits.RequiresGrad && T.GradEnabled ? T.NewTransient(be, logits.Shape, false).Buffer : null;
        float scale = 1f / Math.Max(1, ignoreLabel == null ? rows : realRows);
        be.LabelSmoothingCrossEntropy(logits.Buffer, labels, perRow.Buffer, grad, rows, cols, alpha, scale, ignoreLabel);
        return FusedLossOutput(logits, perRow, grad, rows, ignoreLabel == null ? null : scale);
    }

    static Tensor FusedKd(Tensor student, Tensor teacher, DeviceBuffer<int> labels, KdConfig config, int? ignoreLabel, int realRows, string op)
    {
        CheckSameBackend(student, teacher, op);
        if (!student.Shape.SequenceEqual(teacher.Shape))
            throw new ArgumentException($"{op}: student logits {Tensor.ShapeString(student.Shape)} and teacher logits {Tensor.ShapeString(teacher.Shape)} differ in shape", nameof(teacher));
        (int rows, int cols) = RowsCols(student, op);
        var be = student.Backend;
        var perRow = T.NewTransient(be, [rows], false);
        DeviceBuffer<float>? grad = student.RequiresGrad && T.GradEnabled ? T.NewTransient(be, student.Shape, false).Buffer : null;
        float scale = 1f / Math.Max(1, ignoreLabel == null ? rows : realRows);
        be.KdLoss(student.Buffer, teacher.Buffer, labels, perRow.Buffer, grad, rows, cols, config, scale, ignoreLabel);
        return FusedLossOutput(student, perRow, grad, rows, ignoreLabel == null ? null : scale);
    }

    static (int Rows, int Cols) RowsCols(Tensor logits, string op)
    {
        if (logits.Rank != 2) throw new ArgumentException($"{op}: logits must be [batch, classes], got {Tensor.ShapeString(logits.Shape)}");
        return (logits.Shape[0], logits.Shape[1]);
    }

    /// <summary>The scalar loss: the mean of the per-row losses, or their sum times <paramref name="sumScale"/> (token
    /// losses divide by the real tokens, not the rows).</summary>
    static Tensor FusedLossOutput(Tensor logits, Tensor perRow, DeviceBuffer<float>? grad, int rows, float? sumScale = null)
    {
        var be = logits.Backend;
        var loss = T.NewTransient(be, [1], grad != null);
        if (sumScale is { } scale)
        {
            be.Reduce(ReduceOp.Sum, perRow.Buffer, loss.Buffer, 1, rows, 1);
            be.Unary(UnaryOp.Scale, loss.Buffer, loss.Buffer, 1, scale);
        }
        else be.Reduce(ReduceOp.Mean, perRow.Buffer, loss.Buffer, 1, rows, 1);
        if (grad != null)
            T.Record(loss, [logits], o => Accumulate(logits, (g, acc) =>
            {
                // d loss / d logits = incoming scalar * fused gradient.
                if (!acc) be.Binary(BinaryOp.Mul, grad, o.Grad!, g, logits.Size, 1);
                else
                {
                    var tmp = T.Pool.Rent(be, logits.Size);
                    be.Binary(BinaryOp.Mul, grad, o.Grad!, tmp, logits.Size, 1);
                    be.Axpby(1f, tmp, 1f, g, logits.Size);
                    T.Pool.Return(tmp);
                }
            }));
        return loss;
    }
}
