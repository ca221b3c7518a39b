using Runahead.Models;
using Runahead.Tests.Prefill;

namespace Runahead.Tests.Models;

/// <summary>Real rank worker processes load through one shared packed-weight cache and still agree with one process.</summary>
[Collection(WorkerProcessCollection.Name)]
public sealed class SharedWeightsRankTests
{
    [Fact]
    public async Task Worker_ranks_build_one_cache_map_it_and_match_a_single_process()
    {
        using var scenario = new WorkerRanksScenario(seed: 11);
        using var reference = Model.Load(scenario.ModelPath, new ModelLoadOptions { Threads = 1 });
        var prompt = PrefillReference.Prompt(40, reference.Config.VocabSize);
        var (expectedLogits, expectedIds) = PrefillReference.Single(reference, prompt, WorkerRanksScenario.Generate);

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        DateTime? written = null;
        for (int start = 0; start < 2; start++)
        {
            // First start: one rank builds while the others wait on the lock; second start: every rank maps it.
            var run = await scenario.RunKvrOnWorkersAsync(prompt, timeout.Token);
            PrefillReference.AssertClose(expectedLogits, run.Logits!, $"KVR over 3 ranks with shared weights (start {start})");
            Assert.Equal(expectedIds, run.Generated);
            var files = Directory.GetFiles(scenario.CacheFolder, "*.rapanels");
            Assert.Single(files);
            Assert.Equal(PackedWeightCache.CachePath(scenario.ModelPath, scenario.CacheFolder), files[0]);
            Assert.Empty(Directory.GetFiles(scenario.CacheFolder, "*.tmp"));
            // Nobody rewrote it on the second start: the ranks mapped the first start's file.
            written ??= File.GetLastWriteTimeUtc(files[0]);
            Assert.Equal(written, File.GetLastWriteTimeUtc(files[0]));
        }
    }
}
