using System.CommandLine;

namespace Runahead.Cli.Commands;

/// <summary>`runahead bench`.</summary>
public static class BenchCommand
{
    public static Command Build()
    {
        var cmd = new Command("bench", "Benchmarks: gemm, prefill, ttft");
        cmd.Subcommands.Add(BenchGemmCommand.Build());
        cmd.Subcommands.Add(BenchPrefillCommand.Build());
        cmd.Subcommands.Add(BenchTtftCommand.Build());
        return cmd;
    }
}
