using Runahead.Distributed;
using Runahead.Generation;
using Runahead.Models;
using Runahead.Prefill;

namespace Runahead.Tests.Prefill;

/// <summary>
/// The equivalence matrix with real worker processes over the shared-memory transport: every strategy and every
/// P = 1..4 on stories260K with all three partition shapes, and the Falcon MQA fixture; one pool per P serves every job.
/// </summary>
[Collection(WorkerProcessCollection.Name)]
public class SharedMemoryEquivalenceTests
{
    private const int NewTokens = 6;

    [SkippableTheory]
    [InlineData("llama2c/stories260K.bin", 1)]
    [InlineData("llama2c/stories260K.bin", 2)]
    [InlineData("llama2c/stories260K.bin", 3)]
    [InlineData("llama2c/stories260K.bin", 4)]
    [InlineData("hf/tiny-falcon-7b-style", 3)]
    public async Task Worker_processes_match_single(string fixture, int ranks)
    {
        var path = Fixtures.Path(fixture);
        using var reference = Model.Load(path, new ModelLoadOptions { Threads = 1 });
        var prompt = PrefillReference.Prompt(33, reference.Config.VocabSize);
        var (expectedLogits, expectedIds) = PrefillReference.Single(reference, prompt, NewTokens);

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var host = await RankJobHosts.CreateAsync(RankTransport.SharedMemory, path, ranks, 1, null, null, timeout.Token);
        var client = new PrefillClient(host);
        foreach (var strategy in new[] { PrefillStrategyKind.Tsp, PrefillStrategyKind.TspCausal, PrefillStrategyKind.Kvr })
            foreach (var (name, spec) in PrefillReference.Partitions(prompt.Length, ranks))
            {
                var run = (await client.RunAsync(prompt, strategy, spec, NewTokens, SamplingOptions.Greedy, null, true, null, timeout.Token))!;
                string what = $"{fixture} {strategy.Name()} P={ranks} {name} ({run.Partition}) over shm";
                PrefillReference.AssertClose(expectedLogits, run.Logits!, what);
                Assert.True(expectedIds.SequenceEqual(run.Generated), $"{what}: {string.Join(' ', run.Generated)} != {string.Join(' ', expectedIds)}");
                Assert.Equal(ranks, run.RankTimings.Count);
            }
        if (ranks == 1)
        {
            var single = (await client.RunAsync(prompt, PrefillStrategyKind.Single, PartitionSpec.Even, NewTokens, null, null, true, null, timeout.Token))!;
            PrefillReference.AssertClose(expectedLogits, single.Logits!, "single over shm");
            Assert.Equal(expectedIds, single.Generated);
        }
    }

    [SkippableFact]
    public async Task Kvr_over_a_64_KiB_ring_matches_single()
    {
        // Each layer's hand-off is several times the ring: it travels in fragments while the next rank takes them.
        const long ring = 64 << 10;
        var path = Fixtures.Path("llama2c/stories260K.bin");
        using var reference = Model.Load(path, new ModelLoadOptions { Threads = 1 });
        var prompt = PrefillReference.Prompt(Math.Min(480, reference.Config.ContextLength), reference.Config.VocabSize);
        var (expectedLogits, expectedIds) = PrefillReference.Single(reference, prompt, NewTokens);
        var spec = PartitionSpec.Parse("240,160,80");
        Assert.True(2L * 400 * reference.Config.KvDim * sizeof(float) > ring, "rank 1's hand-off must exceed the ring");

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var host = await RankJobHosts.CreateAsync(RankTransport.SharedMemory, path, 3, 1, null, null, timeout.Token, sharedMemoryRingBytes: ring);
        var client = new PrefillClient(host);
        for (int job = 0; job < 2; job++)
        {
            var run = (await client.RunAsync(prompt, PrefillStrategyKind.Kvr, spec, NewTokens, SamplingOptions.Greedy, null, true, null, timeout.Token))!;
            PrefillReference.AssertClose(expectedLogits, run.Logits!, $"kvr over a 64 KiB ring, job {job}");
            Assert.Equal(expectedIds, run.Generated);
        }
    }
}
