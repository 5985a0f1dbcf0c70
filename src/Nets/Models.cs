using LsKd.Kernels;

namespace LsKd.Nets;

/// <summary>The model registry: every architecture the study and the CLI can name.</summary>
public static class Models
{
    public static IReadOnlyList<string> Names { get; } = ["resnet8", "resnet14", "resnet20", "resnet32", "resnet56", "mobilenetv2", "mlp"];

    /// <summary>Creates a classifier for images [channels, 28, 28] (any size for the convolutional models).
    /// <paramref name="width"/> is the ResNet base width multiplier (x16 channels) or the MobileNetV2 width multiplier.</summary>
    public static Classifier Create(string name, IBackend backend, ulong seed, float width = 1f, int classes = 10, int inChannels = 1, int imageSize = 28)
    {
        var model = Build(name, backend, seed, width, classes, inChannels, imageSize);
        model.InputChannels = inChannels;
        model.ImageSize = imageSize;
        return model;
    }

    static Classifier Build(string name, IBackend backend, ulong seed, float width, int classes, int inChannels, int imageSize)
    {
        if (!(width > 0f)) throw new ArgumentException($"model width multiplier must be > 0, got {width}");
        string key = name.Trim().ToLowerInvariant();
        if (key.StartsWith("resnet", StringComparison.Ordinal) && int.TryParse(key.AsSpan(6), out int depth) && Names.Contains(key))
            return new ResNet(backend, new ResNetConfig(depth, Math.Max(1, (int)MathF.Round(16 * width)), inChannels, classes), seed);
        return key switch
        {
            "mobilenetv2" => new MobileNetV2(backend, new MobileNetV2Config(width, inChannels, classes), seed),
            "mlp" => new Mlp(backend, [inChannels * imageSize * imageSize, Math.Max(8, (int)(512 * width)), Math.Max(8, (int)(256 * width)), classes], seed),
            _ => throw new ArgumentException($"unknown model '{name}'; valid models: {string.Join(", ", Names)}"),
        };
    }
}
