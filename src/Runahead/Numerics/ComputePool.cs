using System.Diagnostics;
using System.Runtime.ExceptionServices;

namespace Runahead.Numerics;

/// <summary>A unit of parallel work: <see cref="Run"/> is called once per item, on any pool thread.</summary>
public interface IParallelWork
{
    /// <param name="item">Item index in [0, count).</param>
    /// <param name="worker">Index of the executing thread in [0, pool.Threads): lets work keep per-thread scratch.</param>
    void Run(int item, int worker);
}

/// <summary>
/// A persistent pool of compute threads: <see cref="ComputePool.Threads"/> - 1 dedicated workers plus the caller.
/// <see cref="For(int, IParallelWork)"/> hands out items dynamically (an atomic counter) and returns when all are done.
/// Workers spin briefly after each job, because inference issues jobs back to back, then park so an idle pool costs
/// nothing. A call made while the pool is busy (nested, or from another thread) runs inline on the calling thread.
/// </summary>
public sealed class ComputePool : IDisposable
{
    // Long enough to bridge the gap between consecutive kernels of one layer, short enough not to burn a shared core.
    private static readonly long SpinTicks = Stopwatch.Frequency / 20_000; // 50 µs
    private static readonly TimeSpan ParkTimeout = TimeSpan.FromMilliseconds(200);

    private readonly Thread[] _workers;
    private readonly object _wakeLock = new();
    private readonly object _doneLock = new();
    private int _busy; // 1 while a job runs; not a Monitor, because a nested call on the caller thread must not re-enter
    private readonly ActionWork _actionWork = new();

    private long _generation;
    private int _parkedWorkers;
    private bool _callerParked;
    private volatile bool _disposed;

    // The current job; written by the caller before _generation is bumped, read by workers after they see it.
    private IParallelWork? _work;
    private int _count;
    private int _next;
    private int _pendingWorkers;
    private ExceptionDispatchInfo? _failure;

    public int Threads { get; }

    public ComputePool(int threads)
    {
        if (threads < 1) throw new ArgumentOutOfRangeException(nameof(threads), "threads must be >= 1");
        Threads = threads;
        _workers = new Thread[threads - 1];
        for (int i = 0; i < _workers.Length; i++)
        {
            int worker = i + 1;
            _workers[i] = new Thread(() => WorkerLoop(worker))
            {
                IsBackground = true,
                Name = $"runahead-compute-{worker}",
            };
            _workers[i].Start();
        }
    }

    /// <summary>A pool without workers: everything runs on the caller.</summary>
    public static ComputePool Single { get; } = new(1);

    /// <summary>Runs body(i) for i in [0, count).</summary>
    public void For(int count, Action<int> body)
    {
        ArgumentNullException.ThrowIfNull(body);
        if (!CanRunParallel(count))
        {
            for (int i = 0; i < count; i++) body(i);
            return;
        }
        // The adapter is owned by the pool and only used while _busy is held, so no per-call allocation.
        if (!TryAcquire())
        {
            for (int i = 0; i < count; i++) body(i);
            return;
        }
        try
        {
            _actionWork.Body = body;
            RunLocked(count, _actionWork);
        }
        finally
        {
            _actionWork.Body = null;
            Volatile.Write(ref _busy, 0);
        }
    }

    /// <summary>Runs work.Run(i, worker) for i in [0, count); allocation-free.</summary>
    public void For(int count, IParallelWork work)
    {
        ArgumentNullException.ThrowIfNull(work);
        if (!CanRunParallel(count) || !TryAcquire())
        {
            RunInline(count, work);
            return;
        }
        try
        {
            RunLocked(count, work);
        }
        finally
        {
            Volatile.Write(ref _busy, 0);
        }
    }

    private bool TryAcquire() => Interlocked.CompareExchange(ref _busy, 1, 0) == 0;

    private bool CanRunParallel(int count) => Threads > 1 && count > 1 && !_disposed;

    private static void RunInline(int count, IParallelWork work)
    {
        for (int i = 0; i < count; i++) work.Run(i, 0);
    }

    private void RunLocked(int count, IParallelWork work)
    {
        _work = work;
        _count = count;
        _next = 0;
        _failure = null;
        _pendingWorkers = _workers.Length;
        Interlocked.Increment(ref _generation);
        if (Volatile.Read(ref _parkedWorkers) > 0)
        {
            lock (_wakeLock) Monitor.PulseAll(_wakeLock);
        }

        DrainItems(0);
        WaitForWorkers();
        _work = null;
        var failure = _failure;
        _failure = null;
        failure?.Throw();
    }

    private void DrainItems(int worker)
    {
        var work = _work!;
        int count = _count;
        while (true)
        {
            int i = Interlocked.Increment(ref _next) - 1;
            if (i >= count) return;
            try
            {
                work.Run(i, worker);
            }
            catch (Exception e)
            {
                Interlocked.CompareExchange(ref _failure, ExceptionDispatchInfo.Capture(e), null);
                // Skip the remaining items: the caller rethrows the first failure.
                Volatile.Write(ref _next, count);
            }
        }
    }

    private void WaitForWorkers()
    {
        long start = Stopwatch.GetTimestamp();
        while (Volatile.Read(ref _pendingWorkers) > 0)
        {
            if (Stopwatch.GetTimestamp() - start < SpinTicks)
            {
                Thread.SpinWait(20);
                continue;
            }
            lock (_doneLock)
            {
                _callerParked = true;
                while (Volatile.Read(ref _pendingWorkers) > 0) Monitor.Wait(_doneLock, ParkTimeout);
                _callerParked = false;
            }
        }
    }

    private void WorkerLoop(int worker)
    {
        long seen = 0;
        while (true)
        {
            long start = Stopwatch.GetTimestamp();
            long gen;
            while ((gen = Volatile.Read(ref _generation)) == seen && !_disposed)
            {
                if (Stopwatch.GetTimestamp() - start < SpinTicks)
                {
                    Thread.SpinWait(20);
                    continue;
                }
                lock (_wakeLock)
                {
                    // Registering before the re-check pairs with the caller's bump-then-read: no lost wake-up.
                    Interlocked.Increment(ref _parkedWorkers);
                    while (Volatile.Read(ref _generation) == seen && !_disposed) Monitor.Wait(_wakeLock, ParkTimeout);
                    Interlocked.Decrement(ref _parkedWorkers);
                }
            }
            if (_disposed) return;
            seen = gen;
            DrainItems(worker);
            if (Interlocked.Decrement(ref _pendingWorkers) == 0)
            {
                lock (_doneLock)
                {
                    if (_callerParked) Monitor.PulseAll(_doneLock);
                }
            }
        }
    }

    public void Dispose()
    {
        if (_disposed || ReferenceEquals(this, Single)) return;
        _disposed = true;
        lock (_wakeLock) Monitor.PulseAll(_wakeLock);
        foreach (var t in _workers) t.Join(TimeSpan.FromSeconds(5));
    }

    private sealed class ActionWork : IParallelWork
    {
        public Action<int>? Body;
        public void Run(int item, int worker) => Body!(item);
    }
}
