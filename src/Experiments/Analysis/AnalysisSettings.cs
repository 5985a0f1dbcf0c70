namespace LsKd.Experiments.Analysis;

/// <summary>The analyses of a study (paper Figures 1-4, Tables 3, 4, 12-16, 21, Appendix D).</summary>
public sealed record AnalysisSettings
{
    /// <summary>Training images (from the start of the study's training set) whose features, logits and soft
    /// targets are analysed: centroids, eta, entropy, the training panels.</summary>
    public int TrainImages { get; init; } = 2000;
    /// <summary>Validation images analysed (0 = all): the held-out validation set when the study has one, else the test set.</summary>
    public int TestImages { get; init; } = 2000;
    /// <summary>The class triple of the penultimate-layer plots: two similar classes and a dissimilar one.</summary>
    public string[] Triple { get; init; } = ["Shirt", "T-shirt/top", "Sneaker"];
    public int VisTrainPoints { get; init; } = 150;
    public int VisValidationPoints { get; init; } = 50;
    /// <summary>Temperature pairs T1 -> T2 of the diffusion index; both must be among the study's temperatures.</summary>
    public float[][] EtaPairs { get; init; } = [[1f, 3f]];
    /// <summary>Samples per class used for the pairwise-distance version of eta (Appendix J).</summary>
    public int PairwiseSamplesPerClass { get; init; } = 150;
    /// <summary>Temperatures of the average-entropy table (Table 13); the matched temperatures are added to it.</summary>
    public float[] EntropyTemperatures { get; init; } = [1f, 2f, 3f, 4f, 64f];
    /// <summary>Temperatures T of the smoothed teachers whose entropy the unsmoothed teacher is matched to; the
    /// study distils a student at each matched pair (Tables 14-16). Empty: no matched-entropy runs.</summary>
    public float[] MatchTemperatures { get; init; } = [1f, 3f];
    /// <summary>Temperatures of the teachers' average soft outputs (Figure 2).</summary>
    public float[] SoftTargetTemperatures { get; init; } = [1f, 2f];

    public void Validate(string where, float[] studyTemperatures)
    {
        if (TrainImages < 10) throw new UsageException($"{where}.trainImages must be >= 10, got {TrainImages}");
        if (TestImages < 0) throw new UsageException($"{where}.testImages must be >= 0, got {TestImages}");
        if (Triple.Length != 3) throw new UsageException($"{where}.triple must name exactly three classes, got {Triple.Length}");
        if (VisTrainPoints < 1 || VisValidationPoints < 1) throw new UsageException($"{where}.visTrainPoints and visValidationPoints must be >= 1");
        if (PairwiseSamplesPerClass < 2) throw new UsageException($"{where}.pairwiseSamplesPerClass must be >= 2, got {PairwiseSamplesPerClass}");
        foreach (var pair in EtaPairs)
        {
            if (pair.Length != 2) throw new UsageException($"{where}.etaPairs: each pair must be [T1, T2], got {pair.Length} values");
            foreach (float t in pair)
                if (!studyTemperatures.Contains(t))
                    throw new UsageException($"{where}.etaPairs: temperature {t} is not among the study's temperatures ({string.Join(", ", studyTemperatures)})");
            if (pair[0] == pair[1]) throw new UsageException($"{where}.etaPairs: T1 and T2 must differ, got [{pair[0]}, {pair[1]}]");
        }
        foreach (float t in EntropyTemperatures.Concat(MatchTemperatures).Concat(SoftTargetTemperatures))
            UsageException.Check(where, Kernels.HyperParameters.Temperature(t));
    }

    /// <summary>The triple for a data set: the configured names when they are its classes; for other data with the
    /// default (Fashion-MNIST) triple, two classes of one hierarchy group and one outside it, else the first three.</summary>
    public int[] ResolveTriple(Data.DatasetInfo info, string where)
    {
        bool isDefault = Triple.SequenceEqual(new AnalysisSettings().Triple);
        if (!isDefault || Triple.All(name => info.Classes.Contains(name, StringComparer.OrdinalIgnoreCase))) return TripleIndices(info.Classes, where);
        if (info.Classes.Length < 3) throw new UsageException($"{where}: the data has {info.Classes.Length} classes; the analysis needs three");
        var group = info.Hierarchy.Values.FirstOrDefault(g => g.Length >= 2);
        if (group != null && Enumerable.Range(0, info.Classes.Length).FirstOrDefault(k => !group.Contains(k), -1) is var other and >= 0)
            return [group[0], group[1], other];
        return [0, 1, 2];
    }

    /// <summary>Class indices of the triple, by name (case-insensitive).</summary>
    public int[] TripleIndices(string[] classes, string where = "analysis.triple") => Triple.Select(name =>
    {
        int k = Array.FindIndex(classes, c => string.Equals(c, name, StringComparison.OrdinalIgnoreCase));
        return k >= 0 ? k : throw new UsageException($"{where}: '{name}' is not a class; classes: {string.Join(", ", classes)}");
    }).ToArray();
}
