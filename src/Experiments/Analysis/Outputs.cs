using LsKd.Autograd;
using LsKd.Experiments.Data;
using LsKd.Kernels;
using LsKd.Nets;

namespace LsKd.Experiments.Analysis;

/// <summary>A model's penultimate features [N, D] and logits [N, K] on an image set, in evaluation mode.</summary>
public sealed record SetOutputs(float[] Features, float[] Logits, int[] Labels, int Dim, int Classes)
{
    public int Count => Labels.Length;

    public static SetOutputs Compute(IBackend backend, Classifier model, ImageSet set, int batch = 500)
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
        return new SetOutputs(features, logits, set.Labels, d, k);
    }

    /// <summary>&lt;prefix&gt;_features.npy, _logits.npy and _labels.npy (int32) in dir.</summary>
    public void Export(string dir, string prefix)
    {
        Npy.Write(Path.Combine(dir, prefix + "_features.npy"), Features, [Count, Dim]);
        Npy.Write(Path.Combine(dir, prefix + "_logits.npy"), Logits, [Count, Classes]);
        Npy.Write(Path.Combine(dir, prefix + "_labels.npy"), Labels, [Count]);
    }
}
