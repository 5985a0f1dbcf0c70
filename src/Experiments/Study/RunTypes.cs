using System.Text.Json;
using System.Text.Json.Serialization;
using LsKd.Kernels;

namespace LsKd.Experiments.Study;

/// <summary>What a run is: a teacher, a student distilled from a teacher, a baseline student on labels only, or a
/// matched-entropy student of the analysis. Written to JSON and CSV in kebab case ("teacher", "matched").</summary>
[JsonConverter(typeof(KebabEnumConverter<RunKind>))]
public enum RunKind { Teacher, Student, Baseline, Matched }

/// <summary>How a run ended: finished, diverged (its loss became NaN or infinite), or not trainable because its
/// teacher diverged ("teacher-diverged" in files).</summary>
[JsonConverter(typeof(KebabEnumConverter<RunStatus>))]
public enum RunStatus { Finished, Diverged, TeacherDiverged }

public sealed class KebabEnumConverter<T>() : JsonStringEnumConverter<T>(JsonNamingPolicy.KebabCaseLower, allowIntegerValues: false) where T : struct, Enum;

public static class RunText
{
    /// <summary>The name a kind or status has in files and tables.</summary>
    public static string Text<T>(this T value) where T : struct, Enum => JsonNamingPolicy.KebabCaseLower.ConvertName(value.ToString());
}

/// <summary>The loss a run trains with, as a value: label-smoothing cross-entropy with alpha, or the KD loss of a
/// KdConfig (temperature, beta, alpha of the hard term). Both are checked where they are made, by the same checks
/// the kernels run.</summary>
public abstract record RunLoss
{
    RunLoss() { }

    /// <summary>Label smoothing alpha of the hard term (0 for a KD loss without smoothing).</summary>
    public abstract float Alpha { get; }

    public sealed record LabelSmoothing : RunLoss
    {
        public LabelSmoothing(float alpha) { Validation.Alpha(alpha); SmoothingAlpha = alpha; }
        public float SmoothingAlpha { get; }
        public override float Alpha => SmoothingAlpha;
    }

    public sealed record Distillation : RunLoss
    {
        public Distillation(KdConfig kd) { kd.Validate(); Kd = kd; }
        public KdConfig Kd { get; }
        public override float Alpha => Kd.Alpha;
    }
}
