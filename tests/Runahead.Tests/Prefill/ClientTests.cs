using Runahead.Distributed;
using Runahead.Generation;
using Runahead.Models;
using Runahead.Prefill;

namespace Runahead.Tests.Prefill;

/// <summary>The coordinator path (job encoding, ranks decoding on the last rank, streamed tokens, timelines) in-process.</summary>
public class ClientTests
{
    [Theory]
    [InlineData("single", 1)]
    [InlineData("tsp", 2)]
    [InlineData("tsp-causal", 3)]
    [InlineData("kvr", 4)]
    public async Task Client_generates_what_single_generates(string strategy, int ranks)
    {
        using var reference = SynthWeightSource.LoadTiny();
        var prompt = PrefillReference.Prompt(29, reference.Config.VocabSize);
        var (expectedLogits, expectedIds) = PrefillReference.Single(reference, prompt, 6);

        var models = Enumerable.Range(0, ranks).Select(_ => SynthWeightSource.LoadTiny()).ToArray();
        using var host = new InProcessRankJobHost(models);
        var client = new PrefillClient(host);
        var streamed = new List<int>();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var run = (await client.RunAsync(prompt, PrefillStrategyNames.Parse(strategy), PartitionSpec.Even, 6, SamplingOptions.Greedy, null,
            returnLogits: true, streamed.Add, timeout.Token))!;

        PrefillReference.AssertClose(expectedLogits, run.Logits!, strategy);
        Assert.Equal(expectedIds, run.Generated);
        Assert.Equal(expectedIds, streamed);
        Assert.True(run.TtftMs > 0);
        Assert.Equal(ranks, run.RankTimings.Count);
        // Every rank's spans fill the TTFT window exactly (idle included).
        foreach (var t in run.RankTimings)
            Assert.Equal(run.TtftMs, t.ComputeMs + t.WaitKvMs + t.SendMs + t.IdleMs, 3);
        Assert.True(run.RankTimings[^1].ComputeMs > 0);
    }

    [Theory]
    [InlineData("tsp")]
    [InlineData("kvr")]
    public async Task Emulated_slow_links_change_timing_not_results(string strategy)
    {
        using var reference = SynthWeightSource.LoadTiny();
        var prompt = PrefillReference.Prompt(40, reference.Config.VocabSize);
        var (expectedLogits, expectedIds) = PrefillReference.Single(reference, prompt, 4);
        // 20 MB/s and 100 us per message: a layer's K,V hand-off (a few KiB) takes a visible fraction of a millisecond.
        var links = new LinkShaper(3, 20e6, TimeSpan.FromMilliseconds(0.1));
        links.AddSidecar(1, 2, 0.5, TimeSpan.FromMilliseconds(1), TimeSpan.FromMilliseconds(3), seed: 5);
        using var host = new InProcessRankJobHost(Enumerable.Range(0, 3).Select(_ => SynthWeightSource.LoadTiny()).ToArray(), links);
        var client = new PrefillClient(host);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var run = (await client.RunAsync(prompt, PrefillStrategyNames.Parse(strategy), PartitionSpec.Parse("20,12,8"), 4, null, null, true, null, timeout.Token))!;
        PrefillReference.AssertClose(expectedLogits, run.Logits!, strategy + " over paced links");
        Assert.Equal(expectedIds, run.Generated);
        Assert.True(run.RankTimings[2].WaitKvMs > 0);
    }

    [Fact]
    public async Task Stop_id_ends_decoding_and_budget_is_respected()
    {
        var models = new[] { SynthWeightSource.LoadTiny(), SynthWeightSource.LoadTiny() };
        using var host = new InProcessRankJobHost(models);
        var client = new PrefillClient(host);
        var prompt = PrefillReference.Prompt(12, 96);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var free = (await client.RunAsync(prompt, PrefillStrategyKind.Kvr, PartitionSpec.Even, 5, null, null, false, null, timeout.Token))!;
        Assert.Equal(5, free.Generated.Length);
        Assert.Null(free.Logits);
        var stopped = (await client.RunAsync(prompt, PrefillStrategyKind.Kvr, PartitionSpec.Even, 5, null, new[] { free.Generated[1] }, false, null, timeout.Token))!;
        Assert.Equal(free.Generated[..2], stopped.Generated);
    }

    [Fact]
    public async Task Cancellation_stops_a_prefill_promptly()
    {
        // One rank never waits on a peer, so this checks the per-layer cancellation point, not the communicator's.
        // 16k tokens through 64 layers take tens of seconds (attention alone is several TFLOP), so the prefill is surely
        // still running when the token fires: with 4k tokens a quiet machine finished before the 200 ms were up.
        using var host = new InProcessRankJobHost(new[] { SynthWeightSource.LoadTiny(SynthWeightSource.TinyLlama(layers: 64, context: 16384)) });
        var client = new PrefillClient(host);
        var prompt = PrefillReference.Prompt(16000, 96);
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            client.RunAsync(prompt, PrefillStrategyKind.Kvr, PartitionSpec.Even, 1, null, null, false, null, cancel.Token));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"cancellation took {clock.Elapsed}");
    }

    [Fact]
    public async Task Bad_requests_fail_with_clear_errors()
    {
        using var host = new InProcessRankJobHost(new[] { SynthWeightSource.LoadTiny(), SynthWeightSource.LoadTiny() });
        var client = new PrefillClient(host);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var e = await Assert.ThrowsAsync<RunaheadException>(() =>
            client.RunAsync(new[] { 1, 2, 3 }, PrefillStrategyKind.Single, PartitionSpec.Even, 1, null, null, false, null, timeout.Token));
        Assert.Contains("single runs on one rank", e.Message);
        e = await Assert.ThrowsAsync<RunaheadException>(() =>
            client.RunAsync(new[] { 1 }, PrefillStrategyKind.Kvr, PartitionSpec.Even, 1, null, null, false, null, timeout.Token));
        Assert.Contains("fewer than the 2 ranks", e.Message);
        e = await Assert.ThrowsAsync<RunaheadException>(() =>
            client.RunAsync(new[] { 1, 2, 3 }, PrefillStrategyKind.Kvr, PartitionSpec.Parse("predicted"), 1, null, null, false, null, timeout.Token));
        Assert.Contains("runahead calibrate", e.Message);
        // A rank that throws (token id outside the vocabulary) fails the job with its message.
        e = await Assert.ThrowsAnyAsync<RunaheadException>(() =>
            client.RunAsync(new[] { 1, 2, 999 }, PrefillStrategyKind.Kvr, PartitionSpec.Even, 1, null, null, false, null, timeout.Token));
        Assert.Contains("999", e.Message);
    }
}
