using Runahead.Distributed;
using Runahead.Formats;
using Runahead.Formats.Synthetic;
using Runahead.Generation;
using Runahead.Models;
using Runahead.Numerics.Jit;
using Runahead.Prefill;
using Runahead.Tests.Prefill;

namespace Runahead.Tests.Models;

/// <summary>
/// Worker ranks pack BF16 weights in the coordinator's layout, not in one each measured for itself: here the coordinator
/// widens while (on a CPU where the kernel wins) a worker left alone would pick the kernel.
/// </summary>
[Collection(WorkerProcessCollection.Name)]
public sealed class Bf16RankLayoutTests
{
    [Fact]
    public async Task Worker_ranks_follow_the_coordinator_bf16_decision()
    {
        var dir = Directory.CreateTempSubdirectory("runahead-bf16ranks-");
        var oldDir = Environment.GetEnvironmentVariable("RUNAHEAD_SHARED_WEIGHTS_DIR");
        bool saved = Bf16Dot.ForceWidening;
        try
        {
            Bf16Dot.ForceWidening = true;
            var path = Path.Combine(dir.FullName, "ranks.gguf");
            SyntheticModel.Write(ModelShapes.Get("tiny"), TensorType.BF16, path, seed: 12);
            var cache = Path.Combine(dir.FullName, "packed");
            Environment.SetEnvironmentVariable("RUNAHEAD_SHARED_WEIGHTS_DIR", cache);

            using var reference = Model.Load(path, new ModelLoadOptions { Threads = 1 });
            Assert.Equal("widening", reference.Bf16Path);
            var prompt = PrefillReference.Prompt(40, reference.Config.VocabSize);
            var (expectedLogits, expectedIds) = PrefillReference.Single(reference, prompt, 4);

            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            using var host = await RankJobHosts.CreateAsync(RankTransport.SharedMemory, path, 3, 1, null, null, timeout.Token);
            var run = (await new PrefillClient(host).RunAsync(prompt, PrefillStrategyKind.Kvr, PartitionSpec.Even, 4,
                SamplingOptions.Greedy, null, true, null, timeout.Token))!;
            PrefillReference.AssertClose(expectedLogits, run.Logits!, "KVR over 3 ranks told to widen");
            Assert.Equal(expectedIds, run.Generated);
            // The cache name hashes the layout (bf16=rows|pairs): the ranks wrote the one this widening process expects.
            Assert.Equal(PackedWeightCache.CachePath(path, cache), Assert.Single(Directory.GetFiles(cache, "*.rapanels")));
        }
        finally
        {
            Bf16Dot.ForceWidening = saved;
            Environment.SetEnvironmentVariable("RUNAHEAD_SHARED_WEIGHTS_DIR", oldDir);
            dir.Delete(true);
        }
    }
}
