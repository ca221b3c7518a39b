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
}
