namespace Runahead.Prefill;

/// <summary>
/// The coordinator's handle on a set of ranks that execute <see cref="PrefillJob"/>s: worker processes of a rank pool,
/// or tasks of this process. Every rank receives the same request; each returns a reply, and ranks may stream
/// messages (tokens) before that.
/// </summary>
public interface IRankJobHost : IDisposable
{
    int Ranks { get; }

    /// <summary>
    /// False in the processes of an MPI job other than rank 0: every process runs the same command and takes part in
    /// each job, but only the client receives replies and streamed tokens (and should print anything).
    /// </summary>
    bool IsClient { get; }

    /// <summary>
    /// Runs one job on every rank; <paramref name="onEmit"/> sees streamed messages with the rank that sent them.
    /// Returns every rank's reply on the client (empty elsewhere).
    /// </summary>
    Task<IReadOnlyList<byte[]>> RunJobAsync(ReadOnlyMemory<byte> request, Action<int, ReadOnlyMemory<byte>> onEmit, CancellationToken ct);
}
