using System.CommandLine;
using Runahead.Distributed;

namespace Runahead.Cli.Commands;

/// <summary>
/// `runahead worker`: one rank. Started by a coordinator's rank pool, it takes its settings and jobs from stdin and
/// answers on stdout (so its own console output goes to stderr); see Distributed/WorkerHost.
/// </summary>
public static class WorkerCommand
{
    public static Command Build()
    {
        var cmd = new Command("worker", "Internal: a rank process started by the coordinator");
        // Only informative (it shows in ps); the real rank comes with the launch settings on stdin.
        var rank = new Option<int>("--rank") { Description = "Rank number (informative; set by the coordinator)" };
        cmd.Options.Add(rank);
        cmd.SetAction(async (parse, ct) =>
        {
            var protocolOut = Console.OpenStandardOutput();
            var protocolIn = Console.OpenStandardInput();
            // Anything a rank program prints must not corrupt the control frames.
            Console.SetOut(Console.Error);
            return await WorkerHost.RunAsync(protocolIn, protocolOut, Console.Error, ct).ConfigureAwait(false);
        });
        return cmd;
    }
}
