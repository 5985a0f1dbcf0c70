using LsKd.Kernels;

namespace LsKd.Experiments.Data;

/// <summary>Deterministic batching and augmentation. The epoch order is a seeded shuffle; each training image
/// gets a random crop (zero padding of 2 pixels, as in the CIFAR/Fashion-MNIST literature) and a horizontal flip
/// with probability 1/2, drawn from a counter-based hash of (seed, epoch, image index), so a run is reproducible
/// and independent of batch size and threads.</summary>
public static class Batches
{
    public const int CropPadding = 2;

    public static int[] Permutation(int count, ulong seed, int epoch)
    {
        var order = Enumerable.Range(0, count).ToArray();
        var rng = new Random(unchecked((int)ScalarMath.Hash(seed, (ulong)epoch)));
        rng.Shuffle(order);
        return order;
    }

    /// <summary>Copies images[indices] into dst (normalised pixels) and their labels into labels.</summary>
    public static void Fill(ImageSet set, ReadOnlySpan<int> indices, float[] dst, int[] labels, bool augment, ulong seed, int epoch, float background)
    {
        int size = set.ImageSize, h = set.Height, w = set.Width;
        for (int b = 0; b < indices.Length; b++)
        {
            int idx = indices[b];
            labels[b] = set.Labels[idx];
            var src = set.Images.AsSpan(idx * size, size);
            var d = dst.AsSpan(b * size, size);
            if (!augment) { src.CopyTo(d); continue; }
            ulong r = ScalarMath.Hash(seed ^ 0xA5A5_0000_0000UL, ((ulong)epoch << 32) | (uint)idx);
            int dx = (int)(r % (2 * CropPadding + 1)) - CropPadding;
            int dy = (int)(r / 5 % (2 * CropPadding + 1)) - CropPadding;
            bool flip = (r >> 20 & 1) == 1;
            for (int c = 0; c < set.Channels; c++)
                for (int y = 0; y < h; y++)
                {
                    int sy = y + dy;
                    for (int x = 0; x < w; x++)
                    {
                        int sx = (flip ? w - 1 - x : x) + dx;
                        d[(c * h + y) * w + x] = (uint)sy < (uint)h && (uint)sx < (uint)w ? src[(c * h + sy) * w + sx] : background;
                    }
                }
        }
    }
}
