using System.Diagnostics;
using LsKd.Autograd;
using LsKd.Experiments.Data;
using LsKd.Kernels;
using LsKd.Nets;

namespace LsKd.Experiments.Study;

/// <summary>Optimisation hyper-parameters of one kind of run (teacher or student).</summary>
public sealed record TrainSettings
{
    public string Model { get; init; } = "resnet8";
    public float Width { get; init; } = 1f;
    public int Epochs { get; init; } = 1;
    public int Batch { get; init; } = 128;
    public float Lr { get; init; } = 0.1f;
    public float Momentum { get; init; } = 0.9f;
    public float WeightDecay { get; init; } = 5e-4f;
    /// <summary>cosine (per step, to zero) or step (x0.1 at 50 % and 75 % of the epochs).</summary>
    public string Schedule { get; init; } = "cosine";
    /// <summary>Random crops and flips for this role (null = the study's <c>augment</c>).</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]   // absent unless set: older studies still resume
    public bool? Augment { get; init; }

    public void Validate(string where)
    {
        if (!Nets.Models.Names.Contains(Model)) throw new UsageException($"{where}.model: unknown model '{Model}'; valid models: {string.Join(", ", Nets.Models.Names)}");
        UsageException.Check($"{where}.width", HyperParameters.Width(Width));
        if (Epochs < 1) throw new UsageException($"{where}.epochs must be >= 1, got {Epochs}");
        if (Batch < 2) throw new UsageException($"{where}.batch must be >= 2, got {Batch}");
        UsageException.Check($"{where}.lr", HyperParameters.LearningRate(Lr));
        UsageException.Check($"{where}.momentum", HyperParameters.Momentum(Momentum));
        UsageException.Check($"{where}.weightDecay", HyperParameters.WeightDecay(WeightDecay));
        if (Schedule is not ("cosine" or "step")) throw new UsageException($"{where}.schedule must be cosine or step, got '{Schedule}'");
    }

    public float LearningRate(int epoch, int step, int stepsPerEpoch)
    {
        if (Schedule == "step") return Lr * (epoch >= Epochs * 3 / 4 && Epochs >= 4 ? 0.01f : epoch >= Epochs / 2 && Epochs >= 2 ? 0.1f : 1f);
        double t = (epoch * (double)stepsPerEpoch + step) / (Epochs * (double)stepsPerEpoch);
        return (float)(Lr * 0.5 * (1 + Math.Cos(Math.PI * t)));
    }
}

public sealed record ClassMetrics(double Top1, double Top5, double[] PerClass, int Count);

public sealed record EpochMetrics(int Epoch, double LearningRate, double TrainLoss, ClassMetrics Train, ClassMetrics Test, double Seconds)
{
    /// <summary>Held-out validation accuracy (last epoch only, when the study keeps a validation split).</summary>
    public ClassMetrics? Validation { get; init; }
}

/// <summary>One training run: a teacher (label smoothing alpha), a student distilled from a teacher at
/// temperature T, or a baseline student trained on labels only.</summary>
/// <remarks>Alpha is the label smoothing of this run's own hard loss (teachers and baselines); a student's
/// teacher was trained with <see cref="TeacherAlpha"/>.</remarks>
public sealed record RunSpec(string Id, RunKind Kind, TrainSettings Settings, RunLoss Loss, ulong Seed, string? TeacherId)
{
    public float TeacherAlpha { get; init; }
    /// <summary>Label smoothing alpha of this run's hard loss.</summary>
    public float Alpha => Loss.Alpha;
    public float? Temperature => (Loss as RunLoss.Distillation)?.Kd.Temperature;
    public float Beta => (Loss as RunLoss.Distillation)?.Kd.Beta ?? 0f;
}

/// <summary>Trains and evaluates one run. The teacher, when there is one, runs in evaluation mode under no-grad on
/// the same augmented batch as the student at every step; without augmentation its logits are the same every epoch,
/// so they are computed once per run for the whole training set and gathered per batch.</summary>
public sealed class Trainer(IBackend backend, ImageSet train, ImageSet trainEval, ImageSet test, bool augment, float background)
{
    public const int EvalBatch = 500;

    /// <summary>Read a teacher's logits from a per-run cache when there is no augmentation (on by default; tests turn
    /// it off to compare with the teacher run on every batch).</summary>
    public bool CacheTeacherLogits { get; init; } = true;

    /// <summary>Called after every finished epoch with its metrics (a run's results as it goes).</summary>
    public Action<EpochMetrics>? OnEpoch { get; init; }

    public sealed record Outcome(List<EpochMetrics> Epochs, RunStatus Status, double Seconds, double ImagesPerSecond, int[] TestConfusion);

    public Outcome Run(RunSpec spec, Classifier model, Classifier? teacher, Action<int, int>? onStep = null)
    {
        var s = spec.Settings;
        int b = s.Batch, steps = train.Count / b;
        if (steps == 0) throw new UsageException($"{spec.Id}: batch {b} is larger than the {train.Count} training images");
        if ((spec.Loss is RunLoss.Distillation) != (teacher != null))
            throw new ArgumentException($"{spec.Id}: a distillation loss needs a teacher and only it takes one", nameof(teacher));
        var x = Tensor.Create(backend, [b, train.Channels, train.Height, train.Width]);
        using var labels = backend.AllocateInt(b);
        var host = new float[b * train.ImageSize];
        var hostLabels = new int[b];
        using var opt = new Sgd(model.Parameters(), new SgdConfig(s.Lr, s.Momentum, s.WeightDecay));
        teacher?.Eval();
        float[]? teacherCache = teacher != null && !augment && CacheTeacherLogits ? AllLogits(backend, teacher, train) : null;
        var teacherHost = teacherCache != null ? new float[b * train.Classes] : null;
        var cachedLogits = teacherCache != null ? Tensor.Create(backend, [b, train.Classes]) : null;
        var epochs = new List<EpochMetrics>();
        int[] lastConfusion = [];
        var status = RunStatus.Finished;
        var total = Stopwatch.StartNew();
        long images = 0;
        double trainSeconds = 0;
        try
        {
            for (int epoch = 0; epoch < s.Epochs && status == RunStatus.Finished; epoch++)
            {
                var sw = Stopwatch.StartNew();
                model.Train();
                var order = Batches.Permutation(train.Count, spec.Seed, epoch);
                double lossSum = 0;
                for (int step = 0; step < steps; step++)
                {
                    Batches.Fill(train, order.AsSpan(step * b, b), host, hostLabels, augment, spec.Seed, epoch, background);
                    x.Buffer.Upload(host);
                    labels.Upload(hostLabels);
                    opt.LearningRate = s.LearningRate(epoch, step, steps);
                    opt.ZeroGrad();
                    Tensor loss;
                    if (spec.Loss is RunLoss.Distillation kd)
                    {
                        Tensor teacherLogits;
                        if (teacherCache != null)
                        {
                            int k = train.Classes;
                            for (int i = 0; i < b; i++) teacherCache.AsSpan(order[step * b + i] * k, k).CopyTo(teacherHost.AsSpan(i * k, k));
                            cachedLogits!.Buffer.Upload(teacherHost);
                            teacherLogits = cachedLogits;
                        }
                        else using (Tape.NoGrad()) teacherLogits = teacher!.Forward(x);
                        loss = Ops.KdLoss(model.Forward(x), teacherLogits, labels, kd.Kd);
                    }
                    else loss = Ops.LabelSmoothingCrossEntropy(model.Forward(x), labels, spec.Alpha);
                    float value = loss.ToArray()[0];
                    if (!float.IsFinite(value)) { status = RunStatus.Diverged; Tape.Current.Reset(); break; }
                    lossSum += value;
                    Tape.Backward(loss);
                    opt.Step();
                    Tape.Current.Reset();
                    images += b;
                    onStep?.Invoke(epoch * steps + step + 1, s.Epochs * steps);
                }
                backend.Synchronize();
                trainSeconds += sw.Elapsed.TotalSeconds;
                if (status != RunStatus.Finished) break;
                var trainMetrics = Evaluate(model, trainEval, out _);
                var testMetrics = Evaluate(model, test, out lastConfusion);
                epochs.Add(new EpochMetrics(epoch + 1, opt.LearningRate, lossSum / steps, trainMetrics, testMetrics, sw.Elapsed.TotalSeconds));
                OnEpoch?.Invoke(epochs[^1]);
            }
        }
        finally { x.Buffer.Dispose(); cachedLogits?.Buffer.Dispose(); }
        // The last finished epoch's test confusion is the final model's (a diverged run reports none).
        int[] confusion = status == RunStatus.Finished ? lastConfusion : [];
        return new Outcome(epochs, status, total.Elapsed.TotalSeconds, trainSeconds > 0 ? images / trainSeconds : 0, confusion);
    }

    /// <summary>The logits of a model in evaluation mode for every image of a set, [count, classes].</summary>
    public static float[] AllLogits(IBackend backend, Classifier model, ImageSet set)
    {
        model.Eval();
        int k = set.Classes;
        var all = new float[set.Count * k];
        using (Tape.NoGrad())
            for (int start = 0; start < set.Count; start += EvalBatch)
            {
                int n = Math.Min(EvalBatch, set.Count - start);
                var x = Tensor.FromArray(backend, set.Images.AsSpan(start * set.ImageSize, n * set.ImageSize).ToArray(), [n, set.Channels, set.Height, set.Width]);
                model.Forward(x).ToArray().AsSpan(0, n * k).CopyTo(all.AsSpan(start * k));
                x.Buffer.Dispose();
                Tape.Current.Reset();
            }
        return all;
    }

    /// <summary>Top-1, top-5 and per-class accuracy in evaluation mode; confusion[label * K + prediction].</summary>
    public ClassMetrics Evaluate(Classifier model, ImageSet set, out int[] confusion) => Evaluate(backend, model, set, out confusion);

    public static ClassMetrics Evaluate(IBackend backend, Classifier model, ImageSet set, out int[] confusion)
    {
        model.Eval();
        int k = set.Classes;
        confusion = new int[k * k];
        int top1 = 0, top5 = 0;
        using (Tape.NoGrad())
        {
            for (int start = 0; start < set.Count; start += EvalBatch)
            {
                int n = Math.Min(EvalBatch, set.Count - start);
                var x = Tensor.FromArray(backend, set.Images.AsSpan(start * set.ImageSize, n * set.ImageSize).ToArray(), [n, set.Channels, set.Height, set.Width]);
                var logits = model.Forward(x).ToArray();
                x.Buffer.Dispose();
                Tape.Current.Reset();
                for (int i = 0; i < n; i++)
                {
                    int y = set.Labels[start + i];
                    var row = logits.AsSpan(i * k, k);
                    int pred = 0, rank = 0;
                    for (int j = 1; j < k; j++) if (row[j] > row[pred]) pred = j;
                    for (int j = 0; j < k; j++) if (row[j] > row[y] || (row[j] == row[y] && j < y)) rank++;
                    if (rank == 0) top1++;
                    if (rank < 5) top5++;
                    confusion[y * k + pred]++;
                }
            }
        }
        var perClass = new double[k];
        for (int c = 0; c < k; c++)
        {
            int count = 0;
            for (int j = 0; j < k; j++) count += confusion[c * k + j];
            perClass[c] = count == 0 ? double.NaN : 100.0 * confusion[c * k + c] / count;
        }
        return new ClassMetrics(100.0 * top1 / set.Count, 100.0 * top5 / set.Count, perClass, set.Count);
    }
}
