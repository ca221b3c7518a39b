using System.Runtime.CompilerServices;
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
/// <see cref="For(int, IParallelWork)"/> hands out items dynamically and returns when all are done.
/// Items are claimed by compare-and-swap on one word holding (job generation, next item), so the caller waits only
/// for items actually claimed: a worker the OS has not scheduled yet (an oversubscribed machine) never delays a job,
/// it just finds nothing left. Workers spin briefly after each job, because inference issues jobs back to back, then
/// park so an idle pool costs nothing. A call made while the pool is busy (nested, or from another thread) runs
/// inline on the calling thread.
/// </summary>
public sealed class ComputePool : IDisposable
{
    // Long enough to bridge the gap between consecutive kernels of one layer, short enough not to burn a shared core.
    private static readonly long SpinTicks = Stopwatch.Frequency / 20_000; // 50 µs
    private static readonly TimeSpan ParkTimeout = TimeSpan.FromMilliseconds(200);

    private readonly Thread[] _workers;
    private readonly object _wakeLock = new();
    private readonly object _doneLock = new();
    private readonly ActionWork _actionWork = new();

    // Jobs alternate between two slots by generation parity: a late worker still looking at job g reads slot g & 1,
    // which is rewritten only for job g + 2, after which its claim (checked against the generation) must fail.
    private readonly Job[] _jobs = [new(), new()];
    private long _state; // generation << 32 | next item index
    private int _completed;
    private int _generation;
    private int _busy; // 1 while a job runs; not a Monitor, because a nested call on the caller thread must not re-enter
    private int _parkedWorkers;
    private bool _callerParked;
    private volatile bool _disposed;
    private ExceptionDispatchInfo? _failure;

    private sealed class Job
    {
        public volatile IParallelWork? Work;
        public volatile int Count;
    }

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
        if (!CanRunParallel(count) || !TryAcquire())
        {
            for (int i = 0; i < count; i++) body(i);
            return;
        }
        // The adapter is owned by the pool and only used while _busy is held, so no per-call allocation.
        try
        {
            _actionWork.Body = body;
            RunAcquired(count, _actionWork);
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
            for (int i = 0; i < count; i++) work.Run(i, 0);
            return;
        }
        try
        {
            RunAcquired(count, work);
        }
        finally
        {
            Volatile.Write(ref _busy, 0);
        }
    }

    private bool TryAcquire() => Interlocked.CompareExchange(ref _busy, 1, 0) == 0;

    private bool CanRunParallel(int count) => Threads > 1 && count > 1 && !_disposed;

    private void RunAcquired(int count, IParallelWork work)
    {
        int generation = ++_generation;
        var job = _jobs[generation & 1];
        job.Work = work;
        job.Count = count;
        _failure = null;
        Volatile.Write(ref _completed, 0);
        Interlocked.Exchange(ref _state, (long)generation << 32);
        if (Volatile.Read(ref _parkedWorkers) > 0)
        {
            lock (_wakeLock) Monitor.PulseAll(_wakeLock);
        }

        Drain(generation, work, count, 0);
        WaitForCompletion(count);
        job.Work = null;
        var failure = _failure;
        _failure = null;
        failure?.Throw();
    }

    /// <summary>Claims and runs items of job <paramref name="generation"/> until none are left or a newer job began.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Drain(int generation, IParallelWork work, int count, int worker)
    {
        while (true)
        {
            long s = Volatile.Read(ref _state);
            if ((int)(s >> 32) != generation) return;
            int item = (int)s;
            if (item >= count) return;
            if (Interlocked.CompareExchange(ref _state, s + 1, s) != s) continue;
            if (_failure is null)
            {
                try
                {
                    work.Run(item, worker);
                }
                catch (Exception e)
                {
                    // Later items are skipped (still counted): the caller rethrows the first failure.
                    Interlocked.CompareExchange(ref _failure, ExceptionDispatchInfo.Capture(e), null);
                }
            }
            if (Interlocked.Increment(ref _completed) == count && worker != 0)
            {
                lock (_doneLock)
                {
                    if (_callerParked) Monitor.PulseAll(_doneLock);
                }
            }
        }
    }

    private void WaitForCompletion(int count)
    {
        long start = Stopwatch.GetTimestamp();
        while (Volatile.Read(ref _completed) < count)
        {
            if (Stopwatch.GetTimestamp() - start < SpinTicks)
            {
                Thread.SpinWait(20);
                continue;
            }
            lock (_doneLock)
            {
                _callerParked = true;
                while (Volatile.Read(ref _completed) < count) Monitor.Wait(_doneLock, ParkTimeout);
                _callerParked = false;
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void WorkerLoop(int worker)
    {
        int seen = 0;
        while (true)
        {
            long start = Stopwatch.GetTimestamp();
            int generation;
            while ((generation = (int)(Volatile.Read(ref _state) >> 32)) == seen && !_disposed)
            {
                if (Stopwatch.GetTimestamp() - start < SpinTicks)
                {
                    Thread.SpinWait(20);
                    continue;
                }
                lock (_wakeLock)
                {
                    // Registering before the re-check pairs with the caller's publish-then-read: no lost wake-up.
                    Interlocked.Increment(ref _parkedWorkers);
                    while ((int)(Volatile.Read(ref _state) >> 32) == seen && !_disposed) Monitor.Wait(_wakeLock, ParkTimeout);
                    Interlocked.Decrement(ref _parkedWorkers);
                }
            }
            if (_disposed) return;
            seen = generation;
            var job = _jobs[generation & 1];
            var work = job.Work;
            int count = job.Count;
            // A stale or half-written slot is harmless: every claim re-checks the generation.
            if (work is not null) Drain(generation, work, count, worker);
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
