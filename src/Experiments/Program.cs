using System.CommandLine;
using LsKd.Experiments.Commands;

namespace LsKd.Experiments;

public static class Program
{
    public static int Main(string[] args)
    {
        // Redirected output (CI logs, docs) gets wide tables instead of Spectre's 80-column fallback.
        if (Console.IsOutputRedirected) Spectre.Console.AnsiConsole.Profile.Width = 160;
        var root = new RootCommand("lskd: to smooth or not to smooth a teacher? A GPU compute engine (C#, ILGPU) and the label-smoothing / knowledge-distillation study built on it.");
        root.Subcommands.Add(InfoCommand.Create());
        root.Subcommands.Add(CheckCommand.Create());
        root.Subcommands.Add(PtxCommand.Create());
        root.Subcommands.Add(BenchCommand.Create());
        root.Subcommands.Add(StudyCommands.Study());
        root.Subcommands.Add(StudyCommands.SingleRun(distill: false));
        root.Subcommands.Add(StudyCommands.SingleRun(distill: true));
        root.Subcommands.Add(StudyCommands.Eval());
        root.Subcommands.Add(StudyCommands.ReportCommand());
        root.Subcommands.Add(StudyCommands.Export());
        root.Subcommands.Add(StudyCommands.Analyze());
        root.Subcommands.Add(StudyCommands.Advise());
        root.Subcommands.Add(CorpusCommand.Create());
        root.Subcommands.Add(PackDataCommand.Create());
        root.Subcommands.Add(TranslationCommand.Create());
        try
        {
            var parsed = root.Parse(args);
            if (parsed.Errors.Count > 0 && !args.Contains("--help") && !args.Contains("-h"))
            {
                Console.Error.WriteLine($"lskd: {parsed.Errors[0].Message}");
                return 2;
            }
            return parsed.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (Exception e) when (e is UsageException or Data.DataException or Nets.CheckpointException)
        {
            Console.Error.WriteLine($"lskd: {OneLine(e.Message)}");
            return 2;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Disk full, a folder that became unwritable: what already was written stays intact (every file is
            // written to a temporary name and renamed), so a rerun after fixing the cause resumes.
            Console.Error.WriteLine($"lskd: {OneLine(e.Message)}; files already written are intact, rerun to resume");
            return 2;
        }
    }

    /// <summary>A message as one line: a user error is never more than one.</summary>
    static string OneLine(string message) => string.Join(" ", message.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
}

/// <summary>A user error: printed as one line, exit code 2, never a stack trace.</summary>
public sealed class UsageException(string message) : Exception(message)
{
    /// <summary>Throws "where: problem" when a check (from <see cref="Kernels.HyperParameters"/>) found one.</summary>
    public static void Check(string where, string? problem)
    {
        if (problem != null) throw new UsageException($"{where}: {problem}");
    }
}
