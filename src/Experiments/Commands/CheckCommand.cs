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
        var cmd = new Command("check", "Check every kernel against its float64 reference on a device and print a table (exit 1 on any mismatch).")
            { device, threads, op, small, verbose };
        cmd.SetAction(pr =>
        {
            var ops = pr.GetValue(op) is { Length: > 0 } chosen ? chosen : KernelCheck.Ops.ToArray();
            foreach (var o in ops)
                if (!KernelCheck.Ops.Contains(o)) throw new UsageException($"--op: unknown op '{o}'; valid ops: {string.Join(", ", KernelCheck.Ops)}");
            using var backend = CommonOptions.CreateBackend(pr.GetValue(device)!, pr.GetValue(threads));
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
                if (pr.GetValue(verbose))
                    foreach (var r in results) AddRow(table, r.Op, 1, r, secs / results.Count);
                else
                {
                    var worst = results.OrderByDescending(r => r.Passed ? 0 : 1).ThenByDescending(r => r.WorstError / (r.Atol + r.Rtol * Math.Abs(r.Expected) + 1e-30)).First();
                    AddRow(table, o, results.Count, worst with { Passed = results.All(r => r.Passed), Mismatches = results.Sum(r => r.Mismatches) }, secs);
                }
                failed += results.Count(r => !r.Passed);
            }
            AnsiConsole.Write(table);
            AnsiConsole.MarkupLine(failed == 0 ? "[green]all kernels match their references[/]" : $"[red]{failed} case(s) outside tolerance[/]");
            return failed == 0 ? 0 : 1;
        });
        return cmd;
    }

    static void AddRow(Table t, string op, int cases, CheckResult r, double secs) =>
        t.AddRow(op, cases.ToString(), r.Passed ? "[green]pass[/]" : $"[red]FAIL ({r.Mismatches})[/]", Markup.Escape(r.Case),
            $"{r.WorstError:G3}", $"{r.Atol:G2} + {r.Rtol:G2}|ref|", $"{secs:F2}");
}
