namespace Runahead.Distributed;

/// <summary>
/// The work one rank does, written by a strategy. The rank pool creates one instance per rank (in each worker process,
/// or per rank task with the in-process transport) through its public parameterless constructor, initialises it once
/// (model load: reported separately from TTFT), then runs many jobs on it.
/// </summary>
public interface IRankProgram : IDisposable
{
    /// <summary>Once per rank before any job: load the model, allocate caches.</summary>
    Task InitializeAsync(RankContext context, CancellationToken ct);

    /// <summary>
    /// One job (e.g. one prompt). Every rank receives the same <paramref name="request"/> bytes from the client and
    /// returns its own reply (may be empty); <see cref="RankContext.EmitAsync"/> streams messages before the reply.
    /// An exception fails the job on every rank and is reported to the client with this rank's number.
    /// </summary>
    Task<byte[]> RunJobAsync(RankContext context, ReadOnlyMemory<byte> request, CancellationToken ct);
}

/// <summary>What a rank program gets from its host.</summary>
public sealed class RankContext
{
    private readonly Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask> _emit;

    internal RankContext(ICommunicator communicator, RankLaunchSettings settings, Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask> emit)
    {
        Communicator = communicator;
        ModelPath = settings.ModelPath;
        ThreadsPerRank = settings.ThreadsPerRank;
        ProgramArguments = settings.ProgramArguments;
        _emit = emit;
    }

    public ICommunicator Communicator { get; }

    public int Rank => Communicator.Rank;

    public int WorldSize => Communicator.WorldSize;

    /// <summary>The model file every rank loads (all ranks hold the full weights), or null when the program needs none.</summary>
    public string? ModelPath { get; }

    /// <summary>Compute threads this rank may use.</summary>
    public int ThreadsPerRank { get; }

    /// <summary>Free-form settings from <see cref="RankPoolOptions.ProgramArguments"/> (e.g. strategy name, partition).</summary>
    public string ProgramArguments { get; }

    /// <summary>
    /// Streams a message to the client during a job (e.g. decoded tokens from the last rank); the client's
    /// <c>onEmit</c> callback sees it tagged with this rank before the job's replies complete.
    /// </summary>
    public ValueTask EmitAsync(ReadOnlyMemory<byte> message, CancellationToken ct) => _emit(message, ct);
}
