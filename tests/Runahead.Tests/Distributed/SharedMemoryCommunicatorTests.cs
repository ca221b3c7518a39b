using System.Diagnostics;
using System.Security.Cryptography;
using Runahead.Distributed;

namespace Runahead.Tests.Distributed;

/// <summary>The shared-memory transport with every rank as a thread of this process (worker processes: RankPoolTests).</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public class SharedMemoryCommunicatorTests : CommunicatorSemantics
{
    protected override Task RunGroupAsync(int worldSize, Func<ICommunicator, CancellationToken, Task> body, TimeSpan? receiveTimeout = null)
        => RunGroupAsync(worldSize, body, receiveTimeout, ringBytes: 1L << 20, shaper: null);

    internal static async Task RunGroupAsync(int worldSize, Func<ICommunicator, CancellationToken, Task> body, TimeSpan? receiveTimeout, long ringBytes, LinkShaper? shaper)
    {
        using var segment = SharedMemorySegment.Create(worldSize, ringBytes);
        var comms = new ICommunicator[worldSize];
        for (int r = 0; r < worldSize; r++)
            comms[r] = new SharedMemoryCommunicator(segment, r, shaper, receiveTimeout ?? TimeSpan.FromSeconds(20), ownsSegment: false);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var tasks = new Task[worldSize];
        for (int r = 0; r < worldSize; r++)
        {
            var c = comms[r];
            tasks[r] = Task.Run(async () =>
            {
                try
                {
                    await body(c, cts.Token);
                }
                catch (Exception e) when (e is not RankFailedException)
                {
                    segment.Abort(c.Rank, $"rank {c.Rank} failed: {e.Message}");
                    throw;
                }
            });
        }
        try
        {
            await Task.WhenAll(tasks);
        }
        finally
        {
            foreach (var c in comms) c.Dispose();
        }
    }

    [Fact]
    public void SegmentIsPrivateToItsOwner()
    {
        using var segment = SharedMemorySegment.Create(2, 1 << 16);
        Assert.StartsWith("/dev/shm/runahead-", segment.FilePath);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(segment.FilePath));
        segment.Dispose();
        Assert.False(File.Exists(segment.FilePath));
    }

    [Fact]
    public void AttachWithoutTheTokenIsRefused()
    {
        using var segment = SharedMemorySegment.Create(2, 1 << 16);
        var e = Assert.Throws<RunaheadException>(() => SharedMemorySegment.Attach(segment.FilePath, RandomNumberGenerator.GetBytes(32), 2));
        Assert.Contains("wrong token", e.Message);
        using var ok = SharedMemorySegment.Attach(segment.FilePath, segment.Token, 2);
        Assert.Equal(2, ok.WorldSize);
    }

    [Fact]
    public void AttachRefusesASegmentOthersCouldOpen()
    {
        using var segment = SharedMemorySegment.Create(2, 1 << 16);
        File.SetUnixFileMode(segment.FilePath, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);
        var e = Assert.Throws<RunaheadException>(() => SharedMemorySegment.Attach(segment.FilePath, segment.Token, 2));
        Assert.Contains("0600", e.Message);
    }

    [Fact]
    public Task MessagesLargerThanTheRingAreFragmentedAndReassembled() => RunGroupAsync(2, async (c, ct) =>
    {
        var big = new float[3 << 18]; // 3 MiB through a 1 MiB ring
        for (int i = 0; i < big.Length; i++) big[i] = i;
        if (c.Rank == 0)
        {
            await c.SendAsync(1, 1, big, ct);
            await c.SendAsync(1, 2, new float[] { 42 }, ct);
        }
        else
        {
            using (var m = await c.ReceiveAsync(0, 1, ct)) Assert.True(m.Data.SequenceEqual(big));
            using (var m = await c.ReceiveAsync(0, 2, ct)) Assert.Equal(42, m.Data[0]);
        }
    }, null, ringBytes: 1 << 20, shaper: null);

    [Fact]
    public Task UnreceivedTagsDoNotBlockASenderBehindThem() => RunGroupAsync(2, async (c, ct) =>
    {
        // 4 MiB of tag 1 through a 1 MiB ring while the receiver first asks for tag 2, sent last.
        if (c.Rank == 0)
        {
            for (int i = 0; i < 16; i++) await c.SendAsync(1, 1, new float[64 << 10], ct);
            await c.SendAsync(1, 2, new float[] { 7 }, ct);
        }
        else
        {
            using (var m = await c.ReceiveAsync(0, 2, ct)) Assert.Equal(7, m.Data[0]);
            for (int i = 0; i < 16; i++)
            {
                using var m = await c.ReceiveAsync(0, 1, ct);
                Assert.Equal(64 << 10, m.Data.Length);
            }
        }
    }, null, ringBytes: 1 << 20, shaper: null);

    [Fact]
    public Task ReceivedDataIsReadInPlace() => RunGroupAsync(2, async (c, ct) =>
    {
        if (c.Rank == 0)
        {
            await c.SendAsync(1, 1, new float[1000], ct);
        }
        else
        {
            using var m = await c.ReceiveAsync(0, 1, ct);
            Assert.True(m.IsInPlace);
        }
    }, null, ringBytes: 1 << 20, shaper: null);

    [Fact]
    public async Task AbortWordStopsWaitingRanksWithTheFailedRank()
    {
        using var segment = SharedMemorySegment.Create(3, 1 << 16);
        using var c2 = new SharedMemoryCommunicator(segment, 2, null, TimeSpan.FromSeconds(30), ownsSegment: false);
        var sw = Stopwatch.StartNew();
        var waiting = Task.Run(async () => await c2.ReceiveAsync(1, 0, CancellationToken.None));
        await Task.Delay(50);
        segment.Abort(1, "rank 1 (pid 1234) exited with code 137");
        var e = await Assert.ThrowsAsync<RankFailedException>(async () => await waiting);
        Assert.Equal(1, e.FailedRank);
        Assert.Contains("rank 1", e.Message);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10));
    }
}
