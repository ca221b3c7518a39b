using Runahead.Distributed;
using Runahead.Prefill;

namespace Runahead.Generation;

/// <summary>
/// Prefill spread over ranks (worker processes by default): each rank loads the model, the prompt is split over them
/// with <see cref="Strategy"/>, and the last rank, which holds the whole KV cache afterwards, decodes and streams the
/// tokens back. The coordinating process keeps only the tokenizer and the model's configuration.
/// </summary>
public sealed record ParallelGenerationOptions
{
    /// <summary>Ranks sharing the prefill (at least 1).</summary>
    public int Ranks { get; init; } = 2;

    public PrefillStrategyKind Strategy { get; init; } = PrefillStrategyKind.Kvr;

    /// <summary>How the prompt is split over the ranks; searched and predicted need <see cref="Planner"/>.</summary>
    public PartitionSpec Partition { get; init; } = PartitionSpec.Even;

    /// <summary>Shared memory between worker processes on this host (default), MPI (under mpiexec) or threads of this process.</summary>
    public RankTransport Transport { get; init; } = RankTransport.SharedMemory;

    /// <summary>Compute threads of each rank; null: cores / ranks, at least 1.</summary>
    public int? ThreadsPerRank { get; init; }

    /// <summary>
    /// Ring buffer of each shared-memory link in bytes (0: automatic, <see cref="RankPoolOptions.EffectiveRingBytes"/>).
    /// A KV-Runahead hand-off larger than half a ring travels in fragments as the receiver takes them.
    /// </summary>
    public long SharedMemoryRingBytes { get; init; }

    /// <summary>Emulated rank-to-rank links (bandwidth, latency, background traffic); null: the transport as it is.</summary>
    public LinkShaper? Links { get; init; }

    /// <summary>
    /// Answers <see cref="PartitionKind.Searched"/> and <see cref="PartitionKind.Predicted"/> with chunk sizes for
    /// (kind, prompt tokens, ranks), e.g. <see cref="CalibratedPlanner"/>; null: those partitions are an error.
    /// </summary>
    public Func<PartitionKind, int, int, int[]?>? Planner { get; init; }

    /// <summary>
    /// The `runahead` executable (apphost or runahead.dll) worker processes run; null: this process when it is
    /// runahead, else the one beside the application (referencing the Runahead.Cli project puts it there).
    /// </summary>
    public string? WorkerExecutable { get; init; }

    /// <summary>Where worker processes' own output goes (null: discarded).</summary>
    public TextWriter? WorkerLog { get; init; }

    /// <summary>Runs one short untimed job after starting the ranks so the first prompt's TTFT excludes JIT and first touches.</summary>
    public bool WarmUp { get; init; } = true;

    public int ResolveThreadsPerRank() => ThreadsPerRank ?? Math.Max(1, Environment.ProcessorCount / Math.Max(1, Ranks));

    /// <summary>Throws <see cref="RunaheadException"/> for settings no run could satisfy.</summary>
    public void Validate()
    {
        if (Ranks < 1) throw new RunaheadException($"--ranks: {Ranks} must be at least 1");
        if (ThreadsPerRank is < 1) throw new RunaheadException($"--threads-per-rank: {ThreadsPerRank} must be at least 1");
        if (Strategy == PrefillStrategyKind.Single && Ranks != 1)
            throw new RunaheadException($"--strategy single runs on one rank; use --strategy tsp, tsp-causal or kvr with --ranks {Ranks}");
        if (Links != null && Links.WorldSize != Ranks)
            throw new RunaheadException($"the link emulation is for {Links.WorldSize} ranks, not {Ranks}");
        ArgumentNullException.ThrowIfNull(Partition);
        if (SharedMemoryRingBytes != 0) RankPoolOptions.ValidateRingBytes(SharedMemoryRingBytes, Ranks);
    }
}
