using LsKd.Experiments.Analysis;

namespace LsKd.Experiments.Study;

/// <summary>The claims decided from run records alone (C1, C2, C4, C5): per-seed test accuracies of the sweep's
/// students compared as <see cref="SeedComparison"/>s. Pure functions of the records, so tests can build records
/// and check each claim's direction.</summary>
public static class AccuracyClaims
{
    static string F(float v) => StudyConfig.F(v);

    /// <summary>Finished students (and matched-entropy students) of one cell of the sweep.</summary>
    public static IEnumerable<RunRecord> StudentRuns(IReadOnlyList<RunRecord> runs, StudentArch arch, float alpha, float t) => runs.Where(r =>
        r.Status == RunStatus.Finished && r.Last != null && r.Kind is RunKind.Student or RunKind.Matched && r.Model == arch.Model && r.Width == arch.Width && r.TeacherAlpha == alpha && r.Temperature == t);

    /// <summary>Last-epoch test top-1 of finished students per seed, for one cell of the sweep.</summary>
    public static Dictionary<int, double> SeedAccuracies(IReadOnlyList<RunRecord> runs, StudentArch arch, float alpha, float t) =>
        StudentRuns(runs, arch, alpha, t).GroupBy(r => r.Seed).ToDictionary(g => g.Key, g => g.First().Last!.Test.Top1);

    /// <summary>Last-epoch test top-1 of the finished teachers of one alpha, per seed.</summary>
    public static Dictionary<int, double> TeacherAccuracies(IReadOnlyList<RunRecord> runs, float alpha) =>
        runs.Where(r => r.Status == RunStatus.Finished && r.Last != null && r.Kind == RunKind.Teacher && r.Alpha == alpha)
            .GroupBy(r => r.Seed).ToDictionary(g => g.Key, g => g.First().Last!.Test.Top1);

    /// <summary>Whether the seeds' students share one teacher per alpha (then no comparison of students decides).</summary>
    public static bool TeacherShared(StudyConfig config) => config.ShareTeacher && config.Seeds.Length > 1;

    /// <summary>Per seed (present at both temperatures): accuracy at t1 minus accuracy at t2.</summary>
    static Dictionary<int, double> Drops(IReadOnlyList<RunRecord> runs, StudentArch arch, float alpha, float t1, float t2)
    {
        var a = SeedAccuracies(runs, arch, alpha, t1); var b = SeedAccuracies(runs, arch, alpha, t2);
        return a.Keys.Intersect(b.Keys).ToDictionary(seed => seed, seed => a[seed] - b[seed]);
    }

    /// <summary>The one rule (<see cref="SeedComparison.BySeed"/>), told whether the study shares its teachers.</summary>
    public static SeedComparison Compare(StudyConfig config, string label, Dictionary<int, double> a, Dictionary<int, double> b, int direction) =>
        SeedComparison.BySeed(label, a, b, direction, TeacherShared(config));

    /// <summary>The teachers behind a comparison of two alphas' students: how far apart they are, so that a student gap
    /// can be read against the teacher gap (with one teacher per alpha it is one number each, no spread).</summary>
    public static string TeacherNote(StudyConfig config, IReadOnlyList<RunRecord> runs, float alpha) =>
        "teachers: " + SeedComparison.BySeed($"alpha {F(alpha)} teacher vs alpha 0 teacher", TeacherAccuracies(runs, alpha), TeacherAccuracies(runs, 0f), +1) +
        (TeacherShared(config) ? " (one teacher each, shared by the seeds)" : "");

    public static ClaimResult C1(StudyConfig config, IReadOnlyList<RunRecord> runs)
    {
        var smoothed = config.Alphas.Where(a => a > 0f).ToList();
        float tLow = config.Temperatures.Min();
        bool hasPlain = config.Alphas.Contains(0f);
        // C1: at T = 1 the LS teacher's student outperforms the unsmoothed teacher's (Tables 1, 2).
        var cs = new List<SeedComparison>();
        var notes = new List<string>();
        foreach (var arch in config.Students)
            foreach (float a in smoothed)
                cs.Add(Compare(config, $"{arch.Model}, T = {F(tLow)}: alpha {F(a)} teacher's students vs alpha 0 teacher's",
                    SeedAccuracies(runs, arch, a, tLow), hasPlain ? SeedAccuracies(runs, arch, 0f, tLow) : [], +1));
        if (hasPlain) foreach (float a in smoothed) notes.Add(TeacherNote(config, runs, a));
        return new ClaimResult("C1", $"At T = {F(tLow)}, the student of an LS-trained teacher outperforms the student of the teacher trained without LS.", Verdicts.All(cs), cs, notes);
    }

    public static ClaimResult C2(StudyConfig config, IReadOnlyList<RunRecord> runs)
    {
        var smoothed = config.Alphas.Where(a => a > 0f).ToList();
        var temps = config.Temperatures.Order().ToList();
        float tLow = temps[0], tHigh = temps[^1];
        bool hasPlain = config.Alphas.Contains(0f);
        // C2: with the LS teacher, accuracy falls as T grows: at every step of the T list; and more than without LS.
        var cs = new List<SeedComparison>();
        var notes = new List<string>();
        foreach (var arch in config.Students)
            foreach (float a in smoothed)
            {
                for (int i = 0; i + 1 < temps.Count; i++)
                    cs.Add(Compare(config, $"{arch.Model}, alpha {F(a)}: T = {F(temps[i])} vs T = {F(temps[i + 1])}",
                        SeedAccuracies(runs, arch, a, temps[i]), SeedAccuracies(runs, arch, a, temps[i + 1]), +1));
                if (!hasPlain || temps.Count < 2) continue;
                // Interaction: the drop from the lowest to the highest T, per seed, against the same drop without LS.
                var lsDrop = Drops(runs, arch, a, tLow, tHigh); var plainDrop = Drops(runs, arch, 0f, tLow, tHigh);
                var interaction = Compare(config, $"{arch.Model}: drop T = {F(tLow)} -> {F(tHigh)} with the alpha {F(a)} teacher vs with the alpha 0 teacher", lsDrop, plainDrop, +1);
                notes.Add($"interaction (does accuracy fall more with the LS teacher?) {interaction}");
            }
        return new ClaimResult("C2", "With an LS-trained teacher, the student's accuracy falls at every step up the temperature list.", Verdicts.All(cs), cs, notes);
    }

    public static ClaimResult C4(StudyConfig config, IReadOnlyList<RunRecord> runs, IReadOnlyList<MatchedPair> matched)
    {
        // C4: equal target entropy does not give equal accuracy: the LS teacher's student is better at low T, worse at T >= 3 (Tables 14-16).
        var cs = new List<SeedComparison>();
        var notes = new List<string>();
        foreach (var g in matched.GroupBy(p => (p.TeacherAlpha, p.Temperature)))
            foreach (var arch in config.Students)
            {
                var ls = SeedAccuracies(runs, arch, g.Key.TeacherAlpha, g.Key.Temperature);
                var plain = g.Select(p => (p.Seed, Runs: StudentRuns(runs, arch, 0f, p.MatchedTemperature).Where(r => r.Seed == p.Seed).ToList()))
                    .Where(x => x.Runs.Count > 0).ToDictionary(x => x.Seed, x => x.Runs[0].Last!.Test.Top1);
                int direction = g.Key.Temperature < 3f ? +1 : -1;
                cs.Add(Compare(config, $"{arch.Model}: alpha {F(g.Key.TeacherAlpha)} at T = {F(g.Key.Temperature)} vs alpha 0 at the matched T' = " +
                    string.Join("/", g.Select(p => p.MatchedTemperature.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture))) + $" (paper: LS {(direction > 0 ? "better" : "worse")})", ls, plain, direction));
            }
        // Table 16: at T = 64 both teachers' targets are nearly uniform, so the two students at T = 64 are already a
        // matched pair (the paper: the LS teacher's student is worse).
        const float veryHigh = 64f;
        if (config.Alphas.Contains(0f) && config.Temperatures.Contains(veryHigh) && !matched.Any(p => p.Temperature == veryHigh))
        {
            foreach (float a in config.Alphas.Where(a => a > 0f))
                foreach (var arch in config.Students)
                    cs.Add(Compare(config, $"{arch.Model}: alpha {F(a)} at T = 64 vs alpha 0 at T = 64 (both near uniform, Table 16; paper: LS worse)",
                        SeedAccuracies(runs, arch, a, veryHigh), SeedAccuracies(runs, arch, 0f, veryHigh), -1));
            notes.Add("T = 64: the pair compares the study's own T = 64 students; both teachers' average target entropy is within a few thousandths of ln K there (the entropy table above)");
        }
        return new ClaimResult("C4", "Equal average target entropy does not give equal students: matched in entropy, the LS teacher's student is better at low T and worse at T >= 3.", Verdicts.All(cs), cs, notes);
    }

    public static ClaimResult C5(StudyConfig config, IReadOnlyList<RunRecord> runs)
    {
        var temps = config.Temperatures.Order().ToList();
        float tLow = temps[0];
        bool hasPlain = config.Alphas.Contains(0f);
        // C5: without LS, a higher T can help (Tables 5 and 9).
        var cs = new List<SeedComparison>();
        if (hasPlain)
            foreach (var arch in config.Students)
                foreach (float t in temps.Where(t => t > tLow))
                    cs.Add(Compare(config, $"{arch.Model}, alpha 0 teacher: T = {F(t)} vs T = {F(tLow)}", SeedAccuracies(runs, arch, 0f, t), SeedAccuracies(runs, arch, 0f, tLow), +1));
        // A "can" claim passes on any one of its comparisons: they are shown with Holm's margins, which decide it.
        var corrected = Verdicts.Holm(cs);
        return new ClaimResult("C5", $"Without LS, a temperature above {F(tLow)} can give a better student.", Verdicts.Any(cs), corrected,
            cs.Count > 1 ? [$"Holm's correction for {cs.Count} tries: a claim that passes on any one comparison must clear a wider margin than 2 SE"] : []);
    }
}
