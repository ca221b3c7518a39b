using Runahead.Distributed;
using Runahead.Formats;
using Runahead.Formats.Synthetic;
using Runahead.Generation;
using Runahead.Models;
using Runahead.Prefill;
using Runahead.Tests.Prefill;

namespace Runahead.Tests.Models;

/// <summary>Real rank worker processes load through one shared packed-weight cache and still agree with one process.</summary>
[Collection(WorkerProcessCollection.Name)]
public sealed class SharedWeightsRankTests
{
    [Fact]
    public async Task Worker_ranks_build_one_cache_map_it_and_match_a_single_process()
    {
        var dir = Directory.CreateTempSubdirectory("runahead-sharedranks-");
        var oldDir = Environment.GetEnvironmentVariable("RUNAHEAD_SHARED_WEIGHTS_DIR");
        try
        {
            var path = Path.Combine(dir.FullName, "ranks.gguf");
            SyntheticModel.Write(ModelShapes.Get("tiny"), TensorType.BF16, path, seed: 11);
            var cache = Path.Combine(dir.FullName, "packed");
            // The workers inherit the environment: their caches go here, not into the user's cache folder.
            Environment.SetEnvironmentVariable("RUNAHEAD_SHARED_WEIGHTS_DIR", cache);

            using var reference = Model.Load(path, new ModelLoadOptions { Threads = 1 });
            var prompt = PrefillReference.Prompt(40, reference.Config.VocabSize);
            var (expectedLogits, expectedIds) = PrefillReference.Single(reference, prompt, 4);

            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            DateTime? written = null;
            for (int start = 0; start < 2; start++)
            {
                // First start: one rank builds while the others wait on the lock; second start: every rank maps it.
                using var host = await RankJobHosts.CreateAsync(RankTransport.SharedMemory, path, 3, 1, null, null, timeout.Token);
                var run = (await new PrefillClient(host).RunAsync(prompt, PrefillStrategyKind.Kvr, PartitionSpec.Even, 4,
                    SamplingOptions.Greedy, null, true, null, timeout.Token))!;
                PrefillReference.AssertClose(expectedLogits, run.Logits!, $"KVR over 3 ranks with shared weights (start {start})");
                Assert.Equal(expectedIds, run.Generated);
                var files = Directory.GetFiles(cache, "*.rapanels");
                Assert.Single(files);
                Assert.Equal(PackedWeightCache.CachePath(path, cache), files[0]);
                Assert.Empty(Directory.GetFiles(cache, "*.tmp"));
                // Nobody rewrote it on the second start: the ranks mapped the first start's file.
                written ??= File.GetLastWriteTimeUtc(files[0]);
                Assert.Equal(written, File.GetLastWriteTimeUtc(files[0]));
            }
        }
        finally
        {
            Environment.SetEnvironmentVariable("RUNAHEAD_SHARED_WEIGHTS_DIR", oldDir);
            dir.Delete(true);
        }
    }
}
