using LsKd.Kernels;

namespace LsKd.Experiments.Analysis;

/// <summary>
/// Algorithm 1 of the paper (GUIDE section 3): the final-layer rows of three classes, each with its own bias as an
/// extra entry, form a (D+1) x 3 template matrix; its QR gives an orthonormal basis; each penultimate feature, with
/// a constant 1 appended, is projected onto it; a PCA fitted on the training projections maps them (and, reusing
/// that fit, the validation projections) to 2-D.
/// </summary>
public sealed class Projection
{
    readonly float[] _basis;   // (D + 1) x 3, row-major
    readonly int _dim;

    public Projection(IBackend backend, float[] headWeight, float[] headBias, int dim, int[] triple)
    {
        _dim = dim;
        int rows = dim + 1;
        var templates = new float[rows * 3];
        for (int j = 0; j < 3; j++)
        {
            for (int i = 0; i < dim; i++) templates[i * 3 + j] = headWeight[triple[j] * dim + i];
            templates[dim * 3 + j] = headBias[triple[j]];   // the bias of the same class (the official code mixes them up)
        }
        using var a = backend.Allocate(rows * 3); a.Upload(templates);
        using var q = backend.Allocate(rows * 3);
        using var r = backend.Allocate(9);
        backend.HouseholderQr(a, q, r, rows, 3);
        _basis = q.ToArray();
    }

    /// <summary>The orthonormal basis Q, (D + 1) x 3 row-major, of the three classes' [weights; bias] columns.</summary>
    public IReadOnlyList<float> Basis => _basis;

    /// <summary>[n, 3] coordinates of the chosen rows of features [N, D] in the template basis.</summary>
    public float[] Project(float[] features, IReadOnlyList<int> rows)
    {
        var y = new float[rows.Count * 3];
        for (int s = 0; s < rows.Count; s++)
        {
            long f = (long)rows[s] * _dim;
            for (int j = 0; j < 3; j++)
            {
                double acc = _basis[_dim * 3 + j];   // the appended constant 1
                for (int i = 0; i < _dim; i++) acc += features[f + i] * _basis[i * 3 + j];
                y[s * 3 + j] = (float)acc;
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
