using System.Buffers;
using System.Diagnostics;

namespace Runahead.Distributed;

/// <summary>
/// A rank attached to a <see cref="SharedMemorySegment"/>. Each directed link is a single-producer ring: the sender
/// writes a message once into the ring, the receiver reads it in place and frees it on dispose. Waiting spins briefly
/// then a per-rank waiter thread sleeps on the rank's doorbell futex; every wait also watches the segment's abort word, the peer's pid, the deadline and the
/// caller's token.
/// </summary>
internal sealed unsafe class SharedMemoryCommunicator : CommunicatorBase
{
    // Control block layout (one cache line per side, so sender and receiver do not share a line).
    private const int OffWritePos = 0, OffReadPos = 64;
    private const int FrameHeader = 64;
    private const int KindFrame = 1, KindWrap = 2;
    private static readonly long PeerCheckInterval = Stopwatch.Frequency / 20;
    private static readonly long IdlePoll = Stopwatch.Frequency / 10;
    private static readonly long SpinBelow = Stopwatch.Frequency / 5000; // 200 us: futex timeouts are not finer than that

    private readonly SharedMemorySegment _segment;
    private readonly LinkShaper? _shaper;
    private readonly Outbound?[] _out;
    private readonly Inbound?[] _in;
    private readonly bool _ownsSegment;
    private readonly int* _myBell;
    private readonly long[] _nextPeerCheck;
    private readonly List<PendingReceive> _pending = new();
    private Thread? _waiter;
    private bool _disposed;

    public SharedMemoryCommunicator(SharedMemorySegment segment, int rank, LinkShaper? shaper, TimeSpan receiveTimeout, bool ownsSegment)
        : base(rank, segment.WorldSize, receiveTimeout)
    {
        _segment = segment;
        _shaper = shaper;
        _ownsSegment = ownsSegment;
        _out = new Outbound?[WorldSize];
        _in = new Inbound?[WorldSize];
        _myBell = segment.Doorbell(rank);
        _nextPeerCheck = new long[WorldSize];
        for (int peer = 0; peer < WorldSize; peer++)
        {
            if (peer == rank) continue;
            _out[peer] = new Outbound(segment.Link(rank, peer), segment.RingBytes);
            _in[peer] = new Inbound(segment.Link(peer, rank), segment.RingBytes, segment, peer);
        }
        segment.AddUser();
        Prefault();
        segment.RegisterPid(rank, Environment.ProcessId);
    }

    /// <summary>
    /// Maps this rank's rings page by page now (start-up, outside any timed job) rather than on the first messages: a
    /// fault per 4 KiB page would otherwise delay the first hand-off of a run by milliseconds.
    /// </summary>
    private unsafe void Prefault()
    {
        const int page = 4096;
        long ring = _segment.RingBytes;
        int sink = 0;
        for (int peer = 0; peer < WorldSize; peer++)
        {
            if (peer == Rank) continue;
            // Only this rank writes its outbound ring's data, and nothing is published yet: writing zeros is safe.
            byte* outData = _out[peer]!.Data;
            for (long o = 0; o < ring; o += page) outData[o] = 0;
            // Inbound rings are the peer's to write: touch them by reading.
            byte* inData = _in[peer]!.Data;
            for (long o = 0; o < ring; o += page) sink += Volatile.Read(ref inData[o]);
        }
        GC.KeepAlive(sink);
    }

    /// <summary>Largest payload of one frame: half a ring, so a frame always fits once the receiver catches up.</summary>
    private long MaxFragment => _segment.RingBytes / 2 - FrameHeader;

    protected override ValueTask SendCoreAsync(int dest, int tag, ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        var link = _out[dest]!;
        // One message's fragments must be contiguous in the ring: the receiver reassembles them in order.
        lock (link)
        {
            ThrowIfAborted();
            long visibleAt = _shaper?.Schedule(Rank, dest, data.Length, PreciseWait.Now) ?? 0;
            long deadline = PreciseWait.Now + PreciseWait.FromTimeSpan(ReceiveTimeout);
            var span = data.Span;
            long offset = 0;
            do
            {
                int fragment = (int)Math.Min(span.Length - offset, MaxFragment);
                long frameBytes = FrameHeader + Align64(fragment);
                long pos = link.WritePos;
                long ringOffset = pos % link.RingBytes;
                long wrap = link.RingBytes - ringOffset < frameBytes ? link.RingBytes - ringOffset : 0;
                WaitForSpace(link, dest, pos + wrap + frameBytes, deadline, ct);
                if (wrap > 0)
                {
                    byte* w = link.Data + ringOffset;
                    *(int*)w = KindWrap;
                    *(long*)(w + 40) = wrap;
                    pos += wrap;
                    ringOffset = 0;
                }
                byte* h = link.Data + ringOffset;
                *(int*)h = KindFrame;
                *(int*)(h + 4) = tag;
                *(long*)(h + 8) = fragment;
                *(long*)(h + 16) = span.Length;
                *(long*)(h + 24) = visibleAt;
                *(long*)(h + 32) = offset;
                *(long*)(h + 40) = frameBytes;
                span.Slice((int)offset, fragment).CopyTo(new Span<byte>(h + FrameHeader, fragment));
                link.Publish(pos + frameBytes);
                _segment.Ring(dest);
                offset += fragment;
            }
            while (offset < span.Length);
        }
        return ValueTask.CompletedTask;
    }

    /// <summary>Blocks until the ring has room; rare (the receiver is a ring behind), so it keeps the calling thread.</summary>
    private void WaitForSpace(Outbound link, int dest, long end, long deadline, CancellationToken ct)
    {
        for (int spin = 0; ; spin++)
        {
            int bell = Volatile.Read(ref *_myBell);
            if (end - Volatile.Read(ref *link.ReadPos) <= link.RingBytes) return;
            ThrowIfAborted();
            ct.ThrowIfCancellationRequested();
            if (PreciseWait.Now > deadline)
                throw new RankTimeoutException(dest, $"rank {dest} did not take messages from rank {Rank} within {ReceiveTimeout.TotalSeconds:0.###} s (its ring buffer is full)");
            CheckPeerAlive(dest);
            if (spin < 64) Thread.SpinWait(32);
            else NativeMethods.Wait(_myBell, bell, 2000);
        }
    }

    protected override ValueTask<ReceivedTensor> ReceiveCoreAsync(int source, int tag, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        ThrowIfAborted();
        var link = _in[source]!;
        Inbound.Entry? entry = null;
        // Brief spin on the calling thread: a neighbour a few microseconds behind is cheaper to wait for than a handoff.
        for (int spin = 0; spin < 32 && entry == null; spin++)
        {
            lock (link)
            {
                link.Scan();
                if (!link.TryTake(tag, out entry)) link.RelievePressure();
            }
            if (entry == null) Thread.SpinWait(16);
        }
        if (entry != null && entry.VisibleAt <= PreciseWait.Now)
            return ValueTask.FromResult(new ReceivedTensor(source, tag, new Lease(link, entry)));
        var pending = new PendingReceive(link, source, tag, PreciseWait.Now + PreciseWait.FromTimeSpan(ReceiveTimeout)) { Entry = entry };
        // Registered before the waiter can see it, so the waiter always disposes the registration: a long-lived token
        // would otherwise collect one callback per receive.
        if (ct.CanBeCanceled) pending.Registration = ct.Register(() => pending.Completion.TrySetCanceled(ct));
        lock (_pending)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _pending.Add(pending);
            if (_waiter == null)
            {
                _waiter = new Thread(WaiterLoop) { IsBackground = true, Name = $"runahead-shm-rank{Rank}" };
                _waiter.Start();
            }
        }
        _segment.Ring(Rank);
        return new ValueTask<ReceivedTensor>(pending.Completion.Task);
    }

    /// <summary>
    /// Completes pending receives: sleeps on this rank's doorbell, wakes for each message, abort or freed space, and at
    /// the earliest paced delivery time. One thread per rank, so waiting never ties up thread-pool threads.
    /// </summary>
    private void WaiterLoop()
    {
        var snapshot = new List<PendingReceive>();
        while (true)
        {
            int bell = Volatile.Read(ref *_myBell);
            lock (_pending)
            {
                if (_disposed) break;
                _pending.RemoveAll(p => p.Completion.Task.IsCompleted && p.ReleaseIfAbandoned());
                snapshot.Clear();
                snapshot.AddRange(_pending);
            }
            long now = PreciseWait.Now;
            long wakeAt = now + IdlePoll;
            foreach (var p in snapshot)
            {
                if (p.Completion.Task.IsCompleted) continue;
                if (p.Entry == null)
                {
                    lock (p.Link)
                    {
                        p.Link.Scan();
                        if (!p.Link.TryTake(p.Tag, out p.Entry)) p.Link.RelievePressure();
                    }
                }
                if (p.Entry != null)
                {
                    if (p.Entry.VisibleAt <= PreciseWait.Now)
                    {
                        if (!p.Completion.TrySetResult(new ReceivedTensor(p.Source, p.Tag, new Lease(p.Link, p.Entry)))) p.Link.Release(p.Entry);
                        p.Entry = null;
                    }
                    else wakeAt = Math.Min(wakeAt, p.Entry.VisibleAt);
                    continue;
                }
                try
                {
                    ThrowIfAborted();
                    if (now > p.Deadline) throw new RankTimeoutException(p.Source, TimeoutMessage(p.Source, p.Tag));
                    CheckPeerAlive(p.Source);
                    wakeAt = Math.Min(wakeAt, now + PeerCheckInterval);
                }
                catch (RankFailedException e)
                {
                    p.Completion.TrySetException(e);
                }
            }
            long remaining = wakeAt - PreciseWait.Now;
            if (remaining <= 0) continue;
            if (remaining < SpinBelow) Thread.Yield();
            else NativeMethods.Wait(_myBell, bell, (int)Math.Min(100_000, (remaining - SpinBelow / 2) * 1_000_000 / Stopwatch.Frequency));
        }
        lock (_pending)
        {
            foreach (var p in _pending)
                if (p.Completion.TrySetException(new ObjectDisposedException(nameof(SharedMemoryCommunicator)))) p.ReleaseIfAbandoned();
            _pending.Clear();
        }
    }

    private void CheckPeerAlive(int peer)
    {
        long now = PreciseWait.Now;
        if (now < Volatile.Read(ref _nextPeerCheck[peer])) return;
        Volatile.Write(ref _nextPeerCheck[peer], now + PeerCheckInterval);
        int pid = _segment.PidOf(peer);
        if (pid != 0 && !NativeMethods.ProcessAlive(pid))
        {
            var reason = $"rank {peer} (pid {pid}) died";
            _segment.Abort(peer, reason);
            throw _segment.AbortException() ?? new RankFailedException(peer, reason);
        }
    }

    internal void ThrowIfAborted()
    {
        if (_segment.IsAborted) throw _segment.AbortException()!;
    }

    /// <summary>Marks this rank as the failed one for the whole group (its peers stop waiting within milliseconds).</summary>
    internal void Abort(string reason) => _segment.Abort(Rank, reason);

    public override void Dispose()
    {
        Thread? waiter;
        lock (_pending)
        {
            if (_disposed) return;
            _disposed = true;
            waiter = _waiter;
        }
        _segment.Ring(Rank);
        // The mapping stays until the waiter has stopped touching it, however long that takes.
        if (waiter != null && !waiter.Join(TimeSpan.FromSeconds(5))) return;
        _segment.RemoveUser();
        if (_ownsSegment) _segment.Dispose();
    }

    private sealed class PendingReceive(Inbound link, int source, int tag, long deadline)
    {
        public readonly Inbound Link = link;
        public readonly int Source = source;
        public readonly int Tag = tag;
        public readonly long Deadline = deadline;
        public readonly TaskCompletionSource<ReceivedTensor> Completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public Inbound.Entry? Entry;
        public CancellationTokenRegistration Registration;

        /// <summary>A receive cancelled after its message was taken drops that message, giving its ring space back.</summary>
        public bool ReleaseIfAbandoned()
        {
            Registration.Dispose();
            if (Entry != null)
            {
                Link.Release(Entry);
                Entry = null;
            }
            return true;
        }
    }

    private static long Align64(long n) => (n + 63) & ~63L;

    /// <summary>The sender's side of one link.</summary>
    private sealed class Outbound(byte* control, long ringBytes)
    {
        public readonly long RingBytes = ringBytes;
        public readonly byte* Data = control + SharedMemorySegment.LinkControlBytes;
        public readonly long* ReadPos = (long*)(control + OffReadPos);
        private readonly long* _writePos = (long*)(control + OffWritePos);

        public long WritePos => Volatile.Read(ref *_writePos);

        public void Publish(long writePos)
        {
            // The payload stores above happen before this release store; the receiver's acquire load pairs with it.
            Volatile.Write(ref *_writePos, writePos);
        }
    }

    /// <summary>
    /// The receiver's side of one link: frames already scanned but not yet consumed wait here per tag, in place when
    /// they fit in one frame, reassembled into pooled arrays when the sender had to fragment them.
    /// </summary>
    private sealed class Inbound(byte* control, long ringBytes, SharedMemorySegment segment, int sourceRank)
    {
        public readonly long RingBytes = ringBytes;
        public readonly byte* Data = control + SharedMemorySegment.LinkControlBytes;
        public readonly long* WritePos = (long*)(control + OffWritePos);
        private readonly long* _readPos = (long*)(control + OffReadPos);
        private readonly Dictionary<int, Queue<Entry>> _pending = new();
        private readonly Queue<Region> _regions = new();
        private long _scanPos;
        private byte[]? _partial;
        private int _partialTag;

        public sealed class Region(long end)
        {
            public readonly long End = end;
            public bool Released;
        }

        public sealed class Entry
        {
            public Region? Region;
            public byte* Pointer;
            public byte[]? Copy;
            public int Length;
            public long VisibleAt;
        }

        /// <summary>Walks frames published since the last scan (caller holds the lock).</summary>
        public void Scan()
        {
            long end = Volatile.Read(ref *WritePos);
            bool freed = false;
            while (_scanPos < end)
            {
                byte* h = Data + _scanPos % RingBytes;
                long frameBytes = *(long*)(h + 40);
                var region = new Region(_scanPos + frameBytes);
                _regions.Enqueue(region);
                _scanPos += frameBytes;
                if (*(int*)h == KindWrap)
                {
                    region.Released = freed = true;
                    continue;
                }
                int tag = *(int*)(h + 4);
                long fragment = *(long*)(h + 8), total = *(long*)(h + 16), visibleAt = *(long*)(h + 24), offset = *(long*)(h + 32);
                if (offset == 0 && fragment == total)
                {
                    Queue(tag).Enqueue(new Entry { Region = region, Pointer = h + FrameHeader, Length = (int)total, VisibleAt = visibleAt });
                    continue;
                }
                if (offset == 0)
                {
                    _partial = ArrayPool<byte>.Shared.Rent((int)total);
                    _partialTag = tag;
                }
                new ReadOnlySpan<byte>(h + FrameHeader, (int)fragment).CopyTo(_partial.AsSpan((int)offset));
                region.Released = freed = true;
                if (offset + fragment == total)
                {
                    Queue(_partialTag).Enqueue(new Entry { Copy = _partial, Length = (int)total, VisibleAt = visibleAt });
                    _partial = null;
                }
            }
            if (freed) AdvanceReadPos();
        }

        public bool TryTake(int tag, out Entry? entry)
        {
            entry = null;
            return _pending.TryGetValue(tag, out var q) && q.TryDequeue(out entry);
        }

        /// <summary>
        /// When unconsumed messages fill half the ring, copy them out: a sender blocked on a full ring behind messages
        /// for other tags would otherwise wait for a receive that waits for it.
        /// </summary>
        public void RelievePressure()
        {
            if (_scanPos - Volatile.Read(ref *_readPos) <= RingBytes / 2) return;
            foreach (var q in _pending.Values)
                foreach (var e in q)
                {
                    if (e.Region == null) continue;
                    e.Copy = ArrayPool<byte>.Shared.Rent(Math.Max(1, e.Length));
                    new ReadOnlySpan<byte>(e.Pointer, e.Length).CopyTo(e.Copy);
                    e.Region.Released = true;
                    e.Region = null;
                    e.Pointer = null;
                }
            AdvanceReadPos();
        }

        public void Release(Entry entry)
        {
            lock (this)
            {
                if (entry.Region != null)
                {
                    entry.Region.Released = true;
                    entry.Region = null;
                    AdvanceReadPos();
                }
                else if (entry.Copy != null)
                {
                    ArrayPool<byte>.Shared.Return(entry.Copy);
                    entry.Copy = null;
                }
            }
        }

        private Queue<Entry> Queue(int tag)
        {
            if (!_pending.TryGetValue(tag, out var q)) _pending[tag] = q = new Queue<Entry>();
            return q;
        }

        private void AdvanceReadPos()
        {
            long read = Volatile.Read(ref *_readPos), start = read;
            while (_regions.TryPeek(out var r) && r.Released)
            {
                read = r.End;
                _regions.Dequeue();
            }
            if (read == start) return;
            Volatile.Write(ref *_readPos, read);
            segment.Ring(sourceRank);
        }
    }

    private sealed class Lease(Inbound link, Inbound.Entry entry) : IMessageLease
    {
        private int _released;

        public ReadOnlySpan<byte> Bytes => entry.Region != null || entry.Copy == null
            ? new ReadOnlySpan<byte>(entry.Pointer, entry.Length)
            : entry.Copy.AsSpan(0, entry.Length);

        public bool InPlace => entry.Region != null;

        public void Release()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0) link.Release(entry);
        }
    }
}
