using System.Diagnostics;
using LsKd.Autograd;
using LsKd.Kernels;
using LsKd.Nets;
using Spectre.Console;

namespace LsKd.Experiments.Study;

/// <summary>
/// `lskd study --dry-run`: the runs a configuration will train and an estimate of the time, from throughput
/// measured here and now on the chosen backend (a few training steps and forward passes per model on random
/// 28 x 28 images): per run, epochs x (training images / training rate + the per-epoch evaluation of the train-eval
/// and test images) + the teacher's forward passes for a student (once when its logits are cached, else every
/// epoch). Analysis time is not included.
/// </summary>
public static class DryRun
{
    public sealed record Estimate(RunSpec Run, int TrainImages, double Seconds);

    public static List<Estimate> Run(StudyConfig config, IBackend backend, int trainAvailable, int testAvailable, (int Index, int Count)? shard)
    {
        int teacherImages = config.TrainImages > 0 ? config.TrainImages : trainAvailable - config.ValidationImages;
        int studentImages = config.StudentTrainImages > 0 ? config.StudentTrainImages : teacherImages;
        int evalImages = Math.Min(config.TrainEvalImages > 0 ? config.TrainEvalImages : teacherImages, teacherImages) + (config.TestImages > 0 ? config.TestImages : testAvailable);
        var rates = new Dictionary<(string, float, int, bool), (double Train, double Forward)>();
        (double Train, double Forward) Rate(TrainSettings s)
        {
            bool augment = s.Augment ?? config.Augment;
            var key = (s.Model, s.Width, s.Batch, augment);
            if (!rates.TryGetValue(key, out var r)) rates[key] = r = Measure(backend, s.Model, s.Width, s.Batch, augment);
            return r;
        }
        var runs = config.Runs();
        var list = new List<Estimate>();
        for (int i = 0; i < runs.Count; i++)
        {
            if (shard is { } sh && i % sh.Count != sh.Index) continue;
            var spec = runs[i];
            var s = spec.Settings;
            int n = spec.Kind == RunKind.Teacher ? teacherImages : studentImages;
            // A student without augmentation reads its teacher's logits from a cache made once per run.
            bool cached = !(s.Augment ?? config.Augment);
            double teacherPass = spec.TeacherId != null ? n / Rate(config.Teacher).Forward : 0;
            double seconds = s.Epochs * (n / Rate(s).Train + evalImages / Rate(s).Forward) + teacherPass * (cached ? 1 : s.Epochs);
            list.Add(new Estimate(spec, n, seconds));
        }
        return list;
    }

    public static void Print(StudyConfig config, IReadOnlyList<Estimate> estimates, IBackend backend)
    {
        var table = new Table().AddColumn("run").AddColumn("kind").AddColumn("model").AddColumn("epochs").AddColumn("images").AddColumn("estimate");
        foreach (var e in estimates)
            table.AddRow(Markup.Escape(e.Run.Id), e.Run.Kind.Text(), $"{e.Run.Settings.Model} w{StudyConfig.F(e.Run.Settings.Width)}", e.Run.Settings.Epochs.ToString(),
                e.TrainImages.ToString("N0"), Time(e.Seconds));
        AnsiConsole.Write(table);
        AnsiConsole.MarkupLine($"counts (0 = all): trainImages {config.TrainImages}, studentTrainImages {config.StudentTrainImages}, testImages {config.TestImages}, " +
                               $"trainEvalImages {config.TrainEvalImages}, analysis.trainImages {config.Analysis.TrainImages}, analysis.testImages {config.Analysis.TestImages}, " +
                               $"teacher.batch {config.Teacher.Batch}, student.batch {config.Student.Batch}");
        double total = estimates.Sum(e => e.Seconds);
        AnsiConsole.MarkupLine($"study [bold]{Markup.Escape(config.Name)}[/]: {estimates.Count} runs, estimated {Time(total)} on {Markup.Escape(backend.ToString()!)} " +
                               "(from throughput measured now; matched-entropy runs and the analysis come on top)");
    }

    static string Time(double s) => s >= 3600 ? $"{s / 3600:F1} h" : s >= 60 ? $"{s / 60:F1} min" : $"{s:F0} s";

    /// <summary>Images per second of a training step (batch assembly with or without augmentation, SGD) and of a
    /// forward pass without gradients, after a warm-up long enough for the JIT's optimised tier.</summary>
    static (double Train, double Forward) Measure(IBackend be, string modelName, float width, int batch, bool augment)
    {
        var model = Models.Create(modelName, be, 1, width);
        var x = Tensor.Create(be, [batch, 1, 28, 28]);
        Init.Normal(x, 5, 0f, 1f);
        var rng = new Random(5);
        var images = new Data.ImageSet(Enumerable.Range(0, batch * 784).Select(_ => (float)rng.NextDouble()).ToArray(),
            Enumerable.Range(0, batch).Select(i => i % 10).ToArray(), 1, 28, 28, 10);
        var order = Enumerable.Range(0, batch).ToArray();
        var host = new float[batch * 784];
        var hostLabels = new int[batch];
        using var labels = be.AllocateInt(batch);
        labels.Upload(Enumerable.Range(0, batch).Select(i => i % 10).ToArray());
        using var opt = new Sgd(model.Parameters(), new SgdConfig(0.01f, 0.9f, 5e-4f));
        model.Train();
        int epoch = 0;
        void Step()
        {
            Data.Batches.Fill(images, order, host, hostLabels, augment, 1, epoch++, 0f);
            x.Buffer.Upload(host);
            opt.ZeroGrad();
            Tape.Backward(Ops.LabelSmoothingCrossEntropy(model.Forward(x), labels, 0.1f));
            opt.Step();
            Tape.Current.Reset();
        }
        double Seconds(Action a, int reps)
        {
            // Warm-up: buffer pool, and the JIT's tiering (methods are recompiled optimised after about 30 calls and a
            // short delay), so the steps timed are the ones a long run makes.
            var warm = Stopwatch.StartNew();
            for (int i = 0; i < 60 && (i < 6 || warm.Elapsed.TotalSeconds < 1.5); i++) a();
            be.Synchronize();
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < reps; i++) a();
            be.Synchronize();
            return sw.Elapsed.TotalSeconds / reps;
        }
        double train = batch / Seconds(Step, 5);
        model.Eval();
        double forward = batch / Seconds(() => { using (Tape.NoGrad()) model.Forward(x); Tape.Current.Reset(); }, 5);
        x.Buffer.Dispose();
        return (train, forward);
    }
}
