using LsKd.Autograd;
using LsKd.Kernels;

namespace LsKd.Nets;

/// <summary>A classifier whose penultimate features (the input of its final linear layer) and final layer are
/// exposed, as the analysis needs them.</summary>
public abstract class Classifier : Module
{
    /// <summary>The input the model was built for: channels and (square) image size (set by <see cref="Models.Create"/>).</summary>
    public int InputChannels { get; internal set; } = 1;
    public int ImageSize { get; internal set; } = 28;

    public abstract Tensor Features(Tensor x);
    public abstract Linear Head { get; }
    public override Tensor Forward(Tensor x) => Head.Forward(Features(x));

    /// <summary>Forward FLOPs for one input of the given shape (without the batch axis), counted by running the model
    /// once in evaluation mode.</summary>
    public long ForwardFlops(IBackend backend, int[] inputShape)
    {
        bool wasTraining = Training;
        Eval();
        using var input = new DisposableTensor(Tensor.Create(backend, [1, .. inputShape]));
        Init.Zeros(input.Tensor);
        long flops;
        using (Tape.NoGrad())
        using (var counter = FlopCounter.Start())
        {
            Forward(input.Tensor);
            flops = counter.Flops;
        }
        Tape.Current.Reset();
        Train(wasTraining);
        return flops;
    }

    sealed class DisposableTensor(Tensor t) : IDisposable
    {
        public Tensor Tensor { get; } = t;
        public void Dispose() => Tensor.Buffer.Dispose();
    }
}

/// <summary>2-D convolution without bias (a batch norm follows it in every model here), weight
/// [out, in / groups, k, k], Kaiming-normal initialised with fan-out as torchvision's ResNets do.</summary>
public sealed class Conv2d : Module
{
    public Conv2d(IBackend backend, string name, int inChannels, int outChannels, int kernel, int stride, int pad, ulong seed, int groups = 1)
    {
        if (groups <= 0 || inChannels % groups != 0 || outChannels % groups != 0)
            throw new ArgumentException($"{name}: groups {groups} must divide input channels {inChannels} and output channels {outChannels}");
        Name = name; Stride = stride; Pad = pad; Groups = groups; InChannels = inChannels; OutChannels = outChannels;
        Weight = Parameter("weight", Tensor.Create(backend, [outChannels, inChannels / groups, kernel, kernel], requiresGrad: true, name: name + ".weight"));
        Init.KaimingNormal(Weight, seed, outChannels * kernel * kernel / groups);
    }

    public string Name { get; }
    public int Stride { get; }
    public int Pad { get; }
    public int Groups { get; }
    public int InChannels { get; }
    public int OutChannels { get; }
    public Tensor Weight { get; }

    /// <summary>In training the output carries its batch statistics (formed as it is written) for a following batch norm.</summary>
    public override Tensor Forward(Tensor x) => Ops.Conv2d(x, Weight, Stride, Pad, Groups, Name, batchStats: Training);
}

/// <summary>Batch normalisation with learnable scale and shift and running statistics (PyTorch defaults:
/// eps 1e-5, momentum 0.1, gamma 1, beta 0, running mean 0, running variance 1).</summary>
public sealed class BatchNorm2d : Module
{
    public BatchNorm2d(IBackend backend, string name, int channels, float epsilon = 1e-5f, float momentum = 0.1f)
    {
        Name = name; Epsilon = epsilon; Momentum = momentum;
        Gamma = Parameter("weight", Tensor.Create(backend, [channels], requiresGrad: true, name: name + ".weight"));
        Beta = Parameter("bias", Tensor.Create(backend, [channels], requiresGrad: true, name: name + ".bias"));
        RunningMean = Buffer("running_mean", Tensor.Create(backend, [channels], name: name + ".running_mean"));
        RunningVar = Buffer("running_var", Tensor.Create(backend, [channels], name: name + ".running_var"));
        backend.Fill(Gamma.Buffer, 0, channels, 1f);
        backend.Fill(Beta.Buffer, 0, channels, 0f);
        backend.Fill(RunningMean.Buffer, 0, channels, 0f);
        backend.Fill(RunningVar.Buffer, 0, channels, 1f);
    }

    public string Name { get; }
    public float Epsilon { get; }
    public float Momentum { get; }
    public Tensor Gamma { get; }
    public Tensor Beta { get; }
    public Tensor RunningMean { get; }
    public Tensor RunningVar { get; }

    public override Tensor Forward(Tensor x) => Ops.BatchNorm(x, Gamma, Beta, RunningMean, RunningVar, Training, Epsilon, Momentum, Name);

    /// <summary>relu(batchnorm(x) + residual) in one pass: the end of a residual block.</summary>
    public Tensor ForwardAddRelu(Tensor x, Tensor residual) =>
        Ops.BatchNormAddRelu(x, residual, Gamma, Beta, RunningMean, RunningVar, Training, Epsilon, Momentum, Name);

    /// <summary>Batch norm followed by an activation in the same pass (ReLU or ReLU6 after a convolution).</summary>
    public Tensor Forward(Tensor x, NormActivation activation) =>
        Ops.BatchNorm(x, Gamma, Beta, RunningMean, RunningVar, Training, Epsilon, Momentum, Name, activation);
}

/// <summary>Inverted dropout in training mode, identity in evaluation. Each training call uses a fresh mask
/// from (seed, call number), so runs are reproducible.</summary>
public sealed class Dropout(float p, ulong seed) : Module
{
    ulong _calls;
    public float P { get; } = p is >= 0f and < 1f ? p : throw new ArgumentOutOfRangeException(nameof(p), p, $"dropout probability must be in [0, 1), got {p}");

    public override Tensor Forward(Tensor x) => Training ? Ops.Dropout(x, P, seed * 0x9E3779B97F4A7C15UL + _calls++) : x;
}
