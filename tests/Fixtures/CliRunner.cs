namespace LsKd.Tests;

/// <summary>Runs the lskd CLI in-process, as a user would from a shell: the exit code, and standard error kept for
/// the one-line checks (standard output is swallowed).</summary>
public static class CliRunner
{
    public static (int Code, string Error) Run(params string[] args)
    {
        var err = new StringWriter(); var outw = new StringWriter();
        var (oldErr, oldOut) = (Console.Error, Console.Out);
        Console.SetError(err); Console.SetOut(outw);
        try { return (LsKd.Experiments.Program.Main(args), err.ToString()); }
        finally { Console.SetError(oldErr); Console.SetOut(oldOut); }
    }
}
