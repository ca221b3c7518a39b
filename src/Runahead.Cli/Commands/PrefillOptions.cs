using System.CommandLine;
using Runahead.Distributed;
using Runahead.Prefill;

namespace Runahead.Cli.Commands;

/// <summary>
/// The parallel-prefill options shared by <c>generate</c> and <c>bench ttft</c>: ranks, strategy, partition,
/// transport, threads per rank and link emulation.
/// </summary>
public sealed class PrefillOptions
{
    public Option<string> Strategy { get; } = new("--strategy")
    {
        Description = $"Prefill strategy: {PrefillStrategyNames.Accepted} (tsp = the paper's dense-then-mask baseline)",
        DefaultValueFactory = _ => "single",
    };

    public Option<string> Partition { get; } = new("--partition")
    {
        Description = "Split of the prompt over ranks: even, searched, predicted, or token counts per rank (e.g. 4200,3100,1800)",
        DefaultValueFactory = _ => "even",
    };

    public Option<string> Transport { get; } = new("--transport")
    {
        Description = "How ranks talk: shm (worker processes on this host, default), mpi (under mpiexec), inproc (threads; testing)",
        DefaultValueFactory = _ => "shm",
    };

    public Option<int> ThreadsPerRank { get; } = new("--threads-per-rank")
    {
        Description = "Compute threads of each rank (default: cores / ranks, at least 1)",
    };

    public Option<string> LinkBandwidth { get; } = new("--link-bandwidth")
    {
        Description = "Emulated bandwidth of every rank-to-rank link (e.g. 10GB/s, 300GB/s, inf)",
    };

    public Option<string> LinkLatency { get; } = new("--link-latency")
    {
        Description = "Emulated latency of every link (e.g. 5us, 1ms)",
    };

    public Option<string> Links { get; } = new("--links")
    {
        Description = "File with a P x P bandwidth matrix (rows: source rank; GB/s or with units)",
    };

    public Option<string[]> Sidecar { get; } = new("--sidecar")
    {
        Description = "Background traffic on a link: SRC->DST:SHARE%:BURST/PERIOD (e.g. 1->2:50%:2ms/10ms); repeatable",
        AllowMultipleArgumentsPerToken = false,
    };

    /// <summary>
    /// Adds the options except --ranks (generate takes one number, bench a list) and, for bench, --strategy (a list there).
    /// </summary>
    public void AddTo(Command command, bool includeStrategy = true)
    {
        if (includeStrategy) command.Options.Add(Strategy);
        command.Options.Add(Partition);
        command.Options.Add(Transport);
        command.Options.Add(ThreadsPerRank);
        command.Options.Add(LinkBandwidth);
        command.Options.Add(LinkLatency);
        command.Options.Add(Links);
        command.Options.Add(Sidecar);
    }

    /// <summary>
    /// Runs a command body so that user errors print as one line (exit 1) and cancellation as "cancelled" (exit 130):
    /// System.CommandLine would otherwise print an exception with its stack trace.
    /// </summary>
    public static async Task<int> GuardAsync(ParseResult parse, Func<Task<int>> body)
    {
        try
        {
            return await body().ConfigureAwait(false);
        }
        catch (RunaheadException e)
        {
            parse.InvocationConfiguration.Error.WriteLine("runahead: " + e.Message);
            return 1;
        }
        catch (OperationCanceledException)
        {
            parse.InvocationConfiguration.Error.WriteLine("runahead: cancelled");
            return 130;
        }
    }

    public static RankTransport ParseTransport(string? text) => (text ?? "shm").Trim().ToLowerInvariant() switch
    {
        "shm" or "shared-memory" => RankTransport.SharedMemory,
        "mpi" => RankTransport.Mpi,
        "inproc" or "in-process" => RankTransport.InProcess,
        _ => throw new RunaheadException($"--transport: unknown transport '{text}'; expected shm, mpi or inproc"),
    };

    /// <summary>The link settings as given; turned into a shaper per world size by <see cref="LinkSettings.Build"/>.</summary>
    public LinkSettings ReadLinks(ParseResult result) => new(
        result.GetValue(LinkBandwidth), result.GetValue(LinkLatency), result.GetValue(Links), result.GetValue(Sidecar) ?? []);

    /// <summary>The validated settings for a <c>generate</c> run on <paramref name="ranks"/> ranks.</summary>
    public PrefillSettings Read(ParseResult result, int ranks)
    {
        if (ranks < 1) throw new RunaheadException($"--ranks: {ranks} must be at least 1");
        var strategy = PrefillStrategyNames.Parse(result.GetValue(Strategy) ?? "single");
        // More than one rank without a strategy means the paper's method.
        if (strategy == PrefillStrategyKind.Single && ranks > 1)
        {
            if (result.GetResult(Strategy) is { Implicit: false })
                throw new RunaheadException($"--strategy single runs on one rank; use --strategy tsp, tsp-causal or kvr with --ranks {ranks}");
            strategy = PrefillStrategyKind.Kvr;
        }
        var partition = PartitionSpec.Parse(result.GetValue(Partition));
        var transport = ParseTransport(result.GetValue(Transport));
        int threads = ThreadsFor(result, ranks);
        var links = ReadLinks(result);
        return new PrefillSettings(ranks, strategy, partition, transport, threads, links);
    }

    public int ThreadsFor(ParseResult result, int ranks)
    {
        int threads = result.GetValue(ThreadsPerRank);
        if (result.GetResult(ThreadsPerRank) is { Implicit: false } && threads < 1)
            throw new RunaheadException($"--threads-per-rank: {threads} must be at least 1");
        return threads >= 1 ? threads : Math.Max(1, Environment.ProcessorCount / ranks);
    }
}

/// <summary>Link emulation as given on the command line.</summary>
public sealed record LinkSettings(string? Bandwidth, string? Latency, string? MatrixPath, string[] Sidecars)
{
    public bool Any => Bandwidth != null || Latency != null || MatrixPath != null || Sidecars.Length > 0;

    /// <summary>A shaper for <paramref name="ranks"/> ranks, or null when no emulation was asked for (or one rank).</summary>
    public LinkShaper? Build(int ranks)
    {
        if (!Any || ranks < 2) return null;
        var latency = Latency != null ? LinkShaper.ParseDuration(Latency) : TimeSpan.Zero;
        LinkShaper shaper;
        if (MatrixPath != null)
        {
            if (Bandwidth != null) throw new RunaheadException("--links and --link-bandwidth both given; use one");
            shaper = LinkShaper.LoadMatrix(MatrixPath, ranks, latency);
        }
        else
        {
            shaper = new LinkShaper(ranks, Bandwidth != null ? LinkShaper.ParseBandwidth(Bandwidth) : double.PositiveInfinity, latency);
        }
        for (int i = 0; i < Sidecars.Length; i++) shaper.AddSidecar(Sidecars[i], seed: 1 + i);
        return shaper;
    }

    public override string ToString()
    {
        if (!Any) return "none";
        var parts = new List<string>();
        if (MatrixPath != null) parts.Add($"matrix {Path.GetFileName(MatrixPath)}");
        if (Bandwidth != null) parts.Add(Bandwidth);
        if (Latency != null) parts.Add($"latency {Latency}");
        foreach (var s in Sidecars) parts.Add($"sidecar {s}");
        return string.Join(", ", parts);
    }
}

/// <summary>Validated parallel-prefill settings of one <c>generate</c> run.</summary>
public sealed record PrefillSettings(int Ranks, PrefillStrategyKind Strategy, PartitionSpec Partition, RankTransport Transport,
    int ThreadsPerRank, LinkSettings Links)
{
    /// <summary>Whether the run needs ranks at all (otherwise generate takes its single-process path).</summary>
    public bool IsParallel => Ranks > 1 || Strategy != PrefillStrategyKind.Single || Transport == RankTransport.Mpi;
}
