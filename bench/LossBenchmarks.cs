using BenchmarkDotNet.Attributes;
using LsKd.Kernels;
using LsKd.Kernels.Cpu;

namespace LsKd.Bench;

/// <summary>The row kernels at (B, K) = (4096, 1000) on two threads: fused KD and label-smoothing CE (forward +
/// backward in one pass), softmax at T, target entropy and top-5 correctness. The PyTorch comparison and the
/// bandwidth table come from `lskd bench losses --peer`.</summary>
public class LossBenchmarks
{
    const int B = 4096, K = 1000;
    CpuBackend _be = null!;
    DeviceBuffer<float> _zs = null!, _zt = null!, _grad = null!, _loss = null!;
    DeviceBuffer<int> _labels = null!, _correct = null!;

    [GlobalSetup]
    public void Setup()
    {
        _be = new CpuBackend(2);
        _zs = _be.Allocate(B * K); _zt = _be.Allocate(B * K); _grad = _be.Allocate(B * K); _loss = _be.Allocate(B);
        _be.InitNormal(_zs, B * K, 1, 0, 3); _be.InitNormal(_zt, B * K, 2, 0, 3);
        _labels = _be.AllocateInt(B); _correct = _be.AllocateInt(B);
        var r = new Random(3);
        _labels.Upload(Enumerable.Range(0, B).Select(_ => r.Next(K)).ToArray());
    }

    [Benchmark]
    public void KdForwardBackward() => _be.KdLoss(_zs, _zt, _labels, _loss, _grad, B, K, new KdConfig(4f, 1f, 0f), 1f / B);

    [Benchmark]
    public void LabelSmoothingForwardBackward() => _be.LabelSmoothingCrossEntropy(_zs, _labels, _loss, _grad, B, K, 0.1f, 1f / B);

    [Benchmark]
    public void SoftmaxT4() => _be.Softmax(_zs, _grad, B, K, 4f, log: false);

    [Benchmark]
    public void LogSoftmaxT4() => _be.Softmax(_zs, _grad, B, K, 4f, log: true);

    [Benchmark]
    public void EntropyT4() => _be.Entropy(_zs, _loss, B, K, 4f);

    [Benchmark]
    public void Top5Correct() => _be.TopKCorrect(_zs, _labels, _correct, B, K, 5);
}
