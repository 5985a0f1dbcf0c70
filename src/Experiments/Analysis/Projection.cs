using LsKd.Kernels;

namespace LsKd.Experiments.Analysis;

/// <summary>
/// Algorithm 1 of the paper (GUIDE section 3): the final-layer rows of three classes, each with its own bias as an
/// extra entry, form a (D+1) x 3 template matrix; its QR gives an orthonormal basis; each penultimate feature, with
/// a constant 1 appended, is projected onto it; a PCA fitted on the training projections maps them (and, reusing
/// that fit, the validation projections) to 2-D. The same construction over any m classes (m at most D + 1) gives
/// the projected representations of the pairwise diffusion index (Appendix J), with all K classes.
/// </summary>
public sealed class Projection
{
    readonly float[] _basis;   // (D + 1) x m, row-major
    readonly int _dim, _m;

    public Projection(IBackend backend, float[] headWeight, float[] headBias, int dim, int[] classes)
    {
        _dim = dim;
        _m = classes.Length;
        int rows = dim + 1;
        if (_m < 1 || _m > rows) throw new ArgumentException($"cannot project on {_m} class templates in {rows} dimensions", nameof(classes));
        var templates = new float[rows * _m];
        for (int j = 0; j < _m; j++)
        {
            for (int i = 0; i < dim; i++) templates[i * _m + j] = headWeight[classes[j] * dim + i];
            templates[dim * _m + j] = headBias[classes[j]];   // the bias of the same class (the official code mixes them up)
        }
        using var a = backend.Allocate(rows * _m); a.Upload(templates);
        using var q = backend.Allocate(rows * _m);
        using var r = backend.Allocate(_m * _m);
        backend.HouseholderQr(a, q, r, rows, _m);
        _basis = q.ToArray();
    }

    /// <summary>Dimensions of the projected coordinates (the number of classes).</summary>
    public int Dimensions => _m;

    /// <summary>The orthonormal basis Q, (D + 1) x m row-major, of the classes' [weights; bias] columns.</summary>
    public IReadOnlyList<float> Basis => _basis;

    /// <summary>[n, m] coordinates of the chosen rows of features [N, D] in the template basis.</summary>
    public float[] Project(float[] features, IReadOnlyList<int> rows)
    {
        var y = new float[rows.Count * _m];
        for (int s = 0; s < rows.Count; s++)
        {
            long f = (long)rows[s] * _dim;
            for (int j = 0; j < _m; j++)
            {
                double acc = _basis[_dim * _m + j];   // the appended constant 1
                for (int i = 0; i < _dim; i++) acc += features[f + i] * _basis[i * _m + j];
                y[s * _m + j] = (float)acc;
            }
        }
        return y;
    }

    /// <summary>PCA to 2-D fitted on the training projections, applied to both sets.</summary>
    public static (float[] Train, float[] Validation, PcaModel Pca) To2D(IBackend backend, float[] train3, float[] validation3)
    {
        int nTrain = train3.Length / 3, nVal = validation3.Length / 3;
        var pca = Pca.Fit(backend, train3, nTrain, 3, 2);
        var train = Pca.Transform(backend, pca, train3, nTrain);
        var val = nVal > 0 ? Pca.Transform(backend, pca, validation3, nVal) : [];
        return (train, val, pca);
    }

    /// <summary>The first `perClass` rows of each class of the triple, in the triple's order.</summary>
    public static List<int> PickRows(int[] labels, int[] triple, int perClass)
    {
        var rows = new List<int>();
        foreach (int c in triple)
        {
            int taken = 0;
            for (int i = 0; i < labels.Length && taken < perClass; i++)
                if (labels[i] == c) { rows.Add(i); taken++; }
        }
        return rows;
    }
}
