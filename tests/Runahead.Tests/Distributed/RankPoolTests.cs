using System.Diagnostics;
using System.Text;
using Runahead.Distributed;

namespace Runahead.Tests.Distributed;

/// <summary>Rank pools with real worker processes (and the in-process variant): jobs, streaming, failures, cleanup.</summary>
public class RankPoolTests
{
    private static readonly TimeSpan FailureBound = TimeSpan.FromSeconds(10);

    private static Task<RankPool> Start(int worldSize, RankTransport transport = RankTransport.SharedMemory) =>
        RankPool.StartAsync(new RankPoolOptions
        {
            WorldSize = worldSize,
            ProgramType = typeof(ChainProgram),
            Transport = transport,
            ProgramArguments = "args",
            ReceiveTimeout = TimeSpan.FromSeconds(60),
            RingBytes = 1 << 20,
        });

    private static byte[] Request(string text) => Encoding.UTF8.GetBytes(text);


    [Theory]
    [InlineData(RankTransport.InProcess, 1)]
    [InlineData(RankTransport.InProcess, 3)]
    [InlineData(RankTransport.SharedMemory, 1)]
    [InlineData(RankTransport.SharedMemory, 3)]
    public async Task JobsRunOnEveryRankAndStreamFromTheLast(RankTransport transport, int worldSize)
    {
        string? segment;
        using (var pool = await Start(worldSize, transport))
        {
            Assert.Equal(transport == RankTransport.SharedMemory ? worldSize : 0, pool.ProcessIds.Count);
            segment = pool.SegmentPath;
            Assert.True(segment == null || !File.Exists(segment)); // deleted once every worker had mapped it
            float expected = 10;
            for (int r = 0; r < worldSize; r++) expected += r;
            for (int job = 0; job < 3; job++)
            {
                var emitted = new List<(int, string)>();
                var result = await pool.RunJobAsync(Request("chain 10"), (rank, m) => { lock (emitted) emitted.Add((rank, Encoding.UTF8.GetString(m.Span))); });
                Assert.Equal(worldSize, result.Replies.Count);
                Assert.Equal($"{worldSize - 1}:{expected}:args", Encoding.UTF8.GetString(result.Replies[worldSize - 1]));
                Assert.Equal([(worldSize - 1, $"last {expected}")], emitted);
            }
        }
        Assert.True(segment == null || !File.Exists(segment));
    }

    [Theory]
    [InlineData(2, 64L << 20)]
    [InlineData(3, 44_736_512L)]
    [InlineData(4, 22_368_256L)]
    [InlineData(8, 4_792_320L)]
    [InlineData(32, 1L << 20)]
    public void AutomaticRingsShareAFixedBudget(int ranks, long ring)
    {
        var options = new RankPoolOptions { WorldSize = ranks, ProgramType = typeof(ChainProgram) };
        Assert.Equal(ring, options.EffectiveRingBytes);
        Assert.True(ring * ranks * (ranks - 1) <= RankPoolOptions.AutomaticSegmentBudget || ring == 1L << 20);
    }

    [Fact]
    public async Task KillingAWorkerBeforeAJobIsReportedWithItsRank()
    {
        using var pool = await Start(3);
        Process.GetProcessById(pool.ProcessIds[1]).Kill();
        var sw = Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<RankFailedException>(() => pool.RunJobAsync(Request("chain 1")));
        Assert.True(sw.Elapsed < FailureBound, $"took {sw.Elapsed}");
        Assert.Equal(1, e.FailedRank);
        Assert.Contains("rank 1", e.Message);
        await AssertAllWorkersExit(pool);
    }

    [Fact]
    public async Task KillingAWorkerDuringAJobStopsEveryRank()
    {
        using var pool = await Start(3);
        var stalling = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var job = pool.RunJobAsync(Request("stall 1"), (rank, m) => { if (rank == 1) stalling.TrySetResult(); });
        await stalling.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await Task.Delay(100); // let the others block on rank 1
        var sw = Stopwatch.StartNew();
        Process.GetProcessById(pool.ProcessIds[1]).Kill();
        var e = await Assert.ThrowsAsync<RankFailedException>(() => job);
        Assert.True(sw.Elapsed < FailureBound, $"took {sw.Elapsed}");
        Assert.Equal(1, e.FailedRank);
        Assert.Contains("rank 1", e.Message);
        await AssertAllWorkersExit(pool);
        Assert.False(File.Exists(pool.SegmentPath));
    }

    [Fact]
    public async Task KillingAWorkerAfterAJobFailsTheNextOne()
    {
        using var pool = await Start(3);
        await pool.RunJobAsync(Request("chain 1"));
        Process.GetProcessById(pool.ProcessIds[2]).Kill();
        // The idle ranks notice too, and leave, without any job being sent.
        await AssertAllWorkersExit(pool);
        var e = await Assert.ThrowsAsync<RankFailedException>(() => pool.RunJobAsync(Request("chain 1")));
        Assert.Equal(2, e.FailedRank);
    }

    [Theory]
    [InlineData(RankTransport.InProcess)]
    [InlineData(RankTransport.SharedMemory)]
    public async Task AnExceptionInARankProgramNamesThatRank(RankTransport transport)
    {
        using var pool = await Start(3, transport);
        var sw = Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<RankFailedException>(() => pool.RunJobAsync(Request("throw 1")));
        Assert.True(sw.Elapsed < FailureBound, $"took {sw.Elapsed}");
        Assert.Equal(1, e.FailedRank);
        Assert.Contains("deliberate failure", e.Message);
        if (transport == RankTransport.SharedMemory) await AssertAllWorkersExit(pool);
    }

    [Fact]
    public async Task CancellingAJobTearsThePoolDown()
    {
        using var pool = await Start(2);
        using var cts = new CancellationTokenSource();
        var job = pool.RunJobAsync(Request("stall 0"), (_, _) => cts.Cancel(), cts.Token);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => job);
        await AssertAllWorkersExit(pool);
        await Assert.ThrowsAsync<RankFailedException>(() => pool.RunJobAsync(Request("chain 1")));
    }

    private static async Task AssertAllWorkersExit(RankPool pool)
    {
        var sw = Stopwatch.StartNew();
        foreach (var pid in pool.ProcessIds)
        {
            Process p;
            try
            {
                p = Process.GetProcessById(pid);
            }
            catch (ArgumentException)
            {
                continue; // already gone and reaped
            }
            using (p)
            {
                var left = FailureBound - sw.Elapsed;
                if (left < TimeSpan.Zero) left = TimeSpan.Zero;
                using var cts = new CancellationTokenSource(left);
                try
                {
                    await p.WaitForExitAsync(cts.Token);
                }
                catch (OperationCanceledException)
                {
                    Assert.Fail($"worker pid {pid} still running {sw.Elapsed.TotalSeconds:0.0} s after the failure");
                }
                catch (InvalidOperationException)
                {
                    // Not our child in this Process object's eyes: fall back to polling the pid.
                    while (NativeMethods.ProcessAlive(pid) && sw.Elapsed < FailureBound) await Task.Delay(50);
                    Assert.False(NativeMethods.ProcessAlive(pid), $"worker pid {pid} still running");
                }
            }
        }
    }
}
