using Runahead.Models;
using Runahead.Numerics.Jit;
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
        bool saved = Bf16Dot.ForceWidening;
        try
        {
            Bf16Dot.ForceWidening = true;
            using var scenario = new WorkerRanksScenario(seed: 12);
            using var reference = Model.Load(scenario.ModelPath, new ModelLoadOptions { Threads = 1 });
            Assert.Equal("widening", reference.Bf16Path);
            var prompt = PrefillReference.Prompt(40, reference.Config.VocabSize);
            var (expectedLogits, expectedIds) = PrefillReference.Single(reference, prompt, WorkerRanksScenario.Generate);

            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            var run = await scenario.RunKvrOnWorkersAsync(prompt, timeout.Token);
            PrefillReference.AssertClose(expectedLogits, run.Logits!, "KVR over 3 ranks told to widen");
            Assert.Equal(expectedIds, run.Generated);
            // The cache name hashes the layout (bf16=rows|pairs): the ranks wrote the one this widening process expects.
            Assert.Equal(PackedWeightCache.CachePath(scenario.ModelPath, scenario.CacheFolder),
                Assert.Single(Directory.GetFiles(scenario.CacheFolder, "*.rapanels")));
        }
        finally
        {
            Bf16Dot.ForceWidening = saved;
        }
    }
}
