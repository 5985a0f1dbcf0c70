using LsKd.Kernels;
using LsKd.Kernels.Checks;
using LsKd.Kernels.Cpu;

namespace LsKd.Tests;

/// <summary>The CPU convolution plans: the check covers every (algorithm, pass) on both SIMD widths, the planner
/// keeps the measured choices, forcing works only where an algorithm supports the shape, and a bad --conv is a
/// one-line usage error.</summary>
[TestFixture, NonParallelizable]
public class ConvPlanTests
{
    /// <summary>Every pass each algorithm implements.</summary>
    static readonly (ConvAlgorithm Algorithm, string Pass)[] s_implemented =
        (from a in ConvPlanner.All
         from pass in new[] { "forward", "input grad", "weight grad" }
         where !(a == ConvAlgorithm.GridDirect && pass == "weight grad")
         select (a, pass)).ToArray();

    [Test]
    public void KernelCheckRunsEveryAlgorithmAndPassOnBothWidths()
    {
        var results = new KernelCheck(new CpuBackend(1)).Run("conv2d");
        Assert.That(results.Where(r => !r.Passed).Select(r => r.ToString()), Is.Empty);
        foreach (var width in new[] { "512-bit", "256-bit" })
            foreach (var (algorithm, pass) in s_implemented)
            {
                string tag = $"[{ConvPlanner.Name(algorithm)}, {width}]";
                Assert.That(results.Count(r => r.Case.StartsWith(pass + " ", StringComparison.Ordinal) && r.Case.Contains(tag)), Is.GreaterThan(0),
                    $"no {pass} case ran on {tag}");
            }
    }

    [Test]
    public void TheCheckCatchesOneBrokenAlgorithm()
    {
        // A backend whose lanes forward is off by 0.01 in one output: only the lanes cases on its own width fail.
        var broken = new LanesOffByOne();
        var results = new KernelCheck(broken).Run("conv2d");
        var failed = results.Where(r => !r.Passed).Select(r => r.Case).ToList();
        Assert.That(failed, Is.Not.Empty);
        Assert.That(failed, Has.All.StartsWith("forward ").And.All.Contains($"[lanes, {broken.SimdBits}-bit]"));
    }

    sealed class LanesOffByOne : CpuBackend
    {
        public LanesOffByOne() : base(1) { }

        protected override void Conv2dCore(in ConvSpec s, DeviceBuffer<float> x, DeviceBuffer<float> weight, DeviceBuffer<float> y, DeviceBuffer<float>? channelStats)
        {
            base.Conv2dCore(s, x, weight, y, channelStats);
            if (ConvPlan(s, ConvPass.Forward) != ConvAlgorithm.Lanes) return;
            ((CpuBuffer<float>)y).Span[0] += 0.01f;
        }
    }

    static IEnumerable<TestCaseData> Choices()
    {
        const int n = 128;
        ConvAlgorithm g = ConvAlgorithm.Grid, d = ConvAlgorithm.GridDirect, l = ConvAlgorithm.Lanes, p = ConvAlgorithm.Pointwise;
        ConvAlgorithm i = ConvAlgorithm.Im2col, dw = ConvAlgorithm.Depthwise, loops = ConvAlgorithm.DepthwiseLoops, w = ConvAlgorithm.Winograd;
        foreach (int lanes in new[] { 16, 8 })
        {
            bool wide = lanes == 16;
            yield return Case("stem", lanes, new ConvSpec(n, 1, 28, 28, 16, 3, 3, 1, 1), d, i, g);
            // Channels-last Winograd weight gradients need 512-bit permutes in hardware.
            bool avx512 = wide && System.Runtime.Intrinsics.X86.Avx512F.IsSupported;
            yield return Case("ResNet stage 1", lanes, new ConvSpec(n, 16, 28, 28, 16, 3, 3, 1, 1), w, w, avx512 ? w : g);
            yield return Case("ResNet stage 2", lanes, new ConvSpec(n, 32, 14, 14, 32, 3, 3, 1, 1), w, w, avx512 ? w : l);
            // Whole-image Winograd tiles need them too.
            var stage3 = avx512 ? w : l;
            yield return Case("ResNet stage 3", lanes, new ConvSpec(n, 64, 7, 7, 64, 3, 3, 1, 1), stage3, stage3, stage3);
            yield return Case("ResNet stride 2", lanes, new ConvSpec(n, 16, 28, 28, 32, 3, 3, 2, 1), l, g, l);
            yield return Case("ResNet stride 2, 32 channels", lanes, new ConvSpec(n, 32, 14, 14, 64, 3, 3, 2, 1), l, l, l);
            yield return Case("shortcut 1x1/2 to 14x14", lanes, new ConvSpec(n, 16, 28, 28, 32, 1, 1, 2, 0), wide ? i : d, i, g);
            yield return Case("shortcut 1x1/2 to 7x7", lanes, new ConvSpec(n, 32, 14, 14, 64, 1, 1, 2, 0), l, l, g);
            yield return Case("expand 1x1 at 14x14", lanes, new ConvSpec(n, 24, 14, 14, 144, 1, 1), p, wide ? p : g, g);
            yield return Case("expand 1x1 at 7x7", lanes, new ConvSpec(n, 64, 7, 7, 384, 1, 1), g, g, wide ? p : g);
            yield return Case("depthwise 3x3", lanes, new ConvSpec(n, 144, 14, 14, 144, 3, 3, 1, 1, 144), dw, dw, dw);
            yield return Case("depthwise stride 3", lanes, new ConvSpec(2, 8, 12, 12, 8, 3, 3, 3, 1, 8), loops, loops, loops);
            yield return Case("5x5 stride 3", lanes, new ConvSpec(2, 4, 12, 12, 8, 5, 5, 3, 2), i, i, i);
        }

        static TestCaseData Case(string name, int lanes, ConvSpec s, ConvAlgorithm forward, ConvAlgorithm input, ConvAlgorithm weight) =>
            new TestCaseData(s, lanes, forward, input, weight).SetName($"planner picks the measured algorithms: {name}, {lanes * 32}-bit");
    }

    [TestCaseSource(nameof(Choices))]
    public void PlannerKeepsTheMeasuredChoices(ConvSpec spec, int lanes, ConvAlgorithm forward, ConvAlgorithm input, ConvAlgorithm weight)
    {
        Assert.That(ConvPlanner.Choose(spec, ConvPass.Forward, lanes), Is.EqualTo(forward));
        Assert.That(ConvPlanner.Choose(spec, ConvPass.InputGrad, lanes), Is.EqualTo(input));
        Assert.That(ConvPlanner.Choose(spec, ConvPass.WeightGrad, lanes), Is.EqualTo(weight));
        foreach (var pass in Enum.GetValues<ConvPass>())
            Assert.That(ConvPlanner.Supports(ConvPlanner.Choose(spec, pass, lanes), spec, pass), Is.True, "the choice must support the shape");
    }

    [Test]
    public void ForcingRunsTheAlgorithmWhereItFitsAndTheProfilerNamesIt()
    {
        var be = new CpuBackend(1);
        var conv3x3 = new ConvSpec(2, 4, 9, 9, 8, 3, 3, 1, 1);
        var pointwise = new ConvSpec(2, 4, 9, 9, 8, 1, 1);
        be.ForcedConvAlgorithm = ConvAlgorithm.Im2col;
        Assert.That(be.ConvPlan(conv3x3, ConvPass.Forward), Is.EqualTo(ConvAlgorithm.Im2col));
        be.ForcedConvAlgorithm = ConvAlgorithm.Depthwise;                       // not a depthwise shape: the default runs
        Assert.That(be.ConvPlan(pointwise, ConvPass.Forward), Is.EqualTo(ConvPlanner.Choose(pointwise, ConvPass.Forward, be.SimdBits / 32)));
        be.ForcedConvAlgorithm = ConvAlgorithm.Im2col;
        using var x = be.Allocate((int)conv3x3.InputSize); using var w = be.Allocate((int)conv3x3.WeightSize); using var y = be.Allocate((int)conv3x3.OutputSize);
        OpProfiler.Reset();
        OpProfiler.Enabled = true;
        try { be.Conv2d(conv3x3, x, w, y); }
        finally { OpProfiler.Enabled = false; }
        Assert.That(OpProfiler.Snapshot().Single().Op, Does.EndWith("[im2col]"));
        be.ForcedConvAlgorithm = null;
        Assert.That(be.ConvPlan(conv3x3, ConvPass.Forward), Is.EqualTo(ConvPlanner.Choose(conv3x3, ConvPass.Forward, be.SimdBits / 32)));
    }

    [Test]
    public void EveryAlgorithmHasACommandLineName()
    {
        foreach (var a in ConvPlanner.All)
        {
            Assert.That(ConvPlanner.TryParse(ConvPlanner.Name(a), out var parsed), Is.True);
            Assert.That(parsed, Is.EqualTo(a));
        }
        Assert.That(ConvPlanner.TryParse("fft", out _), Is.False);
    }

    [TestCase("layers", "nope", "--conv: unknown algorithm 'nope'")]
    [TestCase("train", "nope", "--conv: unknown algorithm 'nope'")]
    [TestCase("layers", "ilgpu-cpu", "--conv: unknown GPU convolution kernel 'grid'; valid on 'ilgpu-cpu': direct, implicit-gemm")]
    public void BadConvOptionIsAOneLineUsageError(string bench, string value, string fragment)
    {
        string[] args = value == "ilgpu-cpu"
            ? ["bench", bench, "--device", "ilgpu-cpu", "--conv", "grid"]
            : ["bench", bench, "--device", "cpu", "--conv", value];
        var (code, error) = CliRunner.Run(args);
        Assert.That(code, Is.EqualTo(2), error);
        Assert.That(error.Trim().Split('\n'), Has.Length.EqualTo(1), error);
        Assert.That(error, Does.Contain(fragment));
    }
}
