using System.Diagnostics;
using Runahead.Diagnostics;
using Runahead.Distributed;
using Runahead.Models;
using Runahead.Prefill;
using Runahead.Tests.Distributed;

namespace Runahead.Tests.Prefill;

/// <summary>
/// KV-Runahead's asynchronous hand-off over the real shared-memory transport (every rank a thread of this process):
/// rings much smaller than a layer's message, a slow next rank the sender runs ahead of, and a next rank that dies
/// while messages are still in flight.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
[Collection(TimingCollection.Name)]
public class KvRunaheadHandoffTests
{
    private const long SmallRing = 64 << 10;
    private static readonly TimeSpan FailureBound = TimeSpan.FromSeconds(10);

    // KvDim 32 (4 KV heads of 8): a rank holding S_i tokens sends 256 x S_i bytes a layer, 170 KB for 667 tokens.
    private static ModelConfig Config(int layers) => SynthWeightSource.TinyLlama(layers, context: 1024) with { KvHeads = 4 };

    [Theory]
    [InlineData(0)]   // never waits for the transport
    [InlineData(1)]   // one layer in flight: the compute loop waits for each send before the next layer (back-pressure path)
    public async Task Ring_much_smaller_than_a_message_still_matches_single(int maxLayersInFlight)
    {
        var config = Config(layers: 4);
        using var reference = SynthWeightSource.LoadTiny(config);
        var prompt = PrefillReference.Prompt(1000, config.VocabSize);
        var (expected, _) = PrefillReference.Single(reference, prompt, 1);
        var partition = Partition.Even(prompt.Length, 3);
        Assert.True(2L * partition.End(1) * config.KvDim * sizeof(float) > 2 * SmallRing, "rank 1's message must exceed the ring");

        var outputs = new RankPrefillOutput[3];
        var prefills = new KvRunaheadPrefill[3];
        await SharedMemoryCommunicatorTests.RunGroupAsync(3, async (comm, ct) =>
        {
            using var model = SynthWeightSource.LoadTiny(config);
            prefills[comm.Rank] = new KvRunaheadPrefill(model, comm, maxLayersInFlight);
            // Twice: the second job reuses the pooled messages of the first.
            for (int job = 0; job < 2; job++)
                outputs[comm.Rank] = await prefills[comm.Rank].RunAsync(prompt, partition, prompt.Length, ct);
        }, TimeSpan.FromSeconds(20), SmallRing, shaper: null);

        PrefillReference.AssertClose(expected, outputs[2].Logits!, $"kvr P=3 over a {SmallRing >> 10} KiB ring, {maxLayersInFlight} in flight");
        Assert.Equal(prompt.Length, outputs[2].Cache!.Length);
        if (maxLayersInFlight == 1) Assert.Equal(1, prefills[0].PooledHandoffBuffers);
        Assert.InRange(prefills[0].PooledHandoffBuffers, 1, config.Layers);
        Assert.Equal(0, prefills[2].PooledHandoffBuffers);
    }

    [Fact]
    public async Task A_rank_runs_ahead_of_a_slow_next_rank_and_waits_for_its_sends_once()
    {
        const int layers = 6;
        var delay = TimeSpan.FromMilliseconds(100);
        var config = Config(layers);
        var prompt = PrefillReference.Prompt(1000, config.VocabSize);
        // Rank 0's 800 rows make 205 KB messages: with a 64 KiB ring each send finishes only as rank 1 takes it.
        var partition = Partition.FromChunks([800, 200], prompt.Length, 2);
        var outputs = new RankPrefillOutput[2];
        await SharedMemoryCommunicatorTests.RunGroupAsync(2, async (comm, ct) =>
        {
            using var model = SynthWeightSource.LoadTiny(config);
            ICommunicator mine = comm.Rank == 1 ? new SlowReceiver(comm, delay) : comm;
            outputs[comm.Rank] = await new KvRunaheadPrefill(model, mine).RunAsync(prompt, partition, prompt.Length, ct);
        }, TimeSpan.FromSeconds(20), SmallRing, shaper: null);

        var rank0 = outputs[0].Recorder.Spans;
        // The compute loop never waited for a send inside a layer; it waited once, after its last layer.
        Assert.DoesNotContain(rank0, s => s.Kind == SpanKind.Send && s.Layer >= 0);
        var finalWait = Assert.Single(rank0, s => s.Kind == SpanKind.Send);
        Assert.Equal(-1, finalWait.Layer);
        long lastCompute = rank0.Where(s => s.Kind == SpanKind.Compute && s.Layer == layers - 1).Max(s => s.EndTicks);
        Assert.True(finalWait.StartTicks >= lastCompute);
        // Its sender thread was still feeding earlier layers to rank 1 when the compute loop had finished them all:
        // rank 1 takes a layer every 100 ms, so layer L-2 cannot be through the ring before ~500 ms.
        var transfers = rank0.Where(s => s.Kind == SpanKind.Transfer).OrderBy(s => s.Layer).ToList();
        Assert.Equal(Enumerable.Range(0, layers), transfers.Select(s => s.Layer));
        Assert.True(transfers[layers - 2].EndTicks > lastCompute,
            $"layer {layers - 2} was through the ring {RankRecorder.TicksToMs(lastCompute - transfers[layers - 2].EndTicks):0.0} ms before rank 0 finished computing");
        // Transfers are a lane of their own: the totals still add up to the rank's own time only.
        var totals = outputs[0].Recorder.Totals();
        Assert.Equal(RankRecorder.TicksToMs(finalWait.DurationTicks), totals.SendMs, 3);
    }

    [Fact]
    public async Task A_next_rank_dying_with_sends_in_flight_is_named_within_the_bound()
    {
        var config = Config(layers: 8);
        var prompt = PrefillReference.Prompt(1000, config.VocabSize);
        var partition = Partition.FromChunks([800, 200], prompt.Length, 2);
        // Rank 1 "is" a short-lived process: the transport decides a peer is dead from its pid.
        using var stand_in = Process.Start(new ProcessStartInfo("sleep", "60") { UseShellExecute = false })!;
        using var segment = SharedMemorySegment.Create(2, SmallRing);
        using var c0 = new SharedMemoryCommunicator(segment, 0, null, TimeSpan.FromSeconds(60), ownsSegment: false);
        using var c1 = new SharedMemoryCommunicator(segment, 1, null, TimeSpan.FromSeconds(60), ownsSegment: false);
        segment.RegisterPid(1, stand_in.Id);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var model = SynthWeightSource.LoadTiny(config);
        var prefill = new KvRunaheadPrefill(model, c0);
        var rank0 = Task.Run(() => prefill.RunAsync(prompt, partition, prompt.Length, cts.Token));
        // Rank 1 takes layer 0 and then hangs: rank 0's sender blocks on the full ring with layer 1 (205 KB) in flight.
        using (var first = await c1.ReceiveAsync(0, 0, cts.Token)) Assert.Equal(2 * 800 * config.KvDim, first.Data.Length);
        await Task.Delay(200);
        Assert.False(rank0.IsCompleted);

        var clock = Stopwatch.StartNew();
        stand_in.Kill();
        var e = await Assert.ThrowsAsync<RankFailedException>(() => rank0.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.True(clock.Elapsed < FailureBound, $"took {clock.Elapsed}");
        Assert.Equal(1, e.FailedRank);
        Assert.Contains("rank 1", e.Message);
        // Nothing of the job is left running: its buffers are all back in the pool.
        Assert.InRange(prefill.PooledHandoffBuffers, 1, config.Layers);
    }

    /// <summary>A next rank that is slow to take each message (as one with much more work per layer would be).</summary>
    private sealed class SlowReceiver(ICommunicator inner, TimeSpan delay) : ICommunicator
    {
        public int Rank => inner.Rank;
        public int WorldSize => inner.WorldSize;
        public int PrevRank => inner.PrevRank;
        public int NextRank => inner.NextRank;
        public TimeSpan ReceiveTimeout { get => inner.ReceiveTimeout; set => inner.ReceiveTimeout = value; }
        public ValueTask SendAsync(int dest, int tag, ReadOnlyMemory<float> data, CancellationToken ct) => inner.SendAsync(dest, tag, data, ct);
        public ValueTask SendBytesAsync(int dest, int tag, ReadOnlyMemory<byte> data, CancellationToken ct) => inner.SendBytesAsync(dest, tag, data, ct);

        public async ValueTask<ReceivedTensor> ReceiveAsync(int source, int tag, CancellationToken ct)
        {
            await Task.Delay(delay, ct);
            return await inner.ReceiveAsync(source, tag, ct);
        }

        public ValueTask AllGatherAsync(ReadOnlyMemory<float> mine, Memory<float> all, ReadOnlyMemory<int> counts, CancellationToken ct) =>
            inner.AllGatherAsync(mine, all, counts, ct);

        public ValueTask BarrierAsync(CancellationToken ct) => inner.BarrierAsync(ct);
        public void Dispose() => inner.Dispose();
    }
}
