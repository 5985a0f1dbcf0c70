namespace LsKd.Kernels;

/// <summary>
/// The one op set of LsKd. Every op has a float64 reference (<see cref="Reference.ReferenceOps"/>), a C# SIMD
/// implementation (<see cref="Cpu.CpuBackend"/>) and an ILGPU kernel (<see cref="Gpu.IlgpuBackend"/>).
/// Buffers are flat; shapes are passed explicitly. Arguments are validated before any kernel is queued.
/// </summary>
public interface IBackend : IDisposable
{
    /// <summary>Short device name: cpu, cuda or ilgpu-cpu.</summary>
    string Name { get; }

    /// <summary>Human-readable hardware description for reports.</summary>
    string DeviceDescription { get; }

    /// <summary>Host threads the backend uses (1 for ILGPU backends).</summary>
    int Threads { get; }

    DeviceBuffer<float> Allocate(int length);
    DeviceBuffer<int> AllocateInt(int length);

    /// <summary>Waits until all queued work is done.</summary>
    void Synchronize();

    // ---- memory -------------------------------------------------------------------------------------------
    void Fill(DeviceBuffer<float> x, int offset, int count, float value);
    void FillInt(DeviceBuffer<int> x, int offset, int count, int value);
    void Copy(DeviceBuffer<float> source, int sourceOffset, DeviceBuffer<float> destination, int destinationOffset, int count);

    /// <summary>y[b, c, r] = x[b, r, c] for each of <paramref name="batch"/> rows x cols matrices.</summary>
    void Transpose(DeviceBuffer<float> x, DeviceBuffer<float> y, int batch, int rows, int cols);

    // ---- dense algebra ------------------------------------------------------------------------------------
    void Gemm(in GemmSpec spec, DeviceBuffer<float> a, DeviceBuffer<float> b, DeviceBuffer<float> c);

    // ---- element-wise -------------------------------------------------------------------------------------
    /// <summary>y[i] = f(x[i]); Scale uses y = scalar * x, AddScalar y = x + scalar. x and y may alias.</summary>
    void Unary(UnaryOp op, DeviceBuffer<float> x, DeviceBuffer<float> y, int count, float scalar = 0f);

    /// <summary>dx[i] (+)= dy[i] * f'(x[i]), where x is the op's input.</summary>
    void UnaryBackward(UnaryOp op, DeviceBuffer<float> x, DeviceBuffer<float> dy, DeviceBuffer<float> dx, int count, float scalar = 0f, bool accumulate = false);

    /// <summary>The backward of y = relu(a + b) (<see cref="BinaryOp.AddRelu"/>): g = dy[i] where y[i] &gt; 0, else 0, computed
    /// once and written (or added, per flag) into both da and db (distinct buffers).</summary>
    void AddReluBackward(DeviceBuffer<float> y, DeviceBuffer<float> dy, DeviceBuffer<float> da, DeviceBuffer<float> db, int count,
        bool accumulateA = false, bool accumulateB = false);

    /// <summary>y[i] = a[i] op b[(i / bInner) % bLength]: same shape when bLength = count, a row bias when
    /// bInner = 1, a per-channel bias of an NCHW tensor when bInner = H*W.</summary>
    void Binary(BinaryOp op, DeviceBuffer<float> a, DeviceBuffer<float> b, DeviceBuffer<float> y, int count, int bLength, int bInner = 1);

    /// <summary>y = alpha * x + beta * y (beta = 0 ignores the old y).</summary>
    void Axpby(float alpha, DeviceBuffer<float> x, float beta, DeviceBuffer<float> y, int count);

    // ---- reductions ---------------------------------------------------------------------------------------
    /// <summary>Reduces the middle axis of an [outer, axis, inner] tensor into y[outer, inner]. For Max, the
    /// optional <paramref name="argIndex"/> receives the first index of the maximum.</summary>
    void Reduce(ReduceOp op, DeviceBuffer<float> x, DeviceBuffer<float> y, int outer, int axis, int inner, DeviceBuffer<int>? argIndex = null);

    // ---- seeded initialisers (counter-based: identical values on every backend and thread count) -----------
    void InitUniform(DeviceBuffer<float> x, int count, ulong seed, float low, float high);
    void InitNormal(DeviceBuffer<float> x, int count, ulong seed, float mean, float std);

    // ---- fused optimiser updates (one pass per parameter tensor) -------------------------------------------
    void SgdStep(DeviceBuffer<float> parameter, DeviceBuffer<float> gradient, DeviceBuffer<float> velocity, int count, in SgdConfig config);
    void AdamWStep(DeviceBuffer<float> parameter, DeviceBuffer<float> gradient, DeviceBuffer<float> m, DeviceBuffer<float> v, int count, in AdamWConfig config, int step);

    // ---- row-wise softmax family and fused losses (rows x cols logits) --------------------------------------
    /// <summary>y = softmax(x / T) or log_softmax(x / T) along each row.</summary>
    void Softmax(DeviceBuffer<float> x, DeviceBuffer<float> y, int rows, int cols, float temperature, bool log);

    /// <summary>Backward of <see cref="Softmax"/> given its output y: dx (+)= (d/dx) with T folded in.</summary>
    void SoftmaxBackward(DeviceBuffer<float> y, DeviceBuffer<float> dy, DeviceBuffer<float> dx, int rows, int cols, float temperature, bool log, bool accumulate);

    /// <summary>Fused label-smoothing cross-entropy: loss[r] and, if grad is given, grad = gradScale * (softmax - y_ls).
    /// A row whose label equals <paramref name="ignoreLabel"/> (a padding token) gets loss 0 and gradient 0.</summary>
    void LabelSmoothingCrossEntropy(DeviceBuffer<float> logits, DeviceBuffer<int> labels, DeviceBuffer<float> loss, DeviceBuffer<float>? grad,
        int rows, int cols, float alpha, float gradScale, int? ignoreLabel = null);

    /// <summary>Fused KD loss per row: (1-beta) CE_ls(y, z_s) + beta T^2 KL(softmax(z_t/T) || softmax(z_s/T)),
    /// and the student-logit gradient times gradScale.</summary>
    void KdLoss(DeviceBuffer<float> student, DeviceBuffer<float> teacher, DeviceBuffer<int> labels, DeviceBuffer<float> loss, DeviceBuffer<float>? grad,
        int rows, int cols, in KdConfig config, float gradScale, int? ignoreLabel = null);

    /// <summary>entropy[r] = -sum p log p with p = softmax(z[r] / T).</summary>
    void Entropy(DeviceBuffer<float> logits, DeviceBuffer<float> entropy, int rows, int cols, float temperature);

    /// <summary>correct[r] = 1 when labels[r] is among the k largest logits of row r (ties count in favour of the
    /// lower index, as a stable sort would), else 0.</summary>
    void TopKCorrect(DeviceBuffer<float> logits, DeviceBuffer<int> labels, DeviceBuffer<int> correct, int rows, int cols, int k);

    /// <summary>matrix[label * classes + prediction] += 1 for each sample (per-class correct counts are the diagonal).</summary>
    void ConfusionMatrix(DeviceBuffer<int> predictions, DeviceBuffer<int> labels, DeviceBuffer<int> matrix, int count, int classes);

    // ---- convolution, normalisation, pooling, dropout (NCHW) ------------------------------------------------
    /// <summary>y = conv(x, weight) (cross-correlation, as in every framework); no bias. With channelStats (2 K floats),
    /// also writes each output channel's batch mean (first K) and biased variance (next K), formed while the output is
    /// written (float64 per image row, rows combined exactly): what <see cref="BatchNorm"/> in training needs.</summary>
    void Conv2d(in ConvSpec spec, DeviceBuffer<float> x, DeviceBuffer<float> weight, DeviceBuffer<float> y, DeviceBuffer<float>? channelStats = null);

    /// <summary>dx (+)= gradient of the convolution with respect to its input.</summary>
    void Conv2dBackwardInput(in ConvSpec spec, DeviceBuffer<float> dy, DeviceBuffer<float> weight, DeviceBuffer<float> dx, bool accumulate);

    /// <summary>dw (+)= gradient of the convolution with respect to its weight, summed over the batch.</summary>
    void Conv2dBackwardWeight(in ConvSpec spec, DeviceBuffer<float> x, DeviceBuffer<float> dy, DeviceBuffer<float> dw, bool accumulate);

    /// <summary>Batch normalisation, followed by spec.Activation (ReLU or ReLU6) in the same pass. Training: normalises with the batch mean and biased variance, writes them to
    /// saveMean and saveInvStd (1 / sqrt(var + eps)) for backward, and updates the running statistics with
    /// momentum (the running variance uses the unbiased estimate, as PyTorch does). Evaluation: normalises with
    /// the running statistics and writes those to saveMean and saveInvStd.</summary>
    /// In training, channelStats (mean then biased variance, 2 C floats, as <see cref="Conv2d"/> writes them) replaces
    /// the two statistics passes over x.
    void BatchNorm(in BatchNormSpec spec, DeviceBuffer<float> x, DeviceBuffer<float> gamma, DeviceBuffer<float> beta, DeviceBuffer<float> y,
        DeviceBuffer<float> saveMean, DeviceBuffer<float> saveInvStd, DeviceBuffer<float> runningMean, DeviceBuffer<float> runningVar, bool training,
        DeviceBuffer<float>? channelStats = null);

    /// <summary>Backward of <see cref="BatchNorm"/>: dx (+)= dL/dx (through the batch statistics when training),
    /// dGamma = sum(dy * xhat) and dBeta = sum(dy) per channel (overwritten). With a fused activation, dy is first
    /// masked where the forward clamped: the pre-activation x a + b is recomputed from x, the saved statistics, gamma
    /// and beta (then required) exactly as the forward formed it, so the output y is never read.</summary>
    void BatchNormBackward(in BatchNormSpec spec, DeviceBuffer<float> x, DeviceBuffer<float> dy, DeviceBuffer<float> gamma,
        DeviceBuffer<float> saveMean, DeviceBuffer<float> saveInvStd, DeviceBuffer<float> dx, DeviceBuffer<float> dGamma, DeviceBuffer<float> dBeta,
        bool training, bool accumulate, DeviceBuffer<float>? beta = null);

    /// <summary>y = relu(batchnorm(x) + residual), the end of a residual block, in one pass over memory (a separate
    /// batch norm and <see cref="BinaryOp.AddRelu"/> write and re-read the normalised tensor). spec.Activation must
    /// be None; everything else is as in <see cref="BatchNorm"/>, and the result is the same float operations.</summary>
    void BatchNormAddRelu(in BatchNormSpec spec, DeviceBuffer<float> x, DeviceBuffer<float> gamma, DeviceBuffer<float> beta, DeviceBuffer<float> residual,
        DeviceBuffer<float> y, DeviceBuffer<float> saveMean, DeviceBuffer<float> saveInvStd, DeviceBuffer<float> runningMean, DeviceBuffer<float> runningVar,
        bool training, DeviceBuffer<float>? channelStats = null);

    /// <summary>Backward of <see cref="BatchNormAddRelu"/>: g = dy where y &gt; 0, else 0; dResidual (+)= g, and dx (+)=
    /// the batch-norm backward of g, with dGamma and dBeta (overwritten) as in <see cref="BatchNormBackward"/>. The
    /// masked gradient is never a separate tensor: a fresh dResidual holds it for the second pass.</summary>
    void BatchNormAddReluBackward(in BatchNormSpec spec, DeviceBuffer<float> x, DeviceBuffer<float> y, DeviceBuffer<float> dy, DeviceBuffer<float> gamma,
        DeviceBuffer<float> saveMean, DeviceBuffer<float> saveInvStd, DeviceBuffer<float> dx, DeviceBuffer<float> dResidual, DeviceBuffer<float> dGamma,
        DeviceBuffer<float> dBeta, bool training, bool accumulateDx, bool accumulateResidual);

    /// <summary>Max or average pooling; for max pooling, argMax (when given) receives the index h * W + w of the
    /// chosen input in its plane (first maximum wins).</summary>
    void Pool2d(in PoolSpec spec, DeviceBuffer<float> x, DeviceBuffer<float> y, DeviceBuffer<int>? argMax);

    /// <summary>dx (+)= pooling gradient; max pooling needs the argMax of the forward pass.</summary>
    void Pool2dBackward(in PoolSpec spec, DeviceBuffer<float> dy, DeviceBuffer<int>? argMax, DeviceBuffer<float> dx, bool accumulate);

    /// <summary>Inverted dropout: y[i] = x[i] / (1 - p) where Uniform01(seed, i) >= p, else 0. The mask is a pure
    /// function of (seed, i), so backward is the same call on dy and no mask is stored.</summary>
    void Dropout(DeviceBuffer<float> x, DeviceBuffer<float> y, int count, float p, ulong seed);

    // ---- sequence models (embeddings, layer norm, attention) ---------------------------------------------------
    /// <summary>y[t, :] = table[ids[t], :] for count tokens; table is [vocab, dim].</summary>
    void Embedding(DeviceBuffer<float> table, DeviceBuffer<int> ids, DeviceBuffer<float> y, int count, int vocab, int dim);

    /// <summary>dTable[v, :] (+)= sum of dy[t, :] over the tokens t with ids[t] = v, added in token order (deterministic);
    /// the row of <paramref name="paddingIndex"/> (when >= 0) gets no gradient.</summary>
    void EmbeddingBackward(DeviceBuffer<int> ids, DeviceBuffer<float> dy, DeviceBuffer<float> dTable, int count, int vocab, int dim, int paddingIndex, bool accumulate);

    /// <summary>Layer norm of each row: y = (s - mean) / sqrt(var + eps) * gamma + beta with the biased variance, where
    /// s = x, or s = x + residual (written to <paramref name="sum"/>) when a residual is given. Saves each row's mean and
    /// 1 / sqrt(var + eps) for backward.</summary>
    void LayerNorm(in LayerNormSpec spec, DeviceBuffer<float> x, DeviceBuffer<float>? residual, DeviceBuffer<float>? sum, DeviceBuffer<float> gamma,
        DeviceBuffer<float> beta, DeviceBuffer<float> y, DeviceBuffer<float> saveMean, DeviceBuffer<float> saveInvStd);

    /// <summary>Backward of <see cref="LayerNorm"/> given its normalised input s (x, or the written sum): dx (+)= dL/ds,
    /// dGamma = sum over rows of dy * s_hat, dBeta = sum of dy (both overwritten, summed in row order).</summary>
    void LayerNormBackward(in LayerNormSpec spec, DeviceBuffer<float> x, DeviceBuffer<float> dy, DeviceBuffer<float> gamma, DeviceBuffer<float> saveMean,
        DeviceBuffer<float> saveInvStd, DeviceBuffer<float> dx, DeviceBuffer<float> dGamma, DeviceBuffer<float> dBeta, bool accumulate);

    /// <summary>Fused attention O = dropout(softmax(Q K^T / sqrt(d) + mask)) V per (batch, head) on the strided views of
    /// <paramref name="spec"/>. keyMask [Batch, KeyLength] (optional; nonzero = a real key, 0 = padding) and the causal
    /// flag mask keys out; a query that sees no key gets O = 0. lse [Batch, Heads, QueryLength] receives each row's
    /// log-sum-exp of the scaled scores (+infinity for a row with no key) for backward.</summary>
    void Attention(in AttentionSpec spec, DeviceBuffer<float> q, DeviceBuffer<float> k, DeviceBuffer<float> v, DeviceBuffer<int>? keyMask,
        DeviceBuffer<float> o, DeviceBuffer<float> lse);

    /// <summary>Backward of <see cref="Attention"/>: recomputes the weights from lse and writes dQ, dK, dV (overwritten, on
    /// the same strided views as Q, K, V; dO on O's view). dS = P * (dP - rowsum(dO * O)).</summary>
    void AttentionBackward(in AttentionSpec spec, DeviceBuffer<float> q, DeviceBuffer<float> k, DeviceBuffer<float> v, DeviceBuffer<int>? keyMask,
        DeviceBuffer<float> o, DeviceBuffer<float> lse, DeviceBuffer<float> dO, DeviceBuffer<float> dq, DeviceBuffer<float> dk, DeviceBuffer<float> dv);

    // ---- analysis (feature geometry) ----------------------------------------------------------------------
    /// <summary>centroids[c, :] = mean of features[i, :] over the rows i with labels[i] = c (zeros for a class with
    /// no rows); features is [count, dim], centroids [classes, dim].</summary>
    void ClassCentroids(DeviceBuffer<float> features, DeviceBuffer<int> labels, DeviceBuffer<float> centroids, int count, int dim, int classes);

    /// <summary>distances[i, j] = Euclidean distance between rows a[i, :] and b[j, :]; a is [m, dim], b [n, dim].</summary>
    void PairwiseDistances(DeviceBuffer<float> a, DeviceBuffer<float> b, DeviceBuffer<float> distances, int m, int n, int dim);

    /// <summary>Thin Householder QR of a tall matrix a [m, n], m >= n: q [m, n] with orthonormal columns and r [n, n]
    /// upper triangular with a non-negative diagonal (which makes the factorisation unique), a = q r.</summary>
    void HouseholderQr(DeviceBuffer<float> a, DeviceBuffer<float> q, DeviceBuffer<float> r, int m, int n);

    /// <summary>Centring and covariance of x [n, d]: mean[j] = column mean, cov [d, d] = (x - mean)^T (x - mean) / (n - 1).</summary>
    void Covariance(DeviceBuffer<float> x, DeviceBuffer<float> mean, DeviceBuffer<float> cov, int n, int d);

    /// <summary>Eigen-decomposition of a symmetric a [d, d] in float64 (CPU: Householder tridiagonalisation and
    /// implicit QL; ILGPU: parallel cyclic Jacobi rotations):
    /// eigenvalues [d] in descending order, eigenvectors [d, d] with row k the unit eigenvector of eigenvalue k,
    /// signed so that its largest-magnitude component is positive. a is left unchanged.</summary>
    void SymmetricEigen(DeviceBuffer<float> a, DeviceBuffer<float> eigenvalues, DeviceBuffer<float> eigenvectors, int d);
}

/// <summary>KD hyper-parameters (see GUIDE section 3): temperature T > 0, mixing beta in [0, 1], label smoothing
/// alpha in [0, 1) on the hard term.</summary>
public readonly record struct KdConfig(float Temperature, float Beta = 1f, float Alpha = 0f)
{
    public void Validate()
    {
        Validation.Temperature(Temperature);
        if (HyperParameters.Beta(Beta) is { } problem) throw new ArgumentOutOfRangeException("beta", Beta, problem);
        Validation.Alpha(Alpha);
    }
}
