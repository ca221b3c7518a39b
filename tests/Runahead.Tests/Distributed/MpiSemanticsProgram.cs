using System.Text;
using Runahead.Distributed;

namespace Runahead.Tests.Distributed;

/// <summary>
/// Communicator checks run by every rank of an mpiexec job (no xunit inside worker processes: failures throw, which
/// the rank pool reports with the rank). Request "all" runs every check; the reply is "ok".
/// </summary>
public sealed class MpiSemanticsProgram : IRankProgram
{
    public Task InitializeAsync(RankContext context, CancellationToken ct) => Task.CompletedTask;

    private static void Check(bool condition, string what)
    {
        if (!condition) throw new InvalidOperationException("check failed: " + what);
    }

    public async Task<byte[]> RunJobAsync(RankContext context, ReadOnlyMemory<byte> request, CancellationToken ct)
    {
        var c = context.Communicator;
        int p = c.WorldSize;

        // Tags are matched independently; one tag stays in order.
        if (c.Rank == 0)
        {
            for (int i = 0; i < 3; i++) await c.SendAsync(1, 7, new float[] { i }, ct);
            await c.SendAsync(1, 9, new float[] { 100 }, ct);
        }
        else if (c.Rank == 1)
        {
            using (var nine = await c.ReceiveAsync(0, 9, ct)) Check(nine.Data[0] == 100, "tag 9 first");
            for (int i = 0; i < 3; i++)
            {
                using var m = await c.ReceiveAsync(0, 7, ct);
                Check(m.Data[0] == i, $"tag 7 message {i} in order");
            }
        }

        // All-gather with uneven counts (one rank contributes nothing).
        var counts = new int[p];
        for (int r = 0; r < p; r++) counts[r] = r == 1 ? 0 : 1000 * (r + 1);
        var mine = new float[counts[c.Rank]];
        for (int i = 0; i < mine.Length; i++) mine[i] = c.Rank * 1e5f + i;
        var all = new float[counts.Sum()];
        await c.AllGatherAsync(mine, all, counts, ct);
        int offset = 0;
        for (int r = 0; r < p; r++)
        {
            for (int i = 0; i < counts[r]; i++) Check(all[offset + i] == r * 1e5f + i, $"all-gather element {i} of rank {r}");
            offset += counts[r];
        }
        await c.BarrierAsync(ct);

        // A large message and many small ones along the chain.
        var big = new float[6 << 20]; // 24 MiB
        if (c.PrevRank >= 0)
        {
            using var m = await c.ReceiveAsync(c.PrevRank, 3, ct);
            Check(m.Data.Length == big.Length && m.Data[^1] == 42, "24 MiB message intact");
        }
        big[^1] = 42;
        if (c.NextRank >= 0) await c.SendAsync(c.NextRank, 3, big, ct);
        for (int i = 0; i < 500; i++)
        {
            if (c.NextRank >= 0) await c.SendBytesAsync(c.NextRank, 4, BitConverter.GetBytes(i), ct);
            if (c.PrevRank >= 0)
            {
                using var m = await c.ReceiveAsync(c.PrevRank, 4, ct);
                Check(BitConverter.ToInt32(m.Bytes) == i, $"small message {i}");
            }
        }

        // A receive nobody answers times out naming the silent peer.
        if (c.Rank == p - 1)
        {
            var saved = c.ReceiveTimeout;
            c.ReceiveTimeout = TimeSpan.FromMilliseconds(200);
            try
            {
                using var _ = await c.ReceiveAsync(0, 11, ct);
                Check(false, "receive without a sender must time out");
            }
            catch (RankTimeoutException e)
            {
                Check(e.FailedRank == 0 && e.Message.Contains("rank 0"), "timeout names rank 0");
            }
            c.ReceiveTimeout = saved;
        }
        await c.BarrierAsync(ct);
        return Encoding.UTF8.GetBytes("ok");
    }

    public void Dispose() { }
}
