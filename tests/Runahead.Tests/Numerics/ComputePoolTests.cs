using Runahead.Numerics;

namespace Runahead.Tests.Numerics;

public class ComputePoolTests
{
    private sealed class CountingWork : IParallelWork
    {
        public readonly int[] Hits;
        public readonly int[] Workers;
        public CountingWork(int count) { Hits = new int[count]; Workers = new int[count]; }
        public void Run(int item, int worker)
        {
            Interlocked.Increment(ref Hits[item]);
            Workers[item] = worker;
        }
    }

    [Theory]
    [InlineData(1, 0)]
    [InlineData(1, 5)]
    [InlineData(2, 1)]
    [InlineData(2, 1000)]
    [InlineData(3, 17)]
    public void EveryItemRunsExactlyOnce(int threads, int count)
    {
        using var pool = new ComputePool(threads);
        for (int repeat = 0; repeat < 50; repeat++)
        {
            var work = new CountingWork(count);
            pool.For(count, work);
            Assert.All(work.Hits, h => Assert.Equal(1, h));
            Assert.All(work.Workers, w => Assert.InRange(w, 0, threads - 1));
        }
        var hits = new int[count];
        pool.For(count, i => Interlocked.Increment(ref hits[i]));
        Assert.All(hits, h => Assert.Equal(1, h));
    }

    [Fact]
    public void ManyBackToBackJobsOnAnOversubscribedPool()
    {
        // More threads than cores: workers are often descheduled mid-job; no item may be lost or run twice.
        using var pool = new ComputePool(4);
        for (int job = 0; job < 2000; job++)
        {
            int count = 1 + job % 13;
            var work = new CountingWork(count);
            pool.For(count, work);
            for (int i = 0; i < count; i++) Assert.Equal(1, work.Hits[i]);
        }
    }

    [Fact]
    public void WorkersWakeAfterParking()
    {
        using var pool = new ComputePool(2);
        var work = new CountingWork(64);
        pool.For(64, work);
        Thread.Sleep(50); // longer than the spin phase: workers are parked now
        work = new CountingWork(64);
        pool.For(64, work);
        Assert.All(work.Hits, h => Assert.Equal(1, h));
    }

    [Fact]
    public void ExceptionsReachTheCaller()
    {
        using var pool = new ComputePool(2);
        var e = Assert.Throws<InvalidOperationException>(() => pool.For(100, i =>
        {
            if (i == 37) throw new InvalidOperationException("boom");
        }));
        Assert.Equal("boom", e.Message);
        var work = new CountingWork(10);
        pool.For(10, work); // still usable
        Assert.All(work.Hits, h => Assert.Equal(1, h));
    }

    [Fact]
    public void NestedAndConcurrentCallsRunInline()
    {
        using var pool = new ComputePool(2);
        int total = 0;
        pool.For(8, _ => pool.For(8, _ => Interlocked.Increment(ref total)));
        Assert.Equal(64, total);

        total = 0;
        var callers = Enumerable.Range(0, 4).Select(_ => new Thread(() =>
        {
            for (int r = 0; r < 20; r++) pool.For(50, _ => Interlocked.Increment(ref total));
        })).ToArray();
        foreach (var t in callers) t.Start();
        foreach (var t in callers) Assert.True(t.Join(TimeSpan.FromSeconds(30)));
        Assert.Equal(4 * 20 * 50, total);
    }

    [Fact]
    public void DisposeStopsWorkers()
    {
        var pool = new ComputePool(3);
        pool.For(10, _ => { });
        pool.Dispose();
        pool.Dispose();
        int ran = 0;
        pool.For(5, _ => ran++); // a disposed pool still runs work, on the caller
        Assert.Equal(5, ran);
        Assert.Throws<ArgumentOutOfRangeException>(() => new ComputePool(0));
    }
}
