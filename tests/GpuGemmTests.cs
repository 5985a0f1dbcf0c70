using System.Reflection;
using System.Text.RegularExpressions;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime.Cuda;
using LsKd.Kernels;
using LsKd.Kernels.Checks;
using LsKd.Kernels.Gpu;
using LsKd.Kernels.Reference;

namespace LsKd.Tests;

/// <summary>The register-tiled and TF32 GEMM kernels and the implicit-GEMM convolutions, without a GPU: run on
/// ILGPU's CPU accelerator with 32-lane warps and 256-thread groups (the TF32 mma emulated from the same register
/// fragments by warp shuffles), and read in the PTX compiled for an H100.</summary>
[TestFixture]
public class GpuGemmTests
{
    static IlgpuBackend? s_wide;

    /// <summary>An emulated accelerator shaped like a GPU: 32-lane warps, 8 warps per group.</summary>
    static IlgpuBackend Wide() => s_wide ??= IlgpuBackend.CreateCpuEmulator(warpSize: 32, warpsPerGroup: 8);

    [OneTimeTearDown]
    public void TearDown() { s_wide?.Dispose(); s_wide = null; }

    static float[] Random(int n, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
    }

    static float[] Tf32(float[] x) => x.Select(v => IlgpuTiledGemm.Round(v, true)).ToArray();

    static void AssertClose(float[] got, double[] expected, double atol, string what)
    {
        int bad = 0; double worst = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double err = Math.Abs(got[i] - expected[i]);
            worst = Math.Max(worst, err);
            if (!(err <= atol + 1e-5 * Math.Abs(expected[i]))) bad++;
        }
        Assert.That(bad, Is.Zero, $"{what}: {bad} of {expected.Length} outside, worst {worst:G3}");
    }

    /// <summary>The 256-thread kernels (the emulator runs each launch in seconds, so a few shapes that cover edges,
    /// transposes, batches, beta and split K; the 64-thread kernels run the whole kernel check in KernelTests).</summary>
    [TestCase(GpuGemmKernel.Simt128, false, false, 130, 70, 40, 1, 0.5f, 0)]
    [TestCase(GpuGemmKernel.Simt128, true, true, 33, 129, 17, 2, 0f, 2)]
    [TestCase(GpuGemmKernel.Tf32, false, false, 130, 70, 40, 1, 0.5f, 0)]
    [TestCase(GpuGemmKernel.Tf32, true, false, 45, 37, 21, 2, 0f, 0)]
    [TestCase(GpuGemmKernel.Tf32, false, true, 20, 140, 50, 1, 1f, 3)]
    public void WideKernelsMatchTheReference(GpuGemmKernel kernel, bool ta, bool tb, int m, int n, int k, int batch, float beta, int splits)
    {
        var b = Wide();
        var spec = new GemmSpec(ta, tb, m, n, k, Alpha: 1.5f, Beta: beta, BatchCount: batch, StrideA: m * k, StrideB: k * n, StrideC: m * n);
        var a = Random(m * k * batch, 1); var bm = Random(k * n * batch, 2); var c = Random(m * n * batch, 3);
        b.ForcedGemmKernel = kernel; b.AllowTf32 = kernel == GpuGemmKernel.Tf32; b.ForcedSplits = splits;
        try
        {
            using var da = b.Allocate(a.Length); using var db = b.Allocate(bm.Length); using var dc = b.Allocate(c.Length);
            da.Upload(a); db.Upload(bm); dc.Upload(c);
            b.Gemm(spec, da, db, dc);
            bool tf32 = kernel == GpuGemmKernel.Tf32;
            AssertClose(dc.ToArray(), ReferenceOps.Gemm(spec, tf32 ? Tf32(a) : a, tf32 ? Tf32(bm) : bm, c), 2e-6 * k + 1e-5, $"{kernel} {spec}");
        }
        finally { b.ForcedGemmKernel = GpuGemmKernel.Auto; b.AllowTf32 = false; b.ForcedSplits = 0; }
    }

    [TestCase(GpuGemmKernel.Simt128, 0)]
    [TestCase(GpuGemmKernel.Tf32, 2)]
    public void WideImplicitGemmConvolutionsMatchTheReference(GpuGemmKernel kernel, int splits)
    {
        var b = Wide();
        var spec = new ConvSpec(3, 6, 9, 7, 8, 3, 3, 2, 1, Groups: 2);
        var x = Random((int)spec.InputSize, 4); var w = Random((int)spec.WeightSize, 5); var g = Random((int)spec.OutputSize, 6);
        bool tf32 = kernel == GpuGemmKernel.Tf32;
        var ey = ReferenceOps.Conv2d(spec, tf32 ? Tf32(x) : x, tf32 ? Tf32(w) : w);
        var (ex, ew) = ReferenceOps.Conv2dBackward(spec, tf32 ? Tf32(x) : x, tf32 ? Tf32(w) : w, tf32 ? Tf32(g) : g);
        b.ForcedGemmKernel = kernel; b.ForcedConvKernel = GpuConvKernel.ImplicitGemm; b.AllowTf32 = tf32; b.ForcedSplits = splits;
        try
        {
            using var dx = b.Allocate(x.Length); using var dw = b.Allocate(w.Length); using var dg = b.Allocate(g.Length);
            using var y = b.Allocate(g.Length); using var gx = b.Allocate(x.Length); using var gw = b.Allocate(w.Length);
            dx.Upload(x); dw.Upload(w); dg.Upload(g);
            b.Conv2d(spec, dx, dw, y);
            b.Conv2dBackwardInput(spec, dg, dw, gx, accumulate: false);
            b.Conv2dBackwardWeight(spec, dx, dg, gw, accumulate: false);
            AssertClose(y.ToArray(), ey, 1e-4, "forward");
            AssertClose(gx.ToArray(), ex, 1e-4, "input grad");
            AssertClose(gw.ToArray(), ew, 1e-3, "weight grad");
        }
        finally { b.ForcedGemmKernel = GpuGemmKernel.Auto; b.ForcedConvKernel = GpuConvKernel.Auto; b.AllowTf32 = false; b.ForcedSplits = 0; }
    }

    /// <summary>Shapes whose operands are contiguous and 16-byte aligned, so both tiles are fetched as vectors
    /// (ld.global.v4 on CUDA): the result must match the reference and, bit for bit, the element-wise fetch.</summary>
    [TestCase(GpuGemmKernel.Simt128, false, false, 132, 68, 40, 2)]
    [TestCase(GpuGemmKernel.Simt128, true, true, 36, 132, 20, 1)]
    [TestCase(GpuGemmKernel.Tf32, false, false, 132, 68, 40, 2)]
    [TestCase(GpuGemmKernel.Tf32, true, true, 68, 36, 48, 1)]
    [TestCase(GpuGemmKernel.Tf32, false, true, 20, 136, 52, 1)]
    [TestCase(GpuGemmKernel.Tf32, true, false, 44, 40, 36, 1)]
    public void WideVectorLoadsMatchElementLoads(GpuGemmKernel kernel, bool ta, bool tb, int m, int n, int k, int batch)
    {
        var b = Wide();
        var spec = new GemmSpec(ta, tb, m, n, k, Alpha: 1f, Beta: 0.25f, BatchCount: batch, StrideA: m * k, StrideB: k * n, StrideC: m * n);
        Assert.That(DenseOperands.Vectorizable(spec, 0, 0), Is.EqualTo((true, true)), "the case should take the vector path");
        var a = Random(m * k * batch, 11); var bm = Random(k * n * batch, 12); var c = Random(m * n * batch, 13);
        bool tf32 = kernel == GpuGemmKernel.Tf32;
        float[] Run(bool noVectors)
        {
            b.ForcedGemmKernel = kernel; b.AllowTf32 = tf32; b.NoVectorLoads = noVectors;
            try
            {
                using var da = b.Allocate(a.Length); using var db = b.Allocate(bm.Length); using var dc = b.Allocate(c.Length);
                da.Upload(a); db.Upload(bm); dc.Upload(c);
                b.Gemm(spec, da, db, dc);
                return dc.ToArray();
            }
            finally { b.ForcedGemmKernel = GpuGemmKernel.Auto; b.AllowTf32 = false; b.NoVectorLoads = false; }
        }
        var vectors = Run(false);
        AssertClose(vectors, ReferenceOps.Gemm(spec, tf32 ? Tf32(a) : a, tf32 ? Tf32(bm) : bm, c), 2e-6 * k + 1e-5, $"{kernel} {spec}");
        Assert.That(vectors.Select(BitConverter.SingleToInt32Bits), Is.EqualTo(Run(true).Select(BitConverter.SingleToInt32Bits)));
    }

    [Test]
    public void VectorLoadsNeedEveryOffsetStrideAndLeadingDimensionAligned()
    {
        var spec = new GemmSpec(false, false, 8, 8, 8, BatchCount: 2, StrideA: 64, StrideB: 64, StrideC: 64);
        Assert.That(DenseOperands.Vectorizable(spec, 0, 0), Is.EqualTo((true, true)));
        Assert.That(DenseOperands.Vectorizable(spec, 2, 0), Is.EqualTo((false, true)), "a slice starting off a 16-byte boundary");
        Assert.That(DenseOperands.Vectorizable(spec with { OffsetB = 1 }, 0, 0), Is.EqualTo((true, false)));
        Assert.That(DenseOperands.Vectorizable(spec with { StrideA = 66 }, 0, 0), Is.EqualTo((false, true)));
        Assert.That(DenseOperands.Vectorizable(spec with { Ldb = 10 }, 0, 0), Is.EqualTo((true, false)));
        Assert.That(DenseOperands.Vectorizable(spec with { Heads = 2, HeadStrideA = 6 }, 0, 0), Is.EqualTo((false, true)));
        var backend = Wide();
        using var arena = backend.Allocate(64);
        using var slice = backend.Slice(arena, 6, 16);
        using var inner = backend.Slice(slice, 2, 8);
        Assert.That((((IlgpuBuffer<float>)slice).Offset, ((IlgpuBuffer<float>)inner).Offset), Is.EqualTo((6L, 8L)));
    }

    [Test]
    public void TheCheckRunsEveryKernelTheAcceleratorCanLaunch()
    {
        var results = new KernelCheck(Backends.Get("ilgpu-cpu-g64"), small: true).Run("conv2d").Concat(new KernelCheck(Backends.Get("ilgpu-cpu-g64"), small: true).Run("gemm")).ToList();
        Assert.That(results.Where(r => !r.Passed).Select(r => r.ToString()), Is.Empty);
        foreach (var tag in new[] { "[simple]", "[simt-64]", "[simt-64, K in 3]", "[direct]", "[implicit-gemm simt-64]", "[implicit-gemm simt-64, K in 3]" })
            Assert.That(results.Any(r => r.Case.EndsWith(tag, StringComparison.Ordinal)), $"no case ran as {tag}");
    }

    [Test]
    public void Tf32RoundsItsInputsAndOnlyWhenAllowed()
    {
        var b = Wide();
        // 1 + 2^-12 is not a TF32 number (10 mantissa bits): fp32 keeps it, TF32 rounds it to 1.
        int m = 40, n = 40, k = 16;
        var a = Enumerable.Repeat(1f + MathF.Pow(2, -12), m * k).ToArray();
        var ones = Enumerable.Repeat(1f, k * n).ToArray();
        var spec = new GemmSpec(false, false, m, n, k);
        float Run(GpuGemmKernel kernel, bool allow)
        {
            b.ForcedGemmKernel = kernel; b.AllowTf32 = allow;
            try
            {
                using var da = b.Allocate(a.Length); using var db = b.Allocate(ones.Length); using var dc = b.Allocate(m * n);
                da.Upload(a); db.Upload(ones);
                b.Gemm(spec, da, db, dc);
                return dc.ToArray()[m * n - 1];
            }
            finally { b.ForcedGemmKernel = GpuGemmKernel.Auto; b.AllowTf32 = false; }
        }
        Assert.That(Run(GpuGemmKernel.Tf32, true), Is.EqualTo(16f));
        Assert.That(Run(GpuGemmKernel.Simt64, false), Is.EqualTo(16f + 16f * MathF.Pow(2, -12)));
        Assert.That(IlgpuTiledGemm.Round(1f + MathF.Pow(2, -11), true), Is.EqualTo(1f + MathF.Pow(2, -10)), "ties round away from zero");
    }

    /// <summary>A NaN reaching a split-K sum must come out as NaN, not freeze the emulator (its float compare-exchange
    /// retry never matches a stored NaN; FloatAtomics compares bits).</summary>
    [Test]
    public void NanThroughSplitKFinishesOnTheEmulator()
    {
        var b = (IlgpuBackend)Backends.Get("ilgpu-cpu-g64");
        int m = 40, n = 40, k = 64;
        var a = Random(m * k, 7); a[5] = float.NaN;
        var spec = new GemmSpec(false, false, m, n, k);
        b.ForcedGemmKernel = GpuGemmKernel.Simt64; b.ForcedSplits = 2;
        try
        {
            using var da = b.Allocate(a.Length); using var db = b.Allocate(k * n); using var dc = b.Allocate(m * n);
            da.Upload(a); db.Upload(Random(k * n, 8));
            var run = Task.Run(() => { b.Gemm(spec, da, db, dc); b.Synchronize(); });
            Assert.That(run.Wait(TimeSpan.FromSeconds(60)), Is.True, "the split-K GEMM did not finish");
            var c = dc.ToArray();
            Assert.That(float.IsNaN(c[0]), Is.True, "row 0 holds the NaN");
            Assert.That(float.IsFinite(c[n]), Is.True, "row 1 does not");
        }
        finally { b.ForcedGemmKernel = GpuGemmKernel.Auto; b.ForcedSplits = 0; }
    }

    [Test]
    public void KernelChoiceFollowsTheShape()
    {
        var b = Wide();
        Assert.That(b.ChooseGemmKernel(10, 4096, 4096), Is.EqualTo(GpuGemmKernel.Simple), "sliver");
        Assert.That(b.ChooseGemmKernel(64, 100, 300), Is.EqualTo(GpuGemmKernel.Simt64));
        Assert.That(b.ChooseGemmKernel(2048, 2048, 2048), Is.EqualTo(GpuGemmKernel.Simt128));
        b.AllowTf32 = true;
        try { Assert.That(b.ChooseGemmKernel(2048, 2048, 2048), Is.EqualTo(GpuGemmKernel.Tf32)); }
        finally { b.AllowTf32 = false; }
        var narrow = (IlgpuBackend)Backends.Get("ilgpu-cpu-g16");
        Assert.That(narrow.Supports(GpuGemmKernel.Simt64), Is.False);
        Assert.That(narrow.ChooseGemmKernel(2048, 2048, 2048), Is.EqualTo(GpuGemmKernel.Simple), "16-thread groups cannot hold a register tile");
        var depthwise = new ConvSpec(8, 64, 14, 14, 64, 3, 3, 1, 1, Groups: 64);
        Assert.That(b.ChooseConvKernel(depthwise, ConvPass.Forward), Is.EqualTo(GpuConvKernel.Direct));
        Assert.That(b.ChooseConvKernel(new ConvSpec(8, 64, 14, 14, 64, 3, 3, 1, 1), ConvPass.Forward), Is.EqualTo(GpuConvKernel.ImplicitGemm));
        Assert.That(b.ConvKernelName(new ConvSpec(8, 64, 14, 14, 64, 3, 3, 1, 1), ConvPass.Forward), Is.EqualTo("implicit-gemm simt-64"));
        Assert.That(b.ConvKernelName(new ConvSpec(8, 128, 14, 14, 256, 3, 3, 1, 1), ConvPass.Forward), Is.EqualTo("implicit-gemm simt-128"));
        Assert.That(b.ChooseConvKernel(new ConvSpec(8, 3, 28, 28, 16, 3, 3, 1, 1), ConvPass.Forward), Is.EqualTo(GpuConvKernel.Direct));
        // Input gradient: rows are the input channels (3), so the stem's input gradient stays direct even at 64 outputs.
        Assert.That(b.ChooseConvKernel(new ConvSpec(8, 3, 28, 28, 64, 3, 3, 1, 1), ConvPass.InputGrad), Is.EqualTo(GpuConvKernel.Direct));
    }

    // ---- PTX ------------------------------------------------------------------------------------------------

    static string Ptx(string kernel) => PtxTests.Compile(typeof(IlgpuBackend).Assembly.GetType("LsKd.Kernels.Gpu.IlgpuGemmKernels")!
        .GetMethod(kernel, BindingFlags.Public | BindingFlags.Static)!);

    [TestCase("DenseSimt")]
    [TestCase("ConvForwardSimt")]
    [TestCase("ConvInputGradSimt")]
    [TestCase("ConvWeightGradSimt")]
    public void SimtAccumulatorsStayInRegisters(string kernel)
    {
        string ptx = Ptx(kernel);
        Assert.That(ptx, Does.Not.Contain(".local"), "an accumulator or fragment spilled to local memory");
        // The inner loop's 64 multiply-adds per k step: ILGPU writes mul + add (ptxas fuses them).
        int products = Regex.Matches(ptx, @"\bmul(\.rn)?\.f32\b").Count + Regex.Matches(ptx, @"\bfma\.rn\.f32\b").Count;
        Assert.That(products, Is.GreaterThanOrEqualTo(64));
    }

    [TestCase("DenseTf32")]
    [TestCase("ConvForwardTf32")]
    public void Tf32KernelsUseTensorCores(string kernel)
    {
        string ptx = Ptx(kernel);
        Assert.That(Regex.Matches(ptx, @"mma\.sync\.aligned\.m16n8k8\.row\.col\.f32\.tf32\.tf32\.f32").Count, Is.EqualTo(16), "16 mma per k8 step");
    }

    /// <summary>The implicit-GEMM gathers split every k and n into (channel, r, s) and (image, row, column): with `/`
    /// each kernel carried 84 to 184 integer divisions, most inside the k loop. FastDivisor leaves only the
    /// once-a-thread split of the prologue (matrix and split-k slice of the group).</summary>
    [TestCase("DenseSimt")]
    [TestCase("DenseTf32")]
    [TestCase("ConvForwardSimt")]
    [TestCase("ConvForwardTf32")]
    [TestCase("ConvInputGradSimt")]
    [TestCase("ConvInputGradTf32")]
    [TestCase("ConvWeightGradSimt")]
    [TestCase("ConvWeightGradTf32")]
    public void GemmKernelsDivideOnlyInTheirPrologue(string kernel)
    {
        int divisions = Regex.Matches(Ptx(kernel), @"\b(div|rem)\.[su]32\b").Count;
        Assert.That(divisions, Is.LessThanOrEqualTo(2), "integer divisions: gathers should use FastDivisor");
    }

    [Test]
    public void FastDivisorIsExactOverTheNonNegativeInts()
    {
        var rng = new Random(7);
        var divisors = new List<int> { 1, 2, 3, 5, 7, 9, 10, 25, 49, 64, 96, 784, 1000, 1024, 3136, 65535, 65536, 1 << 20, 1_000_003, int.MaxValue - 1, int.MaxValue };
        for (int i = 0; i < 40; i++) divisors.Add(rng.Next(1, int.MaxValue));
        var xs = new List<int> { 0, 1, int.MaxValue, int.MaxValue - 1, 1 << 30 };
        for (int i = 0; i < 2000; i++) xs.Add(rng.Next(0, int.MaxValue));
        foreach (int d in divisors)
        {
            var fd = new FastDivisor(d);
            var near = new[] { d - 1, d, d + 1, 2 * (long)d - 1, 2 * (long)d, 7 * (long)d + 3 }.Where(v => v >= 0 && v <= int.MaxValue).Select(v => (int)v);
            foreach (int x in xs.Concat(near))
            {
                int q = fd.DivRem(x, out int r);
                if (q != x / d || r != x % d) Assert.Fail($"{x} / {d}: got ({q}, {r}), expected ({x / d}, {x % d})");
            }
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => new FastDivisor(0));
    }

    /// <summary>16-byte vectors where an expert would put them: the SIMT k loop reads its 16 operands as four
    /// ld.shared.v4 and stores row-major runs with st.shared.v4; the TF32 loop reads all fragments of a 16-deep tile
    /// as 4 (B) + 8 (A) ld.shared.v4, with no selects for the swizzled order (every index is a constant); the dense
    /// operands and the convolution filters are fetched with ld.global.v4.</summary>
    [TestCase("DenseSimt", 4, 1, 4)]
    [TestCase("ConvForwardSimt", 4, 1, 1)]
    [TestCase("DenseTf32", 12, 0, 4)]
    [TestCase("ConvForwardTf32", 12, 0, 1)]
    public void MainLoopsUseVectorLoads(string kernel, int sharedLoads, int sharedStores, int globalLoads)
    {
        string ptx = Ptx(kernel);
        Assert.That(Regex.Matches(ptx, @"\bld\.shared\.v4\.f32\b").Count, Is.GreaterThanOrEqualTo(sharedLoads), "ld.shared.v4");
        Assert.That(Regex.Matches(ptx, @"\bst\.shared\.v4\.f32\b").Count, Is.GreaterThanOrEqualTo(sharedStores), "st.shared.v4");
        Assert.That(Regex.Matches(ptx, @"\bld\.global\.v4\.f32\b").Count, Is.GreaterThanOrEqualTo(globalLoads), "ld.global.v4");
        string mainLoop = ptx[ptx.IndexOf("ld.shared.v4", StringComparison.Ordinal)..];
        Assert.That(Regex.Matches(mainLoop, @"\bselp\.(f32|b32)\b"), Is.Empty, "selects in the main loop: fragment picks should fold to registers");
    }

    /// <summary>The TF32 tile layout is a permutation of each 16-float row (no two elements share a slot), and its
    /// fragment loads and k-major stores are free of bank conflicts while row-major stores conflict at most two ways
    /// (banks: 32 of 4 bytes; 16-byte loads served a quarter-warp at a time).</summary>
    [Test]
    public void Tf32LayoutIsAPermutationWithoutBankConflicts()
    {
        for (int row = 0; row < IlgpuTiledGemm.Tf32Tile; row++)
        {
            var slots = Enumerable.Range(0, IlgpuTiledGemm.Tf32Depth).Select(k => IlgpuTiledGemm.Tf32Index(row, k)).ToList();
            Assert.That(slots.Distinct().Count(), Is.EqualTo(16));
            Assert.That(slots.All(x => x >= 16 * row && x < 16 * row + 16), $"row {row} leaves its 16 floats");
            for (int t = 0; t < 4; t++)   // k = t, t + 4, t + 8, t + 12 fill one aligned chunk of 4
                Assert.That(Enumerable.Range(0, 4).Select(j => IlgpuTiledGemm.Tf32Index(row, t + 4 * j) >> 2).Distinct().Count(), Is.EqualTo(1));
        }
        static int Ways(IEnumerable<int> words) => words.GroupBy(w => w & 31).Max(bank => bank.Distinct().Count());
        int worstRead = 0, worstKStore = 0, worstRowStore = 0;
        for (int r0 = 0; r0 < 128; r0 += 8)   // fragment chunk loads: lane (g, t) reads row r0 + g, chunk of k = t
            for (int quarter = 0; quarter < 4; quarter++)
                worstRead = Math.Max(worstRead, Ways(Enumerable.Range(8 * quarter, 8).SelectMany(lane =>
                {
                    int start = IlgpuTiledGemm.Tf32Index(r0 + (lane >> 2), lane & 3) & ~3;
                    return Enumerable.Range(start, 4);
                })));
        for (int warp = 0; warp < 8; warp++)
            for (int e = 0; e < 4; e++)
            {
                foreach (int run in new[] { 0, 1 })   // k-major runs: lane stores row 8 warp + lane / 4 (+ 64), k = 4 (lane % 4) + e
                    worstKStore = Math.Max(worstKStore, Ways(Enumerable.Range(0, 32).Select(lane => IlgpuTiledGemm.Tf32Index(64 * run + 8 * warp + (lane >> 2), 4 * (lane & 3) + e))));
                foreach (int k in new[] { warp, warp + 8 })   // row-major runs: lane stores rows 4 lane + e at one k
                    worstRowStore = Math.Max(worstRowStore, Ways(Enumerable.Range(0, 32).Select(lane => IlgpuTiledGemm.Tf32Index(4 * lane + e, k))));
            }
        Assert.That((worstRead, worstKStore, worstRowStore), Is.EqualTo((1, 1, 2)));
    }

    /// <summary>Launch bounds in the PTX (.maxntid 256, .minnctapersm 2), so ptxas keeps the tiled kernels within
    /// 128 registers and two 256-thread groups fit a multiprocessor.</summary>
    [TestCase("DenseSimt")]
    [TestCase("DenseTf32")]
    [TestCase("ConvWeightGradTf32")]
    public void TiledKernelsDeclareTheirLaunchBounds(string kernel)
    {
        string ptx = Ptx(kernel);
        Assert.That(ptx, Does.Match(@"\.maxntid\s+256,\s*1,\s*1"));
        Assert.That(ptx, Does.Match(@"\.minnctapersm\s+2\b"));
    }
}
