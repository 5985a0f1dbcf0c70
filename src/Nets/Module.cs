using LsKd.Autograd;
using LsKd.Kernels;

namespace LsKd.Nets;

/// <summary>A layer or model: named parameters, train/eval mode.</summary>
public abstract class Module
{
    readonly List<(string Name, Tensor Tensor)> _parameters = [];
    readonly List<(string Name, Module Child)> _children = [];
    readonly List<(string Name, Tensor Tensor)> _buffers = [];

    public bool Training { get; private set; } = true;

    /// <summary>Model name as in a registry (resnet20, transformer, ...) and its configuration, for checkpoints.</summary>
    public string ModelName { get; protected init; } = "";
    public string ConfigJson { get; protected init; } = "{}";

    protected Tensor Parameter(string name, Tensor t) { _parameters.Add((name, t)); return t; }
    protected T Child<T>(string name, T module) where T : Module { _children.Add((name, module)); return module; }

    public IEnumerable<(string Name, Tensor Tensor)> NamedParameters(string prefix = "")
    {
        foreach (var (n, t) in _parameters) yield return (prefix + n, t);
        foreach (var (n, c) in _children)
            foreach (var p in c.NamedParameters(prefix + n + ".")) yield return p;
    }

    /// <summary>Non-trainable state saved in checkpoints (batch-norm running statistics).</summary>
    protected Tensor Buffer(string name, Tensor t) { _buffers.Add((name, t)); return t; }

    public IEnumerable<(string Name, Tensor Tensor)> NamedBuffers(string prefix = "")
    {
        foreach (var (n, t) in _buffers) yield return (prefix + n, t);
        foreach (var (n, c) in _children)
            foreach (var b in c.NamedBuffers(prefix + n + ".")) yield return b;
    }

    /// <summary>Parameters then buffers: everything a checkpoint holds.</summary>
    public IEnumerable<(string Name, Tensor Tensor)> StateDict() => NamedParameters().Concat(NamedBuffers());

    public IReadOnlyList<Tensor> Parameters() => NamedParameters().Select(p => p.Tensor).ToList();
    public long ParameterCount => NamedParameters().Sum(p => (long)p.Tensor.Size);

    public void Train(bool on = true)
    {
        Training = on;
        foreach (var (_, c) in _children) c.Train(on);
    }

    public void Eval() => Train(false);

    public abstract Tensor Forward(Tensor x);
}

/// <summary>y = x W^T + b with W [out, in] (PyTorch layout), Kaiming-uniform initialised from a seed.</summary>
public sealed class Linear : Module
{
    public Linear(IBackend backend, int inFeatures, int outFeatures, ulong seed, bool bias = true)
    {
        InFeatures = inFeatures; OutFeatures = outFeatures;
        Weight = Parameter("weight", Tensor.Create(backend, [outFeatures, inFeatures], requiresGrad: true, name: "weight"));
        Init.KaimingUniform(Weight, seed, inFeatures);
        if (bias)
        {
            Bias = Parameter("bias", Tensor.Create(backend, [outFeatures], requiresGrad: true, name: "bias"));
            Init.KaimingUniform(Bias, seed ^ 0xB1A5, inFeatures);
        }
    }

    public int InFeatures { get; }
    public int OutFeatures { get; }
    public Tensor Weight { get; }
    public Tensor? Bias { get; }

    public override Tensor Forward(Tensor x)
    {
        if (x.Shape[^1] != InFeatures)
            throw new ArgumentException($"linear layer expects {InFeatures} input features, got input of shape {Tensor.ShapeString(x.Shape)}");
        var y = Ops.MatMul(x.Rank == 2 ? x : x.Reshape(x.Size / InFeatures, InFeatures), Weight, transB: true);
        return Bias == null ? y : Ops.AddBias(y, Bias);
    }
}

/// <summary>A multi-layer perceptron with ReLU (or GELU) between layers; exposes its penultimate features.</summary>
public sealed class Mlp : Classifier
{
    readonly Linear[] _layers;
    readonly bool _gelu;

    public Mlp(IBackend backend, int[] sizes, ulong seed, bool gelu = false)
    {
        if (sizes.Length < 2) throw new ArgumentException("an MLP needs at least input and output sizes");
        _gelu = gelu;
        ModelName = "mlp";
        ConfigJson = System.Text.Json.JsonSerializer.Serialize(new { sizes, gelu });
        _layers = new Linear[sizes.Length - 1];
        for (int i = 0; i < _layers.Length; i++)
            _layers[i] = Child($"fc{i}", new Linear(backend, sizes[i], sizes[i + 1], seed + (ulong)i * 7919));
    }

    public override Linear Head => _layers[^1];

    public override Tensor Features(Tensor x)
    {
        if (x.Rank > 2) x = x.Reshape(x.Shape[0], x.Size / x.Shape[0]);   // images [N, C, H, W] -> [N, C*H*W]
        for (int i = 0; i < _layers.Length - 1; i++)
        {
            x = _layers[i].Forward(x);
            x = _gelu ? Ops.Gelu(x) : Ops.Relu(x);
        }
        return x;
    }

}
