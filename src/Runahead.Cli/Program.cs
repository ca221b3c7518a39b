using System.CommandLine;
using Runahead.Cli.Commands;

namespace Runahead.Cli;

public static class Program
{
    public static int Main(string[] args) => Run(args, Console.Out, Console.Error);

    /// <summary>Entry point shared by Main and in-process CLI tests.</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var root = new RootCommand("runahead: LLM inference with KV-Runahead parallel prefill");
        root.Subcommands.Add(ModelCommands.Build());
        root.Subcommands.Add(GenerateCommand.Build());
        root.Subcommands.Add(BenchCommand.Build());
        root.Subcommands.Add(CalibrateCommand.Build());
        root.Subcommands.Add(SimulateCommand.Build());
        root.Subcommands.Add(ReproduceCommand.Build());
        root.Subcommands.Add(WorkerCommand.Build());
        // Our own handler below turns user errors into one line; the library's would print a stack trace.
        var config = new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false };
        var parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            // One clear line, not a usage dump: an unknown option says more than "required command missing".
            var error = parsed.Errors.FirstOrDefault(e => e.Message.StartsWith("Unrecognized", StringComparison.Ordinal)) ?? parsed.Errors[0];
            stderr.WriteLine("runahead: " + FirstLine(error.Message));
            return 2;
        }
        try
        {
            EnvironmentSettings.Validate();
            // InvokeAsync (not Invoke) so Ctrl-C / SIGTERM cancel the token every async command receives.
            return parsed.InvokeAsync(config).GetAwaiter().GetResult();
        }
        catch (RunaheadException e)
        {
            stderr.WriteLine("runahead: " + FirstLine(e.Message));
            return 1;
        }
        catch (OperationCanceledException)
        {
            stderr.WriteLine("runahead: cancelled");
            return 130;
        }
    }

    /// <summary>Folds a multi-line message (e.g. a list of allowed values) into one line.</summary>
    private static string FirstLine(string message) =>
        string.Join(' ', message.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
}
