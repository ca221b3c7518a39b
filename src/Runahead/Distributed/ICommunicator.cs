namespace Runahead.Distributed;

/// <summary>
/// A rank's view of its process group: tagged point-to-point messages plus the two collectives the strategies need.
/// Strategies see only this interface; the transport (in-process threads, shared memory, MPI) and any link emulation
/// sit behind it.
/// </summary>
/// <remarks>
/// Tags are 0..<see cref="CommunicatorBase.MaxTag"/> (32000) and chosen by the caller; messages between one (source, destination) pair with one tag arrive
/// in the order they were sent, while different tags may be received in any order. Every wait honours the
/// <see cref="CancellationToken"/> and <see cref="ReceiveTimeout"/>; a dead or silent peer surfaces as a
/// <see cref="RankFailedException"/> naming that peer, never as a hang. Collectives must be called by every rank in the
/// same order.
/// </remarks>
public interface ICommunicator : IDisposable
{
    int Rank { get; }

    int WorldSize { get; }

    /// <summary>Rank - 1, or -1 on rank 0.</summary>
    int PrevRank { get; }

    /// <summary>Rank + 1, or -1 on the last rank.</summary>
    int NextRank { get; }

    /// <summary>The longest a single receive, collective or send (waiting for buffer space) may wait.</summary>
    TimeSpan ReceiveTimeout { get; set; }

    /// <summary>
    /// Sends floats to <paramref name="dest"/>. Completes once <paramref name="data"/> may be reused; delivery (and any
    /// emulated link pacing) continues in the background.
    /// </summary>
    ValueTask SendAsync(int dest, int tag, ReadOnlyMemory<float> data, CancellationToken ct);

    /// <summary>Byte variant of <see cref="SendAsync"/>; shares the tag space with float messages.</summary>
    ValueTask SendBytesAsync(int dest, int tag, ReadOnlyMemory<byte> data, CancellationToken ct);

    /// <summary>
    /// Receives the next message from <paramref name="source"/> with <paramref name="tag"/>. The payload may live in
    /// place in a shared segment: read it before disposing the result, which hands the space back to the sender.
    /// </summary>
    ValueTask<ReceivedTensor> ReceiveAsync(int source, int tag, CancellationToken ct);

    /// <summary>
    /// Every rank contributes <paramref name="mine"/> (length counts[Rank]); afterwards <paramref name="all"/> holds the
    /// contributions concatenated in rank order (length = sum of counts). Counts may differ per rank.
    /// </summary>
    ValueTask AllGatherAsync(ReadOnlyMemory<float> mine, Memory<float> all, ReadOnlyMemory<int> counts, CancellationToken ct);

    /// <summary>Completes once every rank has entered the barrier.</summary>
    ValueTask BarrierAsync(CancellationToken ct);
}
