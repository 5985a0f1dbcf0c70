using LsKd.Kernels;

namespace LsKd.Tests;

[TestFixture, NonParallelizable]
public class OpProfilerTests
{
    [Test]
    public void CountsOutermostOpsOnlyAndNothingWhenOff()
    {
        var be = Backends.Get("cpu-v512-2t");
        using var x = be.Allocate(40 * 3); using var mean = be.Allocate(3); using var cov = be.Allocate(9);
        be.InitNormal(x, 120, 1, 0f, 1f);
        OpProfiler.Reset();
        be.Covariance(x, mean, cov, 40, 3);                      // profiler off: nothing recorded
        Assert.That(OpProfiler.Snapshot(), Is.Empty);
        OpProfiler.Enabled = true;
        try
        {
            be.Covariance(x, mean, cov, 40, 3);                  // composed of Reduce, Binary and Gemm
            be.Fill(mean, 0, 3, 0f);
            be.Fill(mean, 0, 3, 1f);
        }
        finally { OpProfiler.Enabled = false; }
        var ops = OpProfiler.Snapshot().ToDictionary(o => o.Op, o => o.Calls);
        Assert.That(ops, Is.EquivalentTo(new Dictionary<string, long> { ["Covariance"] = 1, ["Fill (under 64K values)"] = 2 }));
    }
}
