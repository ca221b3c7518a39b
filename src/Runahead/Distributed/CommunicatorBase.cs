using System.Runtime.InteropServices;

namespace Runahead.Distributed;

/// <summary>
/// Argument checks, deadlines and collectives built from point-to-point messages, shared by the transports. A transport
/// supplies raw tagged send/receive; collectives use negative tags (callers' tags are non-negative), numbered per call
/// so that consecutive collectives never mix.
/// </summary>
public abstract class CommunicatorBase : ICommunicator
{
    private int _collectiveSequence;

    protected CommunicatorBase(int rank, int worldSize, TimeSpan receiveTimeout)
    {
        if (worldSize < 1) throw new ArgumentOutOfRangeException(nameof(worldSize), "world size must be at least 1");
        if ((uint)rank >= (uint)worldSize) throw new ArgumentOutOfRangeException(nameof(rank), $"rank {rank} outside 0..{worldSize - 1}");
        Rank = rank;
        WorldSize = worldSize;
        ReceiveTimeout = receiveTimeout;
    }

    /// <summary>Largest caller tag: MPI guarantees tags up to 32767 only, and the transports keep a few above this.</summary>
    public const int MaxTag = 32000;

    /// <summary>Long enough for a slow rank to finish a big prefill before its neighbour gives up on it.</summary>
    public static readonly TimeSpan DefaultReceiveTimeout = TimeSpan.FromSeconds(120);

    public int Rank { get; }

    public int WorldSize { get; }

    public int PrevRank => Rank == 0 ? -1 : Rank - 1;

    public int NextRank => Rank == WorldSize - 1 ? -1 : Rank + 1;

    public TimeSpan ReceiveTimeout { get; set; }

    public ValueTask SendAsync(int dest, int tag, ReadOnlyMemory<float> data, CancellationToken ct)
    {
        CheckPeer(dest, nameof(dest));
        CheckTag(tag);
        return SendCoreAsync(dest, tag, AsBytes(data), ct);
    }

    public ValueTask SendBytesAsync(int dest, int tag, ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        CheckPeer(dest, nameof(dest));
        CheckTag(tag);
        return SendCoreAsync(dest, tag, data, ct);
    }

    public ValueTask<ReceivedTensor> ReceiveAsync(int source, int tag, CancellationToken ct)
    {
        CheckPeer(source, nameof(source));
        CheckTag(tag);
        return ReceiveCoreAsync(source, tag, ct);
    }

    public virtual async ValueTask AllGatherAsync(ReadOnlyMemory<float> mine, Memory<float> all, ReadOnlyMemory<int> counts, CancellationToken ct)
    {
        var offsets = CheckGather(mine.Length, all.Length, counts.Span);
        int tag = NextCollectiveTag();
        mine.CopyTo(all.Slice(offsets[Rank], mine.Length));
        if (WorldSize == 1) return;
        // Sends run beside the receives: with bounded transport buffers, two ranks each blocked sending a large
        // contribution to the other would otherwise wait forever.
        var bytes = AsBytes(mine);
        var sends = Task.Run(async () =>
        {
            for (int step = 1; step < WorldSize; step++)
                await SendCoreAsync((Rank + step) % WorldSize, tag, bytes, ct).ConfigureAwait(false);
        }, ct);
        try
        {
            for (int step = 1; step < WorldSize; step++)
            {
                int source = (Rank - step + WorldSize) % WorldSize;
                using var received = await ReceiveCoreAsync(source, tag, ct).ConfigureAwait(false);
                var data = received.Data;
                if (data.Length != counts.Span[source])
                    throw new RankFailedException(source, $"rank {source} contributed {data.Length} floats to an all-gather, rank {Rank} expected {counts.Span[source]}");
                data.CopyTo(all.Span.Slice(offsets[source], data.Length));
            }
        }
        finally
        {
            // Surface a send failure, but never leave the send task running unobserved.
            await sends.ConfigureAwait(false);
        }
    }

    public virtual async ValueTask BarrierAsync(CancellationToken ct)
    {
        int tag = NextCollectiveTag();
        if (WorldSize == 1) return;
        for (int step = 1; step < WorldSize; step++)
            await SendCoreAsync((Rank + step) % WorldSize, tag, ReadOnlyMemory<byte>.Empty, ct).ConfigureAwait(false);
        for (int step = 1; step < WorldSize; step++)
        {
            using var _ = await ReceiveCoreAsync((Rank - step + WorldSize) % WorldSize, tag, ct).ConfigureAwait(false);
        }
    }

    /// <summary>Point-to-point on tags above <see cref="MaxTag"/>, reserved for the runtime's own control messages.</summary>
    internal ValueTask SendReservedAsync(int dest, int tag, ReadOnlyMemory<byte> data, CancellationToken ct) => SendCoreAsync(dest, tag, data, ct);

    internal ValueTask<ReceivedTensor> ReceiveReservedAsync(int source, int tag, CancellationToken ct) => ReceiveCoreAsync(source, tag, ct);

    /// <summary>Copies or writes <paramref name="data"/> toward <paramref name="dest"/>; returns when the caller's buffer is free.</summary>
    protected abstract ValueTask SendCoreAsync(int dest, int tag, ReadOnlyMemory<byte> data, CancellationToken ct);

    /// <summary>Next message from (source, tag), honouring <see cref="ReceiveTimeout"/>, peer failure and cancellation.</summary>
    protected abstract ValueTask<ReceivedTensor> ReceiveCoreAsync(int source, int tag, CancellationToken ct);

    public abstract void Dispose();

    protected int NextCollectiveTag() => -1 - (Interlocked.Increment(ref _collectiveSequence) & 0x3FFFFFFF);

    protected int[] CheckGather(int mineLength, int allLength, ReadOnlySpan<int> counts)
    {
        if (counts.Length != WorldSize)
            throw new ArgumentException($"all-gather needs {WorldSize} counts, got {counts.Length}", nameof(counts));
        var offsets = new int[WorldSize];
        long total = 0;
        for (int r = 0; r < WorldSize; r++)
        {
            if (counts[r] < 0) throw new ArgumentException($"all-gather count of rank {r} is negative", nameof(counts));
            offsets[r] = (int)total;
            total += counts[r];
        }
        if (counts[Rank] != mineLength)
            throw new ArgumentException($"rank {Rank} contributes {mineLength} floats but counts[{Rank}] = {counts[Rank]}", "mine");
        if (total != allLength)
            throw new ArgumentException($"all-gather output holds {allLength} floats, the counts sum to {total}", "all");
        return offsets;
    }

    protected string TimeoutMessage(int source, int tag) => tag >= 0
        ? $"rank {source} sent nothing with tag {tag} to rank {Rank} within {ReceiveTimeout.TotalSeconds:0.###} s"
        : $"rank {source} did not reach a collective with rank {Rank} within {ReceiveTimeout.TotalSeconds:0.###} s";

    protected static ReadOnlyMemory<byte> AsBytes(ReadOnlyMemory<float> data)
    {
        if (data.IsEmpty) return ReadOnlyMemory<byte>.Empty;
        if (MemoryMarshal.TryGetArray(data, out var segment))
            return new FloatBytesMemoryManager(segment.Array!, segment.Offset, segment.Count).Memory;
        // Native or otherwise unusual memory: one copy is the honest fallback.
        var copy = MemoryMarshal.AsBytes(data.Span).ToArray();
        return copy;
    }

    private void CheckPeer(int peer, string name)
    {
        if ((uint)peer >= (uint)WorldSize)
            throw new ArgumentOutOfRangeException(name, $"rank {peer} outside 0..{WorldSize - 1}");
        if (peer == Rank)
            throw new ArgumentException($"rank {Rank} cannot message itself", name);
    }

    private static void CheckTag(int tag)
    {
        if (tag < 0 || tag > MaxTag)
            throw new ArgumentOutOfRangeException(nameof(tag), $"tag {tag} outside 0..{MaxTag} (negative tags are reserved for collectives)");
    }
}
