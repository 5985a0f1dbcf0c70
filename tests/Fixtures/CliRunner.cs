using Spectre.Console;

namespace LsKd.Tests;

/// <summary>Runs the lskd CLI in-process, as a user would from a shell: the exit code, and standard error kept for
/// the one-line checks (standard output is swallowed, or returned by <see cref="RunWithOutput"/>).</summary>
public static class CliRunner
{
    public static (int Code, string Error) Run(params string[] args)
    {
        var (code, _, error) = RunWithOutput(args);
        return (code, error);
    }

    /// <summary>The exit code, what was printed (plain Console and Spectre's console alike) and standard error.</summary>
    public static (int Code, string Output, string Error) RunWithOutput(params string[] args)
    {
        var err = new StringWriter(); var outw = new StringWriter();
        var (oldErr, oldOut, oldAnsi) = (Console.Error, Console.Out, AnsiConsole.Console);
        Console.SetError(err); Console.SetOut(outw);
        AnsiConsole.Console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(outw), Ansi = AnsiSupport.No, Interactive = InteractionSupport.No });
        try { return (LsKd.Experiments.Program.Main(args), outw.ToString(), err.ToString()); }
        finally { Console.SetError(oldErr); Console.SetOut(oldOut); AnsiConsole.Console = oldAnsi; }
    }
}
