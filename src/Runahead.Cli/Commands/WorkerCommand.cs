using System.CommandLine;

namespace Runahead.Cli.Commands;

/// <summary>`runahead worker`.</summary>
public static class WorkerCommand
{
    public static Command Build()
    {
        var cmd = new Command("worker", "Internal: a rank process started by the coordinator");
        return cmd;
    }
}
