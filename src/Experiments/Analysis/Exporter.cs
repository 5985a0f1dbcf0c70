using LsKd.Experiments.Data;
using LsKd.Kernels;
using LsKd.Nets;

namespace LsKd.Experiments.Analysis;

/// <summary>Exports what the analysis of a classifier needs as .npy files: penultimate features [N, D], logits
/// [N, K] and labels [N] (int32) of an image set, and the final layer's weight [K, D] and bias [K].</summary>
public static class Exporter
{
    public static void ExportHead(Classifier model, string dir)
    {
        Npy.Write(Path.Combine(dir, "head_weight.npy"), model.Head.Weight.ToArray(), model.Head.Weight.Shape);
        var bias = model.Head.Bias?.ToArray() ?? new float[model.Head.OutFeatures];
        Npy.Write(Path.Combine(dir, "head_bias.npy"), bias, [bias.Length]);
    }

    /// <summary>Runs the model in evaluation mode over the set and writes &lt;prefix&gt;_features/_logits/_labels.npy.</summary>
    public static void ExportSet(IBackend backend, Classifier model, ImageSet set, string dir, string prefix, int batch = 500) =>
        SetOutputs.Compute(backend, model, set, batch).Export(dir, prefix);
}
