using System.Text.Json;
using LsKd.Autograd;
using LsKd.Kernels;

namespace LsKd.Nets;

/// <summary>CIFAR-style ResNet (He et al. 2016, section 4.2) for small images: a 3x3 stem, three stages of basic
/// blocks at widths w, 2w, 4w (stride 2 between stages), global average pooling and a linear classifier.
/// Depth = 6n + 2: ResNet-8 (n = 1), -14, -20, -32, -56.</summary>
public sealed record ResNetConfig(int Depth = 20, int Width = 16, int InChannels = 1, int Classes = 10)
{
    public int BlocksPerStage => (Depth - 2) / 6;

    public void Validate()
    {
        if (Depth < 8 || (Depth - 2) % 6 != 0) throw new ArgumentException($"resnet depth must be 6n + 2 with n >= 1 (8, 14, 20, 32, 56, ...), got {Depth}");
        if (Width < 1) throw new ArgumentException($"resnet width must be >= 1, got {Width}");
        if (InChannels < 1 || Classes < 2) throw new ArgumentException($"resnet needs >= 1 input channel and >= 2 classes, got {InChannels} and {Classes}");
    }
}

/// <summary>Two 3x3 convolutions with batch norm and ReLU, plus the identity (or a 1x1 projection when the shape
/// changes).</summary>
public sealed class BasicBlock : Module
{
    readonly Conv2d _conv1, _conv2;
    readonly BatchNorm2d _bn1, _bn2;
    readonly Conv2d? _projection;
    readonly BatchNorm2d? _projectionBn;

    public BasicBlock(IBackend backend, string name, int inChannels, int outChannels, int stride, ulong seed)
    {
        _conv1 = Child("conv1", new Conv2d(backend, name + ".conv1", inChannels, outChannels, 3, stride, 1, seed));
        _bn1 = Child("bn1", new BatchNorm2d(backend, name + ".bn1", outChannels));
        _conv2 = Child("conv2", new Conv2d(backend, name + ".conv2", outChannels, outChannels, 3, 1, 1, seed + 1));
        _bn2 = Child("bn2", new BatchNorm2d(backend, name + ".bn2", outChannels));
        if (stride != 1 || inChannels != outChannels)
        {
            _projection = Child("shortcut", new Conv2d(backend, name + ".shortcut", inChannels, outChannels, 1, stride, 0, seed + 2));
            _projectionBn = Child("shortcut_bn", new BatchNorm2d(backend, name + ".shortcut_bn", outChannels));
        }
    }

    public override Tensor Forward(Tensor x)
    {
        var h = _conv2.Forward(_bn1.Forward(_conv1.Forward(x), NormActivation.Relu));
        var shortcut = _projection == null ? x : _projectionBn!.Forward(_projection.Forward(x));
        return _bn2.ForwardAddRelu(h, shortcut);
    }
}

public sealed class ResNet : Classifier
{
    readonly Conv2d _stem;
    readonly BatchNorm2d _stemBn;
    readonly BasicBlock[] _blocks;
    readonly Linear _head;

    public ResNet(IBackend backend, ResNetConfig config, ulong seed)
    {
        config.Validate();
        Config = config;
        ModelName = $"resnet{config.Depth}";
        ConfigJson = JsonSerializer.Serialize(config);
        _stem = Child("stem", new Conv2d(backend, "stem", config.InChannels, config.Width, 3, 1, 1, seed));
        _stemBn = Child("stem_bn", new BatchNorm2d(backend, "stem_bn", config.Width));
        var blocks = new List<BasicBlock>();
        int channels = config.Width;
        for (int stage = 0; stage < 3; stage++)
        {
            int width = config.Width << stage;
            for (int b = 0; b < config.BlocksPerStage; b++)
            {
                string name = $"stage{stage + 1}.{b}";
                int stride = stage > 0 && b == 0 ? 2 : 1;
                blocks.Add(Child(name, new BasicBlock(backend, name, channels, width, stride, seed + (ulong)(100 * (stage + 1) + 10 * b))));
                channels = width;
            }
        }
        _blocks = [.. blocks];
        _head = Child("fc", new Linear(backend, channels, config.Classes, seed + 999));
    }

    public ResNetConfig Config { get; }
    public override Linear Head => _head;

    public override Tensor Features(Tensor x)
    {
        var h = _stemBn.Forward(_stem.Forward(x), NormActivation.Relu);
        foreach (var block in _blocks) h = block.Forward(h);
        return Ops.GlobalAvgPool(h);
    }
}
