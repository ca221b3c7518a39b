using System.CommandLine;

namespace Runahead.Cli.Commands;

/// <summary>`runahead reproduce`.</summary>
public static class ReproduceCommand
{
    public static Command Build()
    {
        var cmd = new Command("reproduce", "Regenerate docs/REPRODUCTION.md");
        return cmd;
    }
}
