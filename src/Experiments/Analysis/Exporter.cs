using LsKd.Autograd;
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
    public static void ExportSet(IBackend backend, Classifier model, ImageSet set, string dir, string prefix, int batch = 500)
    {
        model.Eval();
        int d = model.Head.InFeatures, k = model.Head.OutFeatures;
        var features = new float[(long)set.Count * d];
        var logits = new float[(long)set.Count * k];
        using (Tape.NoGrad())
        {
            for (int start = 0; start < set.Count; start += batch)
            {
                int n = Math.Min(batch, set.Count - start);
                var x = Tensor.FromArray(backend, set.Images.AsSpan(start * set.ImageSize, n * set.ImageSize).ToArray(), [n, set.Channels, set.Height, set.Width]);
                var f = model.Features(x);
                var z = model.Head.Forward(f);
                f.ToArray().CopyTo(features, (long)start * d);
                z.ToArray().CopyTo(logits, (long)start * k);
                x.Buffer.Dispose();
                Tape.Current.Reset();
            }
        }
        Npy.Write(Path.Combine(dir, prefix + "_features.npy"), features, [set.Count, d]);
        Npy.Write(Path.Combine(dir, prefix + "_logits.npy"), logits, [set.Count, k]);
        Npy.Write(Path.Combine(dir, prefix + "_labels.npy"), set.Labels, [set.Count]);
    }
}
