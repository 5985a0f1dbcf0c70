namespace LsKd.Kernels;

/// <summary>The one rule and the one message for each hyper-parameter. The kernels' argument checks, the study's
/// JSON configuration and the CLI flags all ask here: null means valid, otherwise the message says what is wrong
/// (callers add where the value came from).</summary>
public static class HyperParameters
{
    /// <summary>Widths above this are refused: a ResNet at width 16 already has hundreds of millions of weights.</summary>
    public const float MaxWidth = 16f;

    public static string? Temperature(float t) => float.IsFinite(t) && t > 0f ? null : $"temperature {N(t)} is not a finite positive number";
    public static string? Alpha(float a) => a >= 0f && a < 1f ? null : $"label smoothing alpha {N(a)} is outside [0, 1)";
    public static string? Beta(float b) => b >= 0f && b <= 1f ? null : $"beta {N(b)} is outside [0, 1]";
    public static string? LearningRate(float lr) => float.IsFinite(lr) && lr >= 0f ? null : $"learning rate {N(lr)} is not a finite number >= 0";
    public static string? Momentum(float m) => m >= 0f && m < 1f ? null : $"momentum {N(m)} is outside [0, 1)";
    public static string? WeightDecay(float wd) => float.IsFinite(wd) && wd >= 0f ? null : $"weight decay {N(wd)} is not a finite number >= 0";
    public static string? Width(float w) => w > 0f && w <= MaxWidth ? null : $"width {N(w)} is outside (0, {N(MaxWidth)}]";

    static string N(float v) => v.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
