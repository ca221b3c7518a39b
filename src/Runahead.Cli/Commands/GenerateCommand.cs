using System.CommandLine;

namespace Runahead.Cli.Commands;

/// <summary>`runahead generate` (engine core issue).</summary>
public static class GenerateCommand
{
    public static Command Build()
    {
        var cmd = new Command("generate", "Generate text from a prompt");
        return cmd;
    }
}
