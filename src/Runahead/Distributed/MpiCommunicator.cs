using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace Runahead.Distributed;

/// <summary>
/// A rank of an MPI job (mpiexec / mpirun). Every MPI call runs on one dedicated thread (it also calls
/// MPI_Init_thread, so MPI_THREAD_FUNNELED suffices) that posts non-blocking operations and polls them with
/// MPI_Test/MPI_Iprobe, checking each caller's deadline and cancellation: nothing ever blocks inside MPI. Sends copy
/// the caller's data first, so they complete at once, as on the other transports.
/// </summary>
internal sealed class MpiCommunicator : CommunicatorBase
{
    private readonly MpiLibrary _mpi;
    private readonly LinkShaper? _shaper;
    private readonly Thread _thread;
    private readonly ConcurrentQueue<Operation> _incoming = new();
    private readonly ManualResetEventSlim _signal = new(false);
    private volatile bool _stopping;
    private volatile bool _broken;

    private MpiCommunicator(MpiLibrary mpi, Thread thread, int rank, int size, TimeSpan receiveTimeout, LinkShaper? shaper)
        : base(rank, size, receiveTimeout)
    {
        _mpi = mpi;
        _thread = thread;
        _shaper = shaper;
    }

    /// <summary>Initialises MPI on a fresh thread and returns this process's rank of MPI_COMM_WORLD.</summary>
    public static MpiCommunicator Start(TimeSpan receiveTimeout, LinkShaper? shaper)
    {
        var mpi = MpiLibrary.Load();
        var started = new TaskCompletionSource<MpiCommunicator>(TaskCreationOptions.RunContinuationsAsynchronously);
        Thread thread = null!;
        thread = new Thread(() =>
        {
            MpiCommunicator self;
            try
            {
                var (rank, size) = Initialise(mpi);
                if (shaper != null && shaper.WorldSize != size)
                    throw new RunaheadException($"--links: the link description covers {shaper.WorldSize} ranks, mpiexec started {size}");
                self = new MpiCommunicator(mpi, thread, rank, size, receiveTimeout, shaper);
            }
            catch (Exception e)
            {
                started.TrySetException(e);
                return;
            }
            started.TrySetResult(self);
            self.Run();
        })
        { IsBackground = true, Name = "runahead-mpi" };
        thread.Start();
        if (!started.Task.Wait(TimeSpan.FromSeconds(60)))
            throw new RunaheadException("--transport mpi: MPI_Init_thread did not return within 60 s (is this process started by mpiexec?)");
        return started.Task.GetAwaiter().GetResult();
    }

    private static unsafe (int Rank, int Size) Initialise(MpiLibrary mpi)
    {
        int provided, rank, size;
        Check(mpi.InitThread(null, 0, MpiLibrary.ThreadFunneled, &provided), "MPI_Init_thread");
        Check(mpi.CommRank(mpi.CommWorld, &rank), "MPI_Comm_rank");
        Check(mpi.CommSize(mpi.CommWorld, &size), "MPI_Comm_size");
        return (rank, size);
    }

    public string LibraryName => _mpi.Name;

    public bool IsOpenMpi => _mpi.IsOpenMpi;

    // ------------------------------------------------------------------ public operations

    protected override ValueTask SendCoreAsync(int dest, int tag, ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        ThrowIfBroken();
        ct.ThrowIfCancellationRequested();
        var copy = ArrayPool<byte>.Shared.Rent(Math.Max(1, data.Length));
        data.Span.CopyTo(copy);
        long visibleAt = _shaper?.Schedule(Rank, dest, data.Length, PreciseWait.Now) ?? 0;
        Enqueue(new SendOperation(dest, MpiTag(tag), copy, data.Length, visibleAt));
        return ValueTask.CompletedTask;
    }

    protected override ValueTask<ReceivedTensor> ReceiveCoreAsync(int source, int tag, CancellationToken ct)
    {
        ThrowIfBroken();
        var op = new ReceiveOperation(source, tag, MpiTag(tag), Deadline(), ct, TimeoutMessage(source, tag));
        Enqueue(op);
        return new ValueTask<ReceivedTensor>(op.Completion.Task);
    }

    public override async ValueTask AllGatherAsync(ReadOnlyMemory<float> mine, Memory<float> all, ReadOnlyMemory<int> counts, CancellationToken ct)
    {
        var offsets = CheckGather(mine.Length, all.Length, counts.Span);
        ThrowIfBroken();
        if (WorldSize == 1)
        {
            mine.CopyTo(all);
            return;
        }
        // The operation owns the pins: an all-gather abandoned after a failure keeps its buffers pinned for good,
        // because MPI may still write into them.
        var op = NewAllGather(mine.Pin(), mine.Length, all.Pin(), counts.ToArray(), offsets, ct);
        Enqueue(op);
        await op.Completion.Task.ConfigureAwait(false);
    }

    private AllGatherOperation NewAllGather(MemoryHandle mine, int mineCount, MemoryHandle all, int[] counts, int[] offsets, CancellationToken ct) =>
        new(mine, mineCount, all, counts, offsets, Deadline(), ct,
            $"an all-gather did not complete on rank {Rank} within {ReceiveTimeout.TotalSeconds:0.###} s (a rank did not join; MPI cannot say which)");

    public override async ValueTask BarrierAsync(CancellationToken ct)
    {
        ThrowIfBroken();
        if (WorldSize == 1) return;
        var op = new BarrierOperation(Deadline(), ct, $"a barrier did not complete on rank {Rank} within {ReceiveTimeout.TotalSeconds:0.###} s (a rank did not join; MPI cannot say which)");
        Enqueue(op);
        await op.Completion.Task.ConfigureAwait(false);
    }

    /// <summary>Ends the whole MPI job (every rank), as after a failure nothing else can unblock the peers.</summary>
    public unsafe void AbortJob(int errorCode)
    {
        _broken = true;
        _mpi.Abort(_mpi.CommWorld, errorCode);
    }

    internal void MarkBroken() => _broken = true;

    public override void Dispose()
    {
        if (_stopping) return;
        _stopping = true;
        _signal.Set();
        // Finalising waits for every rank to get here (see Run), so allow as long as a receive may wait.
        if (Thread.CurrentThread != _thread) _thread.Join(ReceiveTimeout + TimeSpan.FromSeconds(5));
    }

    // ------------------------------------------------------------------ the MPI thread

    private long Deadline() => PreciseWait.Now + PreciseWait.FromTimeSpan(ReceiveTimeout);

    private static int MpiTag(int tag) => tag >= 0 ? tag : CollectiveTag;

    /// <summary>
    /// Collectives built on point-to-point (none are, with native all-gather and barrier, but keep negative tags mapped):
    /// messages of one (source, tag) pair never overtake each other, so one tag serves every collective in order.
    /// </summary>
    private const int CollectiveTag = MaxTag + 2;

    private void Enqueue(Operation op)
    {
        _incoming.Enqueue(op);
        _signal.Set();
    }

    private void ThrowIfBroken()
    {
        if (_broken) throw new RankFailedException(-1, "the MPI communicator failed earlier (an operation timed out); the job must be restarted");
        ObjectDisposedException.ThrowIf(_stopping, this);
    }

    private unsafe void Run()
    {
        var active = new List<Operation>();
        var busy = new HashSet<(int, int)>();
        var status = stackalloc byte[256]; // larger than MPICH's and Open MPI's MPI_Status
        long idleSince = PreciseWait.Now;
        while (true)
        {
            // Read the flag before draining: every operation enqueued before Dispose is then seen and finished.
            bool stopping = _stopping;
            while (_incoming.TryDequeue(out var op)) active.Add(op);
            if (stopping && active.TrueForAll(o => o.Abandonable))
            {
                foreach (var o in active) o.Fail(new ObjectDisposedException(nameof(MpiCommunicator)));
                break;
            }
            bool progressed = false;
            long wakeAt = long.MaxValue;
            busy.Clear();
            for (int i = 0; i < active.Count; i++)
            {
                var op = active[i];
                bool done;
                try
                {
                    done = op.Progress(this, status, busy, ref wakeAt);
                }
                catch (Exception e)
                {
                    if (e is RankTimeoutException) _broken = op is not ReceiveOperation || _broken;
                    op.Fail(e);
                    done = true;
                }
                if (done)
                {
                    active.RemoveAt(i--);
                    progressed = true;
                }
            }
            long now = PreciseWait.Now;
            if (progressed) idleSince = now;
            if (active.Count == 0)
            {
                _signal.Wait(50);
                _signal.Reset();
                idleSince = PreciseWait.Now;
            }
            else if (wakeAt - now > PreciseWait.FromSeconds(0.002) && now - idleSince > IdleYieldSpan)
            {
                // Nothing moved for a while: poll every millisecond instead of spinning a core away from compute threads.
                // Before that, yield-poll as MPI libraries do: a KV hand-off is usually due within a layer's time.
                _signal.Wait(1);
                _signal.Reset();
            }
            else
            {
                Thread.Yield();
            }
        }
        // A send that MPI_Test called complete may still sit in this process's queues, and MPI_Finalize can block in
        // the launcher before pushing it out: meet every rank in a polled barrier first, then finalise.
        if (!_broken && FinalBarrier(status)) _mpi.Finalize();
    }

    private unsafe bool FinalBarrier(byte* status)
    {
        nint request;
        if (_mpi.Ibarrier(_mpi.CommWorld, &request) != 0) return false;
        long deadline = Deadline();
        while (PreciseWait.Now < deadline)
        {
            int done;
            if (_mpi.Test(&request, &done, status) != 0) return false;
            if (done != 0) return true;
            Thread.Sleep(1);
        }
        return false;
    }

    private static readonly long IdleYieldSpan = PreciseWait.FromSeconds(0.02);

    private static void Check(int code, string call)
    {
        if (code != 0) throw new RunaheadException($"--transport mpi: {call} failed with MPI error {code}");
    }

    private abstract unsafe class Operation
    {
        /// <summary>Advances the operation; true when it finished (completed or failed).</summary>
        public abstract bool Progress(MpiCommunicator c, byte* status, HashSet<(int, int)> busy, ref long wakeAt);

        public abstract void Fail(Exception e);

        /// <summary>MPI_Test of a posted request; MPI resets the handle when the request completes.</summary>
        protected static bool Completed(MpiCommunicator c, ref nint request, byte* status)
        {
            int done;
            nint r = request;
            Check(c._mpi.Test(&r, &done, status), "MPI_Test");
            request = r;
            return done != 0;
        }

        /// <summary>May be dropped at shutdown (nothing posted to MPI that still references our memory).</summary>
        public virtual bool Abandonable => true;
    }

    private sealed unsafe class SendOperation(int dest, int tag, byte[] buffer, int length, long visibleAt) : Operation
    {
        private GCHandle _pin;
        private nint _request;
        private bool _posted;

        public override bool Abandonable => false;

        public override bool Progress(MpiCommunicator c, byte* status, HashSet<(int, int)> busy, ref long wakeAt)
        {
            if (!_posted)
            {
                // Link emulation: the receiver must not see the message before its paced delivery time.
                if (visibleAt > PreciseWait.Now)
                {
                    wakeAt = Math.Min(wakeAt, visibleAt);
                    return false;
                }
                _pin = GCHandle.Alloc(buffer, GCHandleType.Pinned);
                nint request;
                Check(c._mpi.Isend((void*)_pin.AddrOfPinnedObject(), length, c._mpi.Byte, dest, tag, c._mpi.CommWorld, &request), "MPI_Isend");
                _request = request;
                _posted = true;
            }
            if (!Completed(c, ref _request, status)) return false;
            Release();
            return true;
        }

        public override void Fail(Exception e) => Release();

        private void Release()
        {
            if (_pin.IsAllocated) _pin.Free();
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private sealed unsafe class ReceiveOperation(int source, int userTag, int tag, long deadline, CancellationToken ct, string timeoutMessage) : Operation
    {
        private GCHandle _pin;
        private nint _request;
        private byte[]? _buffer;
        private int _length;

        public TaskCompletionSource<ReceivedTensor> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override bool Abandonable => _buffer == null;

        public override bool Progress(MpiCommunicator c, byte* status, HashSet<(int, int)> busy, ref long wakeAt)
        {
            if (_buffer == null)
            {
                // One receive per (source, tag) at a time, oldest first: messages match in the order they were sent.
                if (!busy.Add((source, tag))) return false;
                if (ct.IsCancellationRequested)
                {
                    Completion.TrySetCanceled(ct);
                    return true;
                }
                if (PreciseWait.Now > deadline) throw new RankTimeoutException(source, timeoutMessage);
                int flag;
                Check(c._mpi.Iprobe(source, tag, c._mpi.CommWorld, &flag, status), "MPI_Iprobe");
                if (flag == 0) return false;
                int count;
                Check(c._mpi.GetCount(status, c._mpi.Byte, &count), "MPI_Get_count");
                _length = count;
                _buffer = ArrayPool<byte>.Shared.Rent(Math.Max(1, count));
                _pin = GCHandle.Alloc(_buffer, GCHandleType.Pinned);
                nint request;
                Check(c._mpi.Irecv((void*)_pin.AddrOfPinnedObject(), count, c._mpi.Byte, source, tag, c._mpi.CommWorld, &request), "MPI_Irecv");
                _request = request;
            }
            busy.Add((source, tag));
            if (ct.IsCancellationRequested)
            {
                // The posted receive stays with MPI (its buffer stays pinned); the communicator is done.
                c._broken = true;
                _buffer = null;
                Completion.TrySetCanceled(ct);
                return true;
            }
            if (!Completed(c, ref _request, status)) return false;
            _pin.Free();
            var lease = new PooledLease(_buffer, _length);
            if (!Completion.TrySetResult(new ReceivedTensor(source, userTag, lease))) lease.Release();
            return true;
        }

        public override void Fail(Exception e)
        {
            // A posted receive may still be written by MPI: only an unposted one gives its buffer back.
            if (_buffer == null && _pin.IsAllocated) _pin.Free();
            Completion.TrySetException(e);
        }
    }

    /// <summary>
    /// A non-blocking collective: posted on first progress, then tested until done. A posted collective cannot be
    /// withdrawn: past the deadline or on cancellation the communicator is broken for good and its buffers stay pinned
    /// (MPI may still write into them); before posting, cancellation and failure release them.
    /// </summary>
    private abstract unsafe class CollectiveOperation(long deadline, CancellationToken ct, string timeoutMessage) : Operation
    {
        private nint _request;
        private bool _posted;

        public TaskCompletionSource Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override bool Abandonable => !_posted;

        /// <summary>Starts the collective and returns its MPI request.</summary>
        protected abstract nint Post(MpiCommunicator c);

        /// <summary>Frees what the operation pins, once MPI no longer uses it.</summary>
        protected virtual void Release() { }

        public override bool Progress(MpiCommunicator c, byte* status, HashSet<(int, int)> busy, ref long wakeAt)
        {
            if (!_posted)
            {
                if (ct.IsCancellationRequested)
                {
                    Release();
                    Completion.TrySetCanceled(ct);
                    return true;
                }
                _request = Post(c);
                _posted = true;
            }
            if (PreciseWait.Now > deadline) throw new RankTimeoutException(-1, timeoutMessage);
            if (ct.IsCancellationRequested)
            {
                c._broken = true;
                Completion.TrySetCanceled(ct);
                return true;
            }
            if (!Completed(c, ref _request, status)) return false;
            Release();
            Completion.TrySetResult();
            return true;
        }

        public override void Fail(Exception e)
        {
            if (!_posted) Release();
            Completion.TrySetException(e);
        }
    }

    private sealed unsafe class AllGatherOperation(MemoryHandle mine, int mineCount, MemoryHandle all, int[] counts, int[] offsets, long deadline, CancellationToken ct, string timeoutMessage)
        : CollectiveOperation(deadline, ct, timeoutMessage)
    {
        private GCHandle _counts, _offsets;

        protected override nint Post(MpiCommunicator c)
        {
            _counts = GCHandle.Alloc(counts, GCHandleType.Pinned);
            _offsets = GCHandle.Alloc(offsets, GCHandleType.Pinned);
            nint request;
            Check(c._mpi.Iallgatherv(mine.Pointer, mineCount, c._mpi.Float, all.Pointer, (int*)_counts.AddrOfPinnedObject(), (int*)_offsets.AddrOfPinnedObject(),
                c._mpi.Float, c._mpi.CommWorld, &request), "MPI_Iallgatherv");
            return request;
        }

        protected override void Release()
        {
            if (_counts.IsAllocated) _counts.Free();
            if (_offsets.IsAllocated) _offsets.Free();
            mine.Dispose();
            all.Dispose();
        }
    }

    private sealed unsafe class BarrierOperation(long deadline, CancellationToken ct, string timeoutMessage)
        : CollectiveOperation(deadline, ct, timeoutMessage)
    {
        protected override nint Post(MpiCommunicator c)
        {
            nint request;
            Check(c._mpi.Ibarrier(c._mpi.CommWorld, &request), "MPI_Ibarrier");
            return request;
        }
    }

    private sealed class PooledLease(byte[] buffer, int length) : IMessageLease
    {
        private byte[]? _buffer = buffer;

        public ReadOnlySpan<byte> Bytes => (_buffer ?? throw new ObjectDisposedException(nameof(ReceivedTensor))).AsSpan(0, length);

        public bool InPlace => false;

        public void Release()
        {
            var b = Interlocked.Exchange(ref _buffer, null);
            if (b != null) ArrayPool<byte>.Shared.Return(b);
        }
    }
}
