using System.Diagnostics;
using Runahead.Distributed;

namespace Runahead.Tests.Distributed;

/// <summary>The behaviour every transport must show; each transport's test class supplies how a group is run.</summary>
public abstract class CommunicatorSemantics
{
    /// <summary>Runs <paramref name="body"/> on every rank of a fresh group of <paramref name="worldSize"/> ranks.</summary>
    protected abstract Task RunGroupAsync(int worldSize, Func<ICommunicator, CancellationToken, Task> body, TimeSpan? receiveTimeout = null);

    private static float[] Pattern(int length, float seed)
    {
        var a = new float[length];
        for (int i = 0; i < length; i++) a[i] = seed + i * 0.5f;
        return a;
    }

    [Fact]
    public Task NeighboursAreMinusOneAtTheEnds() => RunGroupAsync(3, (c, _) =>
    {
        Assert.Equal(3, c.WorldSize);
        Assert.Equal(c.Rank == 0 ? -1 : c.Rank - 1, c.PrevRank);
        Assert.Equal(c.Rank == 2 ? -1 : c.Rank + 1, c.NextRank);
        return Task.CompletedTask;
    });

    [Fact]
    public Task SameTagArrivesInOrderAndTagsAreMatchedIndependently() => RunGroupAsync(2, async (c, ct) =>
    {
        if (c.Rank == 0)
        {
            for (int i = 0; i < 5; i++) await c.SendAsync(1, 7, Pattern(3, i), ct);
            await c.SendAsync(1, 9, Pattern(4, 100), ct);
        }
        else
        {
            // Tag 9 was sent last but is asked for first: tags must not block each other.
            using (var nine = await c.ReceiveAsync(0, 9, ct)) Assert.Equal(Pattern(4, 100), nine.Data.ToArray());
            for (int i = 0; i < 5; i++)
            {
                using var m = await c.ReceiveAsync(0, 7, ct);
                Assert.Equal(0, m.Source);
                Assert.Equal(7, m.Tag);
                Assert.Equal(Pattern(3, i), m.Data.ToArray());
            }
        }
    });

    [Fact]
    public Task BytesAndEmptyMessagesTravel() => RunGroupAsync(2, async (c, ct) =>
    {
        if (c.Rank == 0)
        {
            await c.SendBytesAsync(1, 1, new byte[] { 1, 2, 3 }, ct);
            await c.SendBytesAsync(1, 2, ReadOnlyMemory<byte>.Empty, ct);
        }
        else
        {
            using (var m = await c.ReceiveAsync(0, 1, ct)) Assert.Equal(new byte[] { 1, 2, 3 }, m.Bytes.ToArray());
            using (var e = await c.ReceiveAsync(0, 2, ct)) Assert.Equal(0, e.ByteLength);
        }
    });

    [Fact]
    public Task ManySmallMessagesArriveIntact() => RunGroupAsync(3, async (c, ct) =>
    {
        const int count = 2000;
        var send = Task.Run(async () =>
        {
            for (int i = 0; i < count; i++)
                foreach (var peer in Peers(c)) await c.SendAsync(peer, 3, new float[] { c.Rank, i }, ct);
        }, ct);
        foreach (var peer in Peers(c))
            for (int i = 0; i < count; i++)
            {
                using var m = await c.ReceiveAsync(peer, 3, ct);
                Assert.Equal(peer, m.Data[0]);
                Assert.Equal(i, m.Data[1]);
            }
        await send;
    });

    [Fact]
    public Task LargeMessagesArriveIntact() => RunGroupAsync(2, async (c, ct) =>
    {
        var big = Pattern(24 << 18, 1); // 24 MiB
        if (c.Rank == 0)
        {
            await c.SendAsync(1, 5, big, ct);
            await c.SendAsync(1, 5, big.AsMemory(1, 1000), ct);
        }
        else
        {
            using (var m = await c.ReceiveAsync(0, 5, ct))
            {
                Assert.Equal(big.Length, m.Data.Length);
                Assert.True(m.Data.SequenceEqual(big));
            }
            using (var m = await c.ReceiveAsync(0, 5, ct)) Assert.True(m.Data.SequenceEqual(big.AsSpan(1, 1000)));
        }
    });

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(4)]
    public Task AllGatherWithUnevenCounts(int worldSize) => RunGroupAsync(worldSize, async (c, ct) =>
    {
        var counts = new int[worldSize];
        for (int r = 0; r < worldSize; r++) counts[r] = r == 1 ? 0 : 1000 * (r + 1) + r;
        int total = counts.Sum();
        for (int round = 0; round < 3; round++)
        {
            var all = new float[total];
            await c.AllGatherAsync(Pattern(counts[c.Rank], c.Rank * 10 + round), all, counts, ct);
            int offset = 0;
            for (int r = 0; r < worldSize; r++)
            {
                Assert.Equal(Pattern(counts[r], r * 10 + round), all.AsSpan(offset, counts[r]).ToArray());
                offset += counts[r];
            }
        }
    });

    [Fact]
    public Task AllGatherRejectsMismatchedCounts() => RunGroupAsync(1, async (c, ct) =>
    {
        await Assert.ThrowsAsync<ArgumentException>(async () => await c.AllGatherAsync(new float[3], new float[4], new[] { 4 }, ct));
    });

    [Fact]
    public async Task BarrierHoldsEveryoneUntilTheLastArrives()
    {
        int arrived = 0;
        await RunGroupAsync(3, async (c, ct) =>
        {
            if (c.Rank == 2) await Task.Delay(150, ct);
            Interlocked.Increment(ref arrived);
            await c.BarrierAsync(ct);
            Assert.Equal(3, Volatile.Read(ref arrived));
            await c.BarrierAsync(ct);
        });
    }

    [Fact]
    public Task ReceiveHonoursCancellation() => RunGroupAsync(2, async (c, ct) =>
    {
        if (c.Rank != 1) return;
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(100);
        var sw = Stopwatch.StartNew();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await c.ReceiveAsync(0, 4, cts.Token));
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5));
    });

    [Fact]
    public Task ReceiveTimeoutNamesThePeer() => RunGroupAsync(2, async (c, ct) =>
    {
        if (c.Rank != 1) return;
        c.ReceiveTimeout = TimeSpan.FromMilliseconds(200);
        var sw = Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<RankTimeoutException>(async () => await c.ReceiveAsync(0, 4, ct));
        Assert.Equal(0, e.FailedRank);
        Assert.Contains("rank 0", e.Message);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5));
    });

    [Fact]
    public Task KvHandOffChainPassesGrowingPrefixes() => RunGroupAsync(4, async (c, ct) =>
    {
        // The KV-Runahead pattern: receive the prefix from the previous rank, append, pass on before working.
        for (int layer = 0; layer < 4; layer++)
        {
            float[] prefix = [];
            if (c.PrevRank >= 0)
            {
                using var m = await c.ReceiveAsync(c.PrevRank, layer, ct);
                prefix = m.Data.ToArray();
            }
            var mine = prefix.Concat(Enumerable.Repeat((float)(c.Rank + layer), 10)).ToArray();
            if (c.NextRank >= 0) await c.SendAsync(c.NextRank, layer, mine, ct);
            Assert.Equal(10 * (c.Rank + 1), mine.Length);
        }
    });

    protected static IEnumerable<int> Peers(ICommunicator c)
    {
        for (int r = 0; r < c.WorldSize; r++)
            if (r != c.Rank) yield return r;
    }
}
