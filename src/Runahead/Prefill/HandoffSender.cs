using System.Runtime.ExceptionServices;
using Runahead.Diagnostics;
using Runahead.Distributed;

namespace Runahead.Prefill;

/// <summary>
/// The KV-Runahead hand-offs of one rank to the next: one message per layer ([K rows | V rows] of [0, S_i)), each kept
/// alive until the transport is done with it, sent in layer order by a dedicated thread so that the rank's compute
/// loop never waits for a send (the paper's asynchronous send) except once, at the end of the prefill.
/// </summary>
/// <remarks>
/// A dedicated thread, because the shared-memory transport copies a message into the link's ring on the calling
/// thread and blocks it while the ring is full (until the next rank takes that layer). Messages come from a pool that
/// grows on demand up to <see cref="MaxInFlight"/> buffers and is kept across jobs: with rings that hold a layer's
/// message a send finishes during the layer's attention and two buffers go round; behind a slow next rank the pool
/// grows toward one buffer per layer, i.e. the rank's share of a KV cache, which the paper's ranks hold anyway.
/// Not thread-safe towards its caller: one job at a time, driven by one compute loop.
/// </remarks>
internal sealed class HandoffSender
{
    private readonly object _gate = new();
    private readonly Stack<float[]> _free = new();
    private readonly Queue<(int Layer, float[] Message)> _queue = new();
    private readonly List<TimelineSpan> _transfers = new();
    private int _buffers;          // pooled buffers alive: free, queued or being sent
    private int _bufferLength;     // every pooled buffer has this length

    // Per job.
    private ICommunicator? _communicator;
    private int _dest, _rank, _messageLength, _limit;
    private CancellationTokenSource? _stop;
    private Task? _thread;
    private bool _closed;
    private volatile Exception? _failure;
    private TaskCompletionSource? _bufferReturned;
    private float[]? _held;        // rented by the compute loop, not posted yet (back to the pool if the job fails first)

    /// <param name="maxInFlight">Most messages alive at once; 0: one per layer of the job (the compute loop never waits).</param>
    public HandoffSender(int maxInFlight = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxInFlight);
        MaxInFlight = maxInFlight;
    }

    /// <summary>Most messages alive at once (0: as many as the job has layers).</summary>
    public int MaxInFlight { get; }

    /// <summary>Pooled message buffers currently allocated (for tests and memory accounting).</summary>
    public int PooledBuffers
    {
        get { lock (_gate) return _buffers; }
    }

    /// <summary>Starts the sending thread for one job: messages of <paramref name="messageLength"/> floats to <paramref name="dest"/>.</summary>
    public void Begin(ICommunicator communicator, int dest, int messageLength, int layers, CancellationToken ct)
    {
        if (_thread != null) throw new InvalidOperationException("a hand-off sender serves one job at a time");
        lock (_gate)
        {
            if (_bufferLength < messageLength)
            {
                // Longer prompt than any before: the old buffers are too short for it, and a pool keeps one size.
                _buffers -= _free.Count;
                _free.Clear();
                _bufferLength = messageLength;
            }
            _communicator = communicator;
            _dest = dest;
            _rank = communicator.Rank;
            _messageLength = messageLength;
            _limit = MaxInFlight > 0 ? MaxInFlight : Math.Max(1, layers);
            _closed = false;
            _failure = null;
            _transfers.Clear();
        }
        _stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        _thread = Task.Factory.StartNew(SendLoop, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    /// <summary>
    /// A buffer for the next layer's message (length at least the job's message length). Waits only when
    /// <see cref="MaxInFlight"/> messages are still with the transport; a send failure ends the wait with that failure.
    /// </summary>
    public async ValueTask<float[]> RentAsync(CancellationToken ct)
    {
        while (true)
        {
            Task returned;
            lock (_gate)
            {
                ThrowIfFailed();
                if (_held != null) throw new InvalidOperationException("post the previous layer's message before renting the next");
                if (_free.TryPop(out var buffer)) return _held = buffer;
                if (_buffers < _limit)
                {
                    _buffers++;
                    return _held = new float[_bufferLength];
                }
                _bufferReturned ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                returned = _bufferReturned.Task;
            }
            await returned.WaitAsync(ct).ConfigureAwait(false);
        }
    }

    /// <summary>Queues layer <paramref name="layer"/>'s message (from <see cref="RentAsync"/>); the caller may keep reading it.</summary>
    public void Post(int layer, float[] message)
    {
        lock (_gate)
        {
            if (!ReferenceEquals(message, _held)) throw new InvalidOperationException("post the message the last rent returned");
            _held = null;
            if (_failure != null) _free.Push(message);
            else
            {
                _queue.Enqueue((layer, message));
                Monitor.Pulse(_gate);
            }
        }
        ThrowIfFailed();
    }

    /// <summary>Rethrows a failed send (a <see cref="RankFailedException"/> naming the peer, as the transport raised it).</summary>
    private void ThrowIfFailed()
    {
        var failure = _failure;
        if (failure != null) ExceptionDispatchInfo.Capture(failure).Throw();
    }

    /// <summary>
    /// Waits until every posted message is with the transport and stops the thread; rethrows a send failure. Adds the
    /// background copies to <paramref name="recorder"/>'s transfer lane.
    /// </summary>
    public async Task FinishAsync(RankRecorder recorder)
    {
        Close();
        await End(recorder).ConfigureAwait(false);
        ThrowIfFailed();
    }

    /// <summary>After a failure or cancellation of the job: drops unsent messages and waits for the thread to stop.</summary>
    public async Task AbortAsync(RankRecorder recorder)
    {
        _stop?.Cancel();
        Close();
        try
        {
            await End(recorder).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // The job already fails with its own exception; a send that failed on the way out is its consequence.
        }
    }

    private void Close()
    {
        lock (_gate)
        {
            _closed = true;
            Monitor.Pulse(_gate);
        }
    }

    private async Task End(RankRecorder recorder)
    {
        var thread = _thread;
        if (thread == null) return;
        try
        {
            await thread.ConfigureAwait(false);
        }
        finally
        {
            _thread = null;
            _stop?.Dispose();
            _stop = null;
            _communicator = null;
            lock (_gate)
            {
                // Anything never sent (or never posted) goes back to the pool for the next job.
                while (_queue.TryDequeue(out var item)) _free.Push(item.Message);
                if (_held != null) _free.Push(_held);
                _held = null;
                foreach (var s in _transfers) recorder.Add(s);
                _transfers.Clear();
            }
        }
    }

    /// <summary>The dedicated thread: sends queued messages in order, returning each buffer once the transport is done.</summary>
    private void SendLoop()
    {
        var communicator = _communicator!;
        var stop = _stop!.Token;
        while (true)
        {
            (int Layer, float[] Message) item;
            lock (_gate)
            {
                while (_queue.Count == 0 && !_closed) Monitor.Wait(_gate);
                if (!_queue.TryDequeue(out item)) return;
            }
            if (_failure == null && !stop.IsCancellationRequested)
            {
                try
                {
                    long start = RankRecorder.Now();
                    var send = communicator.SendAsync(_dest, item.Layer, item.Message.AsMemory(0, _messageLength), stop);
                    // Blocking is what this thread is for; every transport completes its sends synchronously today.
                    if (!send.IsCompletedSuccessfully) send.AsTask().GetAwaiter().GetResult();
                    long end = RankRecorder.Now();
                    lock (_gate) _transfers.Add(new TimelineSpan(_rank, item.Layer, SpanKind.Transfer, start, end));
                }
                catch (Exception e)
                {
                    _failure ??= e;
                }
            }
            Return(item.Message);
        }
    }

    private void Return(float[] message)
    {
        TaskCompletionSource? waiter;
        lock (_gate)
        {
            if (message.Length == _bufferLength) _free.Push(message);
            else _buffers--;
            waiter = _bufferReturned;
            _bufferReturned = null;
        }
        waiter?.TrySetResult();
    }
}
