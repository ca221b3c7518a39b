using System.CommandLine;

namespace Runahead.Cli.Commands;

/// <summary>`runahead simulate`.</summary>
public static class SimulateCommand
{
    public static Command Build()
    {
        var cmd = new Command("simulate", "Simulate prefill strategies on a calibrated cost model");
        return cmd;
    }
}
