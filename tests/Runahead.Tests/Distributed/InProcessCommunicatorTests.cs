using System.Diagnostics;
using Runahead.Distributed;

namespace Runahead.Tests.Distributed;

public class InProcessCommunicatorTests : CommunicatorSemantics
{
    protected override async Task RunGroupAsync(int worldSize, Func<ICommunicator, CancellationToken, Task> body, TimeSpan? receiveTimeout = null)
    {
        using var group = new InProcessGroup(worldSize, receiveTimeout: receiveTimeout ?? TimeSpan.FromSeconds(20));
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await group.RunAsync(body, cts.Token);
    }

    [Fact]
    public async Task AFailingRankIsReportedByItsWaitingPeers()
    {
        using var group = new InProcessGroup(3, receiveTimeout: TimeSpan.FromSeconds(30));
        var sw = Stopwatch.StartNew();
        var waiting = Task.Run(async () => await group[2].ReceiveAsync(1, 0, CancellationToken.None));
        group.Fail(1, "rank 1 exited with code 137");
        var e = await Assert.ThrowsAsync<RankFailedException>(async () => await waiting);
        Assert.Equal(1, e.FailedRank);
        Assert.Contains("rank 1", e.Message);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task RunAsyncRethrowsTheRootCauseNotThePeersReports()
    {
        using var group = new InProcessGroup(3, receiveTimeout: TimeSpan.FromSeconds(30));
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => group.RunAsync(async (c, ct) =>
        {
            if (c.Rank == 1) throw new InvalidOperationException("boom");
            using var _ = await c.ReceiveAsync(1, 0, ct);
        }, CancellationToken.None));
        Assert.Equal("boom", e.Message);
    }
}
