using System.Text.Json;
using LsKd.Autograd;
using LsKd.Kernels;

namespace LsKd.Nets;

/// <summary>MobileNetV2 (Sandler et al. 2018) adapted to 28x28 inputs: a stride-1 stem, inverted residual blocks
/// (1x1 expansion, 3x3 depthwise, 1x1 linear projection; ReLU6) with two stride-2 stages (28 to 14 to 7), a 1x1
/// head convolution, global average pooling, dropout and a linear classifier. Channels scale with the width
/// multiplier, rounded to multiples of 8 as in the paper's reference code.</summary>
public sealed record MobileNetV2Config(float WidthMultiplier = 1f, int InChannels = 1, int Classes = 10, float Dropout = 0.2f, int LastChannels = 256)
{
    /// <summary>(expansion t, channels c, repeats n, first stride s) per stage.</summary>
    public static readonly (int T, int C, int N, int S)[] Stages = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 2, 1), (6, 96, 1, 1)];

    public void Validate()
    {
        if (!(WidthMultiplier > 0f && WidthMultiplier <= 4f)) throw new ArgumentException($"mobilenetv2 width multiplier must be in (0, 4], got {WidthMultiplier}");
        if (!(Dropout >= 0f && Dropout < 1f)) throw new ArgumentException($"mobilenetv2 dropout must be in [0, 1), got {Dropout}");
        if (InChannels < 1 || Classes < 2) throw new ArgumentException($"mobilenetv2 needs >= 1 input channel and >= 2 classes, got {InChannels} and {Classes}");
    }

    public static int Round8(float channels) => Math.Max(8, (int)(channels + 4) / 8 * 8);
}

public sealed class InvertedResidual : Module
{
    readonly Conv2d? _expand;
    readonly BatchNorm2d? _expandBn;
    readonly Conv2d _depthwise, _project;
    readonly BatchNorm2d _depthwiseBn, _projectBn;
    readonly bool _residual;

    public InvertedResidual(IBackend backend, string name, int inChannels, int outChannels, int stride, int expansion, ulong seed)
    {
        int hidden = inChannels * expansion;
        if (expansion != 1)
        {
            _expand = Child("expand", new Conv2d(backend, name + ".expand", inChannels, hidden, 1, 1, 0, seed));
            _expandBn = Child("expand_bn", new BatchNorm2d(backend, name + ".expand_bn", hidden));
        }
        _depthwise = Child("depthwise", new Conv2d(backend, name + ".depthwise", hidden, hidden, 3, stride, 1, seed + 1, groups: hidden));
        _depthwiseBn = Child("depthwise_bn", new BatchNorm2d(backend, name + ".depthwise_bn", hidden));
        _project = Child("project", new Conv2d(backend, name + ".project", hidden, outChannels, 1, 1, 0, seed + 2));
        _projectBn = Child("project_bn", new BatchNorm2d(backend, name + ".project_bn", outChannels));
        _residual = stride == 1 && inChannels == outChannels;
    }

    public override Tensor Forward(Tensor x)
    {
        var h = x;
        if (_expand != null) h = _expandBn!.Forward(_expand.Forward(h), NormActivation.Relu6);
        h = _depthwiseBn.Forward(_depthwise.Forward(h), NormActivation.Relu6);
        h = _projectBn.Forward(_project.Forward(h));
        return _residual ? Ops.Add(h, x) : h;
    }
}

public sealed class MobileNetV2 : Classifier
{
    readonly Conv2d _stem, _last;
    readonly BatchNorm2d _stemBn, _lastBn;
    readonly InvertedResidual[] _blocks;
    readonly Dropout _dropout;
    readonly Linear _head;

    public MobileNetV2(IBackend backend, MobileNetV2Config config, ulong seed)
    {
        config.Validate();
        Config = config;
        ModelName = "mobilenetv2";
        ConfigJson = JsonSerializer.Serialize(config);
        float w = config.WidthMultiplier;
        int channels = MobileNetV2Config.Round8(32 * w);
        _stem = Child("stem", new Conv2d(backend, "stem", config.InChannels, channels, 3, 1, 1, seed));
        _stemBn = Child("stem_bn", new BatchNorm2d(backend, "stem_bn", channels));
        var blocks = new List<InvertedResidual>();
        int index = 0;
        foreach (var (t, c, n, s) in MobileNetV2Config.Stages)
        {
            int outChannels = MobileNetV2Config.Round8(c * w);
            for (int i = 0; i < n; i++, index++)
            {
                string name = $"blocks.{index}";
                blocks.Add(Child(name, new InvertedResidual(backend, name, channels, outChannels, i == 0 ? s : 1, t, seed + 10 * (ulong)(index + 1))));
                channels = outChannels;
            }
        }
        _blocks = [.. blocks];
        int last = MobileNetV2Config.Round8(config.LastChannels * Math.Max(1f, w));
        _last = Child("last", new Conv2d(backend, "last", channels, last, 1, 1, 0, seed + 777));
        _lastBn = Child("last_bn", new BatchNorm2d(backend, "last_bn", last));
        _dropout = Child("dropout", new Dropout(config.Dropout, seed + 555));
        _head = Child("fc", new Linear(backend, last, config.Classes, seed + 999));
    }

    public MobileNetV2Config Config { get; }
    public override Linear Head => _head;

    public override Tensor Features(Tensor x)
    {
        var h = _stemBn.Forward(_stem.Forward(x), NormActivation.Relu6);
        foreach (var block in _blocks) h = block.Forward(h);
        h = _lastBn.Forward(_last.Forward(h), NormActivation.Relu6);
        return _dropout.Forward(Ops.GlobalAvgPool(h));
    }
}
