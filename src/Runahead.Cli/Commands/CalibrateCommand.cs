using System.CommandLine;

namespace Runahead.Cli.Commands;

/// <summary>`runahead calibrate`.</summary>
public static class CalibrateCommand
{
    public static Command Build()
    {
        var cmd = new Command("calibrate", "Measure this host's per-layer costs");
        return cmd;
    }
}
