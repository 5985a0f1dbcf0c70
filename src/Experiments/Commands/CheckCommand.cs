using System.CommandLine;
using LsKd.Kernels.Checks;
using Spectre.Console;

namespace LsKd.Experiments.Commands;

/// <summary>`lskd check --device cuda`: every kernel against its float64 reference on one device, as a table.
/// This is the one command to run on a GPU machine.</summary>
internal static class CheckCommand
{
    public static Command Create()
    {
        var device = CommonOptions.Device();
        var threads = CommonOptions.Threads();
        var op = new Option<string[]>("--op") { Description = $"only these ops (default: all): {string.Join(", ", KernelCheck.Ops)}", AllowMultipleArgumentsPerToken = true };
        var small = new Option<bool>("--small") { Description = "tiny shapes only (default on ilgpu-cpu, which is an emulator)" };
        var verbose = new Option<bool>("--verbose") { Description = "one row per case instead of one per op" };
        var skip = new Option<string[]>("--skip") { Description = "run every op but these", AllowMultipleArgumentsPerToken = true };
        var tf32 = CommonOptions.Tf32();
        var jsonl = ResultLog.Option();
        var cmd = new Command("check", "Check every kernel against its float64 reference on a device and print a table (exit 1 on any mismatch or kernel that throws).")
            { device, threads, op, skip, small, verbose, tf32, jsonl };
        cmd.SetAction(pr =>
        {
            var ops = pr.GetValue(op) is { Length: > 0 } chosen ? chosen : KernelCheck.Ops.ToArray();
            var skipped = pr.GetValue(skip) ?? [];
            foreach (var (flag, names) in new[] { ("--op", ops), ("--skip", skipped) })
                foreach (var o in names)
                    if (!KernelCheck.Ops.Contains(o)) throw new UsageException($"{flag}: unknown op '{o}'; valid ops: {string.Join(", ", KernelCheck.Ops)}");
            ops = ops.Except(skipped).ToArray();
            using var backend = CommonOptions.CreateBackend(pr.GetValue(device)!, pr.GetValue(threads), null, null, pr.GetValue(tf32));
            var log = ResultLog.Open(pr.GetValue(jsonl), "check", backend);
            bool tiny = pr.GetValue(small) || backend.Name == "ilgpu-cpu";
            AnsiConsole.MarkupLine($"checking on [bold]{Markup.Escape(backend.ToString()!)}[/]{(tiny ? " (small shapes)" : "")}");
            var check = new KernelCheck(backend, tiny);
            var table = new Table().AddColumn("op").AddColumn("cases").AddColumn("result").AddColumn("worst case").AddColumn("worst |err|").AddColumn("tolerance").AddColumn("seconds");
            int failed = 0;
            foreach (var o in ops)
            {
                var sw = System.Diagnostics.Stopwatch.StartNew();
                var results = check.Run(o);
                double secs = sw.Elapsed.TotalSeconds;
                // One line per op as it finishes (a run killed at its time limit keeps these) and in --jsonl.
                int bad = results.Count(r => !r.Passed);
                var worstCase = results.FirstOrDefault(r => !r.Passed) ?? results.MaxBy(Ratio);
                Console.WriteLine($"{o}: {(bad == 0 ? "pass" : "FAIL")} {results.Count - bad}/{results.Count} cases in {secs:F2} s{(worstCase != null ? $"; worst: {worstCase}" : "")}");
                foreach (var r in results)
                    log?.Add($"{o} {r.Case}", "error / tolerance", r.Error != null ? double.NaN : Ratio(r), passed: r.Passed, note: r.Error ?? r.ToString());
                if (pr.GetValue(verbose))
                    foreach (var r in results) AddRow(table, r.Op, 1, r, secs / results.Count);
                else
                {
                    var worst = results.OrderByDescending(r => r.Passed ? 0 : 1).ThenByDescending(Ratio).First();
                    AddRow(table, o, results.Count, worst with { Passed = results.All(r => r.Passed), Mismatches = results.Sum(r => r.Mismatches) }, secs);
                }
                failed += results.Count(r => !r.Passed);
            }
            AnsiConsole.Write(table);
            AnsiConsole.MarkupLine(failed == 0 ? "[green]all kernels match their references[/]" : $"[red]{failed} case(s) outside tolerance or threw[/]");
            return failed == 0 ? 0 : 1;
        });
        return cmd;
    }

    /// <summary>The worst error as a share of its tolerance (above 1 fails).</summary>
    static double Ratio(CheckResult r) => r.WorstError / (r.Atol + r.Rtol * Math.Abs(r.Expected) + 1e-30);

    static void AddRow(Table t, string op, int cases, CheckResult r, double secs) =>
        t.AddRow(op, cases.ToString(), r.Passed ? "[green]pass[/]" : $"[red]FAIL ({r.Mismatches})[/]", Markup.Escape(r.Case),
            r.Error != null ? "-" : $"{r.WorstError:G3}", r.Error != null ? "-" : $"{r.Atol:G2} + {r.Rtol:G2}|ref|", $"{secs:F2}");
}
