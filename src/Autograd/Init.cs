namespace LsKd.Autograd;

/// <summary>Seeded parameter initialisers (counter-based: the same on every backend).</summary>
public static class Init
{
    public static void Uniform(Tensor t, ulong seed, float low, float high) => t.Backend.InitUniform(t.Buffer, t.Size, seed, low, high);
    public static void Normal(Tensor t, ulong seed, float mean, float std) => t.Backend.InitNormal(t.Buffer, t.Size, seed, mean, std);

    /// <summary>Kaiming (He) normal for ReLU networks: std = sqrt(2 / fanIn).</summary>
    public static void KaimingNormal(Tensor t, ulong seed, int fanIn) => Normal(t, seed, 0f, MathF.Sqrt(2f / fanIn));

    /// <summary>PyTorch's default for Linear/Conv: U(-1/sqrt(fanIn), 1/sqrt(fanIn)).</summary>
    public static void KaimingUniform(Tensor t, ulong seed, int fanIn)
    {
        float bound = 1f / MathF.Sqrt(fanIn);
        Uniform(t, seed, -bound, bound);
    }

    public static void Zeros(Tensor t) => t.Backend.Fill(t.Buffer, 0, t.Size, 0f);
}
