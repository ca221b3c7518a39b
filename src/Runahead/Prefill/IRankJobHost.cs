namespace Runahead.Prefill;

/// <summary>
/// The coordinator's handle on a set of ranks that execute <see cref="PrefillJob"/>s: worker processes of a rank pool,
/// or tasks of this process. Every rank receives the same request; each returns a reply, and ranks may stream
/// messages (tokens) before that.
/// </summary>
public interface IRankJobHost : IDisposable
{
    int Ranks { get; }

    /// <summary>Runs one job on every rank; <paramref name="onEmit"/> sees streamed messages with the rank that sent them.</summary>
    Task<IReadOnlyList<byte[]>> RunJobAsync(ReadOnlyMemory<byte> request, Action<int, ReadOnlyMemory<byte>> onEmit, CancellationToken ct);
}
