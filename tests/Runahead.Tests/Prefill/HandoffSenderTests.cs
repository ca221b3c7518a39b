using Runahead.Diagnostics;
using Runahead.Distributed;
using Runahead.Prefill;

namespace Runahead.Tests.Prefill;

/// <summary>The hand-off sender on its own: order, back-pressure, failures and a pool that survives them.</summary>
public class HandoffSenderTests
{
    [Fact]
    public async Task Sends_every_layer_in_order_and_records_each_transfer()
    {
        var comm = new RecordingCommunicator();
        var sender = new HandoffSender();
        var recorder = new RankRecorder(0, 4);
        sender.Begin(comm, 1, 3, layers: 4, CancellationToken.None);
        for (int l = 0; l < 4; l++)
        {
            var m = await sender.RentAsync(CancellationToken.None);
            m.AsSpan(0, 3).Fill(l);
            sender.Post(l, m);
        }
        await sender.FinishAsync(recorder);
        Assert.Equal([0, 1, 2, 3], comm.Sent.Select(s => s.Tag));
        Assert.All(comm.Sent, s => Assert.Equal(Enumerable.Repeat((float)s.Tag, 3), s.Data));
        Assert.Equal([0, 1, 2, 3], recorder.Spans.Where(s => s.Kind == SpanKind.Transfer).Select(s => s.Layer).Order());
        Assert.InRange(sender.PooledBuffers, 1, 4);
    }

    [Fact]
    public async Task A_failed_send_surfaces_on_the_next_rent_and_the_pool_serves_the_next_job()
    {
        var failing = new RecordingCommunicator { FailAtTag = 1 };
        var sender = new HandoffSender(maxInFlight: 1);
        var recorder = new RankRecorder(0, 4);
        sender.Begin(failing, 1, 8, layers: 4, CancellationToken.None);
        sender.Post(0, await sender.RentAsync(CancellationToken.None));
        // One buffer in all: the rent after layer 1 waits for its send, which fails (or the post already sees it).
        var e = await Assert.ThrowsAsync<RankFailedException>(async () =>
        {
            sender.Post(1, await sender.RentAsync(CancellationToken.None));
            await sender.RentAsync(CancellationToken.None);
        });
        Assert.Equal(1, e.FailedRank);
        await sender.AbortAsync(recorder);
        Assert.Equal(1, sender.PooledBuffers);

        // The same sender (a rank's next job) starts clean, and still with at most one buffer.
        var healthy = new RecordingCommunicator();
        sender.Begin(healthy, 1, 8, layers: 4, CancellationToken.None);
        for (int l = 0; l < 4; l++) sender.Post(l, await sender.RentAsync(CancellationToken.None));
        await sender.FinishAsync(recorder);
        Assert.Equal(4, healthy.Sent.Count);
        Assert.Equal(1, sender.PooledBuffers);
    }

    [Fact]
    public async Task A_message_rented_but_never_posted_returns_to_the_pool_on_abort()
    {
        var sender = new HandoffSender(maxInFlight: 1);
        var recorder = new RankRecorder(0, 2);
        sender.Begin(new RecordingCommunicator(), 1, 8, layers: 2, CancellationToken.None);
        await sender.RentAsync(CancellationToken.None);
        await sender.AbortAsync(recorder);
        sender.Begin(new RecordingCommunicator(), 1, 8, layers: 2, CancellationToken.None);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        sender.Post(0, await sender.RentAsync(timeout.Token));
        await sender.FinishAsync(recorder);
        Assert.Equal(1, sender.PooledBuffers);
    }

    [Fact]
    public async Task Cancelling_the_job_stops_a_blocked_send()
    {
        var blocking = new RecordingCommunicator { BlockAtTag = 0 };
        var sender = new HandoffSender();
        using var cts = new CancellationTokenSource();
        sender.Begin(blocking, 1, 8, layers: 2, cts.Token);
        sender.Post(0, await sender.RentAsync(CancellationToken.None));
        await blocking.Blocked.Task.WaitAsync(TimeSpan.FromSeconds(10));
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => sender.FinishAsync(new RankRecorder(0, 2)).WaitAsync(TimeSpan.FromSeconds(10)));
    }

    /// <summary>Keeps what is sent; can fail or block (until cancelled, as a full ring does) at one tag.</summary>
    private sealed class RecordingCommunicator : ICommunicator
    {
        public List<(int Tag, float[] Data)> Sent { get; } = new();
        public int FailAtTag { get; init; } = -1;
        public int BlockAtTag { get; init; } = -1;
        public TaskCompletionSource Blocked { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public int Rank => 0;
        public int WorldSize => 2;
        public int PrevRank => -1;
        public int NextRank => 1;
        public TimeSpan ReceiveTimeout { get; set; } = TimeSpan.FromSeconds(10);

        public ValueTask SendAsync(int dest, int tag, ReadOnlyMemory<float> data, CancellationToken ct)
        {
            if (tag == FailAtTag) throw new RankFailedException(dest, $"rank {dest} died");
            if (tag == BlockAtTag)
            {
                Blocked.TrySetResult();
                ct.WaitHandle.WaitOne();
                ct.ThrowIfCancellationRequested();
            }
            lock (Sent) Sent.Add((tag, data.ToArray()));
            return ValueTask.CompletedTask;
        }

        public ValueTask SendBytesAsync(int dest, int tag, ReadOnlyMemory<byte> data, CancellationToken ct) => throw new NotSupportedException();
        public ValueTask<ReceivedTensor> ReceiveAsync(int source, int tag, CancellationToken ct) => throw new NotSupportedException();
        public ValueTask AllGatherAsync(ReadOnlyMemory<float> mine, Memory<float> all, ReadOnlyMemory<int> counts, CancellationToken ct) => throw new NotSupportedException();
        public ValueTask BarrierAsync(CancellationToken ct) => throw new NotSupportedException();
        public void Dispose() { }
    }
}
