using System.Text.Json;
using System.Text.Json.Serialization;
using LsKd.Experiments.Analysis;
using LsKd.Kernels;

namespace LsKd.Experiments.Study;

public sealed record StudentArch(string Model, float Width = 1f);

/// <summary>How many images a data set offers a study: training (after a validation split), validation, test.</summary>
public sealed record DataSizes(int Train, int Validation, int Test);

/// <summary>Everything a study needs; presets (smoke, quick, paper) or a JSON file with the same keys. Unknown
/// keys are errors, so a typo never silently falls back to a default.</summary>
public sealed record StudyConfig
{
    public string Name { get; init; } = "study";
    public string Dataset { get; init; } = "fashion-mnist";
    /// <summary>Training images used (0 = all), taken from the start of the training set.</summary>
    public int TrainImages { get; init; }
    /// <summary>Training images the students and baselines use (0 = the same as the teachers), from the start of
    /// the teachers' training images.</summary>
    public int StudentTrainImages { get; init; }
    /// <summary>Images held out from the end of the training set for validation (0 = none); the report
    /// then shows validation accuracy beside test accuracy.</summary>
    public int ValidationImages { get; init; }
    public int TestImages { get; init; }
    /// <summary>Training images evaluated (in evaluation mode, without augmentation) for train accuracy.</summary>
    public int TrainEvalImages { get; init; } = 2000;
    public bool Augment { get; init; } = true;
    public TrainSettings Teacher { get; init; } = new() { Model = "resnet20", Epochs = 30 };
    public TrainSettings Student { get; init; } = new() { Epochs = 30 };
    public StudentArch[] Students { get; init; } = [new("resnet8"), new("mobilenetv2")];
    public float[] Alphas { get; init; } = [0f, 0.1f];
    public float[] Temperatures { get; init; } = [1f, 2f, 3f, 64f];
    public float Beta { get; init; } = 1f;
    public int[] Seeds { get; init; } = [1];
    /// <summary>One teacher per alpha (trained with the first seed) for the students of every seed, instead of one
    /// teacher per seed: the seeds then vary the students only (initialisation, order, augmentation).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]   // absent from config.json unless set: older studies still resume
    public bool ShareTeacher { get; init; }
    /// <summary>For an image folder: the square size images are resized to (0 = their most common size).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public int ImageSize { get; init; }
    /// <summary>Also train each student without a teacher (cross-entropy with each alpha).</summary>
    public bool Baselines { get; init; } = true;
    /// <summary>Temperatures for the class-wise tables (Tables 17-19 layout).</summary>
    public float[] ClassWiseTemperatures { get; init; } = [1f, 3f];
    /// <summary>What `lskd analyze` computes on the finished study (and `lskd study` runs automatically).</summary>
    public AnalysisSettings Analysis { get; init; } = new();

    public static IReadOnlyList<string> PresetNames { get; } = ["smoke", "quick", "standard", "paper"];

    public static StudyConfig Preset(string name) => name switch
    {
        // Seconds: a handful of images, tiny widths, one epoch. Used by the tests.
        "smoke" => new StudyConfig
        {
            Name = "smoke", TrainImages = 1024, TestImages = 500, TrainEvalImages = 256,
            Teacher = new TrainSettings { Model = "resnet8", Width = 0.25f, Epochs = 1, Batch = 64, Lr = 0.05f },
            Student = new TrainSettings { Epochs = 1, Batch = 64, Lr = 0.05f },
            Students = [new("resnet8", 0.25f), new("mobilenetv2", 0.25f)],
            Temperatures = [1f, 4f], ClassWiseTemperatures = [1f, 4f],
            Analysis = new AnalysisSettings { TrainImages = 256, TestImages = 250, EtaPairs = [[1f, 4f]], MatchTemperatures = [1f], VisTrainPoints = 20, VisValidationPoints = 10, PairwiseSamplesPerClass = 20 },
        },
        // The main job, about six minutes on two cores, trained enough that its numbers mean something (measured
        // 2026-12-06, docs/STUDY.md): ResNet-8 teachers on all 60,000 images for 3 cosine epochs (90.9 % with
        // alpha 0.1 alone), ResNet-8 width 0.5 students and baselines for 5 epochs on 20,000 images (87.4 % for
        // the baseline alone; 3 epochs gave 84.8 %), T in {1, 3}, one matched-entropy pair. One seed: the report
        // shows the pattern, the verdict cannot decide (no spread to test against).
        "quick" => new StudyConfig
        {
            Name = "quick", TrainImages = 0, StudentTrainImages = 20000, TestImages = 10000, TrainEvalImages = 2000, Augment = false,
            Teacher = new TrainSettings { Model = "resnet8", Width = 1f, Epochs = 3, Batch = 128, Lr = 0.1f },
            Student = new TrainSettings { Epochs = 5, Batch = 128, Lr = 0.1f },
            Students = [new("resnet8", 0.5f)],
            Temperatures = [1f, 3f], ClassWiseTemperatures = [1f, 3f],
            Analysis = new AnalysisSettings { MatchTemperatures = [3f] },
        },
        // Three seeds, so that the verdict can decide, each with its own teachers (the spread then holds teacher
        // variance, and comparisons are paired by seed): ResNet-8 teachers on all 60,000 images with augmentation,
        // ResNet-8 (width 0.5) students near convergence: 10 epochs on 20,000 images without augmentation (89.26 %
        // against 90.39 % after 30 epochs, docs/STUDY.md), reading their teacher's logits from a per-run cache.
        // MobileNetV2 students are left out for time.
        "standard" => new StudyConfig
        {
            Name = "standard", TrainImages = 0, StudentTrainImages = 20000, TestImages = 0, TrainEvalImages = 2000, Augment = true,
            Teacher = new TrainSettings { Model = "resnet8", Width = 1f, Epochs = 12, Batch = 128, Lr = 0.1f, Schedule = "cosine" },
            Student = new TrainSettings { Epochs = 10, Batch = 128, Lr = 0.1f, Schedule = "cosine", Augment = false },
            Students = [new("resnet8", 0.5f)],
            Seeds = [1, 2, 3],
        },
        // The paper-like study: all 60,000 images with augmentation, 30-epoch cosine schedules, three seeds. The
        // teacher (ResNet-20) reached 94.47 % test top-1 on the CPU in 50 minutes (docs/BENCHMARKS.md); the whole
        // sweep is hours on a CPU and meant for a GPU or for shards.
        "paper" => new StudyConfig
        {
            Name = "paper", TrainImages = 0, TestImages = 0, TrainEvalImages = 10000,
            Teacher = new TrainSettings { Model = "resnet20", Width = 1f, Epochs = 30, Batch = 128, Lr = 0.1f, Schedule = "cosine" },
            Student = new TrainSettings { Epochs = 30, Batch = 128, Lr = 0.1f, Schedule = "cosine" },
            Students = [new("resnet8", 1f), new("mobilenetv2", 1f)],
            Seeds = [1, 2, 3],
        },
        _ => throw new UsageException($"--preset: unknown preset '{name}'; valid presets: {string.Join(", ", PresetNames)}"),
    };

    public static StudyConfig FromFile(string path)
    {
        var c = ConfigFile.Read<StudyConfig>(path);
        c.Validate(path);
        return c;
    }

    public string ToJson() => JsonSerializer.Serialize(this, ConfigFile.Options);

    public void Validate(string where = "config")
    {
        // The name becomes a folder under --out: letters, digits, '.', '_' and '-' only, not starting with '.', so
        // that nothing ("..", "/", a newline) can lead outside --out.
        if (!System.Text.RegularExpressions.Regex.IsMatch(Name ?? "", @"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}\z"))
            throw new UsageException($"{where}: name '{Escape(Name)}' must be a plain folder name (letters, digits, '.', '_', '-'; not starting with '.'; at most 100 characters)");
        if (Dataset != "fashion-mnist") throw new UsageException($"{where}: dataset '{Dataset}' is unknown; available: fashion-mnist");
        if (TrainImages < 0 || StudentTrainImages < 0 || TestImages < 0 || ValidationImages < 0 || TrainEvalImages < 0)
            throw new UsageException($"{where}: image counts must be >= 0");
        Teacher.Validate(where + ".teacher");
        Student.Validate(where + ".student");
        if (Students.Length == 0) throw new UsageException($"{where}: students must name at least one architecture");
        foreach (var s in Students)
        {
            (Student with { Model = s.Model, Width = s.Width }).Validate(where + ".students");
        }
        if (Alphas.Length == 0) throw new UsageException($"{where}: alphas must not be empty");
        if (Temperatures.Length == 0) throw new UsageException($"{where}: temperatures must not be empty");
        if (ClassWiseTemperatures.Length == 0) throw new UsageException($"{where}: classWiseTemperatures must not be empty");
        Distinct(where + ".alphas", Alphas.Select(F));
        Distinct(where + ".temperatures", Temperatures.Select(F));
        Distinct(where + ".classWiseTemperatures", ClassWiseTemperatures.Select(F));
        Distinct(where + ".seeds", Seeds.Select(s => s.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        Distinct(where + ".students", Students.Select(s => $"{s.Model} at width {F(s.Width)}"));
        foreach (var a in Alphas) UsageException.Check($"{where}.alphas", HyperParameters.Alpha(a));
        foreach (var t in Temperatures) UsageException.Check($"{where}.temperatures", HyperParameters.Temperature(t));
        foreach (var t in ClassWiseTemperatures) UsageException.Check($"{where}.classWiseTemperatures", HyperParameters.Temperature(t));
        foreach (var t in ClassWiseTemperatures)
            if (!Temperatures.Contains(t)) throw new UsageException($"{where}.classWiseTemperatures: {F(t)} is not among the temperatures ({string.Join(", ", Temperatures.Select(F))})");
        UsageException.Check($"{where}.beta", HyperParameters.Beta(Beta));
        if (Seeds.Length == 0) throw new UsageException($"{where}: seeds must not be empty");
        Analysis.Validate(where + ".analysis", Temperatures);
        Distinct(where + ".analysis.triple", Analysis.Triple);   // the names are checked against the data's classes when it is read
        if (ImageSize < 0 || ImageSize > 1024) throw new UsageException($"{where}: imageSize must be from 0 (the most common size of an image folder) to 1024, got {ImageSize}");
    }

    /// <summary>
    /// A preset fitted to data smaller than the one it was tuned on: every image count (training, the students' share,
    /// train-evaluation, test, the analysis subsets, which include the matched-entropy images) and batch larger than
    /// what the data holds is lowered to it, with one notice per count changed. A preset's counts are defaults, not a
    /// contract; a user's own configuration is never fitted (its counts are checked and refused instead).
    /// </summary>
    public StudyConfig FitTo(DataSizes data, List<string> notices)
    {
        int Cap(string key, int value, int available, string what)
        {
            if (value <= available) return value;
            notices.Add($"{key} {value} -> {available}: the data holds {available} {what}");
            return available;
        }
        // 0 means "all" for every count but the batches.
        int train = TrainImages > 0 ? Cap("trainImages", TrainImages, data.Train, "training images (after the validation split)") : 0;
        int teacherImages = train > 0 ? train : data.Train;
        int studentTrain = StudentTrainImages > 0 ? Cap("studentTrainImages", StudentTrainImages, teacherImages, "training images for the teachers") : 0;
        int studentImages = studentTrain > 0 ? studentTrain : teacherImages;
        int test = TestImages > 0 ? Cap("testImages", TestImages, data.Test, "test images") : 0;
        int trainEval = TrainEvalImages > 0 ? Cap("trainEvalImages", TrainEvalImages, teacherImages, "training images") : 0;
        int analysisTrain = Cap("analysis.trainImages", Analysis.TrainImages, teacherImages, "training images");
        bool validated = data.Validation > 0;
        int analysisTest = Analysis.TestImages > 0
            ? Cap("analysis.testImages", Analysis.TestImages, validated ? data.Validation : test > 0 ? test : data.Test, validated ? "validation images" : "test images")
            : 0;
        return this with
        {
            TrainImages = train, StudentTrainImages = studentTrain, TestImages = test, TrainEvalImages = trainEval,
            Teacher = Teacher with { Batch = Cap("teacher.batch", Teacher.Batch, teacherImages, "training images") },
            Student = Student with { Batch = Cap("student.batch", Student.Batch, studentImages, "training images for the students") },
            Analysis = Analysis with { TrainImages = analysisTrain, TestImages = analysisTest },
        };
    }

    /// <summary>Every run of the sweep, teachers first, in a fixed order (shards split this list).</summary>
    public List<RunSpec> Runs()
    {
        var runs = new List<RunSpec>();
        foreach (int seed in ShareTeacher ? Seeds[..1] : Seeds)
            foreach (float a in Alphas)
                runs.Add(new RunSpec(TeacherId(a, seed), RunKind.Teacher, Teacher, new RunLoss.LabelSmoothing(a), (ulong)seed, null));
        foreach (int seed in Seeds)
            foreach (var arch in Students)
            {
                var settings = Student with { Model = arch.Model, Width = arch.Width };
                foreach (float a in Alphas)
                    foreach (float t in Temperatures)
                        runs.Add(new RunSpec($"student-{arch.Model}-w{F(arch.Width)}-a{F(a)}-T{F(t)}-s{seed}", RunKind.Student, settings,
                            new RunLoss.Distillation(new KdConfig(t, Beta)), (ulong)seed, TeacherOf(a, seed)) { TeacherAlpha = a });
                if (Baselines)
                    foreach (float a in Alphas)
                        runs.Add(new RunSpec($"baseline-{arch.Model}-w{F(arch.Width)}-ls{F(a)}-s{seed}", RunKind.Baseline, settings, new RunLoss.LabelSmoothing(a), (ulong)seed, null));
            }
        return runs;
    }

    /// <summary>The id of a matched-entropy student: the unsmoothed teacher at the temperature T' whose average
    /// target entropy equals that of the smoothed teacher at T (printed with six decimals).</summary>
    public static string MatchedId(StudentArch arch, float teacherAlpha, float temperature, int seed) =>
        $"matched-{arch.Model}-w{F(arch.Width)}-a{F(teacherAlpha)}-T{temperature.ToString("0.######", System.Globalization.CultureInfo.InvariantCulture)}-s{seed}";

    public static string TeacherId(float alpha, int seed) => $"teacher-a{F(alpha)}-s{seed}";

    /// <summary>The teacher the students of a seed distil from (the first seed's when teachers are shared).</summary>
    public string TeacherOf(float alpha, int seed) => TeacherId(alpha, ShareTeacher ? Seeds[0] : seed);

    /// <summary>The shortest text that reads back as the same float (0.1, 64, 0.0001): run ids are exact, so two
    /// different values never share an id.</summary>
    public static string F(float v) => v.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Refuses a list with a repeated value (as run ids print them).</summary>
    static void Distinct(string where, IEnumerable<string> values)
    {
        var seen = new HashSet<string>();
        foreach (var v in values)
            if (!seen.Add(v)) throw new UsageException($"{where}: {v} appears more than once");
    }

    static string Escape(string? s) => (s ?? "").Replace("\n", "\\n").Replace("\r", "\\r");
}
