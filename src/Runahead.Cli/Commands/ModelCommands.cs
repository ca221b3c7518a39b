using System.CommandLine;

namespace Runahead.Cli.Commands;

/// <summary>`runahead model info|synth` (formats issue).</summary>
public static class ModelCommands
{
    public static Command Build()
    {
        var model = new Command("model", "Inspect or synthesize model files");
        return model;
    }
}
