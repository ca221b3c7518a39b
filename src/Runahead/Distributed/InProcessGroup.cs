using System.Buffers;
using System.Threading.Channels;

namespace Runahead.Distributed;

/// <summary>
/// A process group whose ranks are threads (tasks) of this process: messages are copied into pooled arrays and handed
/// over through per-(source, destination, tag) channels. Used to test strategies quickly, without worker processes.
/// </summary>
public sealed class InProcessGroup : IDisposable
{
    private readonly InProcessCommunicator[] _members;
    private readonly CancellationTokenSource _failed = new();
    private volatile string? _failure;
    private int _failedRank = -1;
    private int _failing;

    public InProcessGroup(int worldSize, LinkShaper? shaper = null, TimeSpan? receiveTimeout = null)
    {
        if (worldSize < 1) throw new ArgumentOutOfRangeException(nameof(worldSize), "world size must be at least 1");
        if (shaper != null && shaper.WorldSize < worldSize)
            throw new ArgumentException($"link shaper covers {shaper.WorldSize} ranks, the group has {worldSize}", nameof(shaper));
        Shaper = shaper;
        _members = new InProcessCommunicator[worldSize];
        for (int r = 0; r < worldSize; r++)
            _members[r] = new InProcessCommunicator(this, r, worldSize, receiveTimeout ?? CommunicatorBase.DefaultReceiveTimeout);
    }

    public int WorldSize => _members.Length;

    internal LinkShaper? Shaper { get; }

    public ICommunicator this[int rank] => _members[rank];

    public IReadOnlyList<ICommunicator> Communicators => _members;

    /// <summary>
    /// Marks <paramref name="rank"/> as failed: every pending and later operation on every member throws a
    /// <see cref="RankFailedException"/> naming it, as when a worker process dies.
    /// </summary>
    public void Fail(int rank, string reason)
    {
        // Only the first failure counts: later ones are its consequences. (-1, the client, is a valid failed rank.)
        if (Interlocked.Exchange(ref _failing, 1) != 0) return;
        _failedRank = rank;
        _failure = reason;
        _failed.Cancel();
    }

    /// <summary>
    /// Runs <paramref name="body"/> once per rank, concurrently. A rank that throws fails the group so its peers stop
    /// waiting for it; the first failure (the root cause, not the peers' reports of it) is rethrown.
    /// </summary>
    public async Task RunAsync(Func<ICommunicator, CancellationToken, Task> body, CancellationToken ct)
    {
        var tasks = new Task[WorldSize];
        for (int r = 0; r < WorldSize; r++)
        {
            var member = _members[r];
            tasks[r] = Task.Run(async () =>
            {
                try
                {
                    await body(member, ct).ConfigureAwait(false);
                }
                catch (Exception e) when (e is not RankFailedException || !IsFailed)
                {
                    Fail(member.Rank, $"rank {member.Rank} failed: {e.Message}");
                    throw;
                }
            }, ct);
        }
        try
        {
            await Task.WhenAll(tasks).ConfigureAwait(false);
        }
        catch
        {
            for (int r = 0; r < WorldSize; r++)
                if (r == _failedRank && tasks[r].IsFaulted) throw tasks[r].Exception!.InnerException!;
            throw;
        }
    }

    internal bool IsFailed => _failure != null;

    internal CancellationToken FailedToken => _failed.Token;

    internal RankFailedException FailureException() => new(_failedRank, _failure ?? $"rank {_failedRank} failed");

    internal InProcessCommunicator Member(int rank) => _members[rank];

    public void Dispose()
    {
        foreach (var m in _members) m.DrainMailboxes();
        _failed.Dispose();
    }
}

/// <summary>One rank of an <see cref="InProcessGroup"/>.</summary>
internal sealed class InProcessCommunicator : CommunicatorBase
{
    private readonly InProcessGroup _group;
    private readonly Dictionary<(int Source, int Tag), Channel<PooledMessage>> _inbox = new();

    public InProcessCommunicator(InProcessGroup group, int rank, int worldSize, TimeSpan receiveTimeout)
        : base(rank, worldSize, receiveTimeout) => _group = group;

    private Channel<PooledMessage> Inbox(int source, int tag)
    {
        lock (_inbox)
        {
            if (!_inbox.TryGetValue((source, tag), out var channel))
            {
                channel = Channel.CreateUnbounded<PooledMessage>(new UnboundedChannelOptions { SingleReader = false, SingleWriter = false });
                _inbox[(source, tag)] = channel;
            }
            return channel;
        }
    }

    protected override ValueTask SendCoreAsync(int dest, int tag, ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        if (_group.IsFailed) throw _group.FailureException();
        var buffer = ArrayPool<byte>.Shared.Rent(Math.Max(1, data.Length));
        data.Span.CopyTo(buffer);
        long visibleAt = _group.Shaper?.Schedule(Rank, dest, data.Length, PreciseWait.Now) ?? 0;
        var message = new PooledMessage(buffer, data.Length, visibleAt);
        if (!_group.Member(dest).Inbox(Rank, tag).Writer.TryWrite(message)) message.Release();
        return ValueTask.CompletedTask;
    }

    protected override async ValueTask<ReceivedTensor> ReceiveCoreAsync(int source, int tag, CancellationToken ct)
    {
        var reader = Inbox(source, tag).Reader;
        if (!reader.TryRead(out var message))
        {
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, _group.FailedToken);
            linked.CancelAfter(ReceiveTimeout);
            try
            {
                message = await reader.ReadAsync(linked.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                if (_group.IsFailed) throw _group.FailureException();
                throw new RankTimeoutException(source, TimeoutMessage(source, tag));
            }
        }
        if (message.VisibleAt > 0)
        {
            try
            {
                await PreciseWait.UntilAsync(message.VisibleAt, ct).ConfigureAwait(false);
            }
            catch
            {
                message.Release();
                throw;
            }
        }
        return new ReceivedTensor(source, tag, message);
    }

    internal void DrainMailboxes()
    {
        lock (_inbox)
        {
            foreach (var channel in _inbox.Values)
                while (channel.Reader.TryRead(out var m)) m.Release();
        }
    }

    public override void Dispose() { }

    private sealed class PooledMessage(byte[] buffer, int length, long visibleAt) : IMessageLease
    {
        private byte[]? _buffer = buffer;

        public long VisibleAt { get; } = visibleAt;

        public bool InPlace => false;

        public ReadOnlySpan<byte> Bytes => (_buffer ?? throw new ObjectDisposedException(nameof(ReceivedTensor))).AsSpan(0, length);

        public void Release()
        {
            var b = Interlocked.Exchange(ref _buffer, null);
            if (b != null) ArrayPool<byte>.Shared.Return(b);
        }
    }
}
