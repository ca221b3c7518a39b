using System.Diagnostics;
using System.Text;
using Runahead.Distributed;

namespace Runahead.Tests.Distributed;

/// <summary>Link pacing measured on the shared-memory transport, in one process and across worker processes.</summary>
[Collection(TimingCollection.Name)]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public class PacingAccuracyTests
{
    [Fact]
    public async Task InProcessLinksArePacedToFivePercent()
    {
        // 8 MiB at 1 GB/s + 1 ms latency = 9.39 ms; best of five sends.
        const int floats = 2 << 20;
        double expected = floats * 4.0 / 1e9 + 1e-3;
        var shaper = new LinkShaper(2, 1e9, TimeSpan.FromMilliseconds(1));
        using var group = new InProcessGroup(2, shaper, TimeSpan.FromSeconds(10));
        var data = new float[floats];
        double best = double.MaxValue;
        for (int trial = 0; trial < 6; trial++)
        {
            var sw = Stopwatch.StartNew();
            await group[0].SendAsync(1, 0, data, CancellationToken.None);
            using var m = await group[1].ReceiveAsync(0, 0, CancellationToken.None);
            if (trial > 0) best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }
        Assert.InRange(best, expected * 0.95, expected * 1.05);
    }

    [Fact]
    public async Task PacingIsAccurateToFivePercent()
    {
        // 16 MiB on a 2 GB/s link with 0.5 ms latency: 8.89 ms. The best of five trials must be within 5 %: the
        // best, because a shared 2-core machine may deschedule any one trial, while pacing errors are systematic.
        const int bytes = 16 << 20;
        double expected = bytes / 2e9 + 0.5e-3;
        var shaper = new LinkShaper(2, 2e9, TimeSpan.FromMilliseconds(0.5));
        var best = double.MaxValue;
        await SharedMemoryCommunicatorTests.RunGroupAsync(2, async (c, ct) =>
        {
            var data = new float[bytes / 4];
            for (int trial = 0; trial < 6; trial++)
            {
                await c.BarrierAsync(ct);
                if (c.Rank == 0)
                {
                    await c.SendBytesAsync(1, 1, BitConverter.GetBytes(Stopwatch.GetTimestamp()), ct);
                    await c.SendAsync(1, 0, data, ct);
                    continue;
                }
                long start;
                using (var t = await c.ReceiveAsync(0, 1, ct)) start = BitConverter.ToInt64(t.Bytes);
                using var m = await c.ReceiveAsync(0, 0, ct);
                double took = (double)(Stopwatch.GetTimestamp() - start) / Stopwatch.Frequency;
                if (trial > 0) best = Math.Min(best, took); // trial 0 warms the ring's pages
            }
        }, null, ringBytes: 64L << 20, shaper: shaper);
        Assert.InRange(best, expected * 0.95, expected * 1.05);
    }

    [Fact]
    public async Task WorkerProcessesPaceTheirLinksToFivePercent()
    {
        // 8 MiB on a 1 GB/s link with 0.2 ms latency = 8.59 ms; the best of several messages must be within 5 %.
        const int bytes = 8 << 20;
        double expected = bytes / 1e9 + 0.2e-3;
        using var pool = await RankPool.StartAsync(new RankPoolOptions
        {
            WorldSize = 2,
            ProgramType = typeof(PacedDeliveryProgram),
            Links = new LinkShaper(2, 1e9, TimeSpan.FromMilliseconds(0.2)),
            RingBytes = 32L << 20,
        });
        var result = await pool.RunJobAsync(Encoding.UTF8.GetBytes($"{bytes} 8"));
        double best = double.Parse(Encoding.UTF8.GetString(result.Replies[1]), System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(best, expected * 0.95, expected * 1.05);
    }
}
