using System.Diagnostics;
using Runahead.Formats;
using Runahead.Formats.Synthetic;
using Runahead.Generation;
using Runahead.Tests.Prefill;

namespace Runahead.Tests.Generation;

/// <summary>
/// The coordinator of a parallel session must not hold a second copy of the weights: its resident memory grows by
/// far less than one model's prepared weights, which a single-process load of the same file does add.
/// </summary>
[Collection(WorkerProcessCollection.Name)]
public class CoordinatorMemoryTests(Xunit.Abstractions.ITestOutputHelper output)
{
    [Fact]
    public async Task Parallel_session_coordinator_stays_far_below_the_weights_size()
    {
        var dir = Directory.CreateTempSubdirectory("runahead-coordinator-");
        try
        {
            // About 50 M parameters: large enough that a copy of the weights stands out of the runtime's own noise.
            var config = ModelShapes.Get("tiny") with { Dim = 1024, Heads = 8, KvHeads = 8, HeadDim = 128, FfnDim = 2816, Layers = 4, VocabSize = 2048 };
            var path = Path.Combine(dir.FullName, "coordinator.gguf");
            SyntheticModel.Write(config, TensorType.BF16, path, seed: 7);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
            var greedy = new GenerationOptions { MaxNewTokens = 4, Sampling = SamplingOptions.Greedy };

            long before = Resident();
            long parallelGrowth;
            using (var session = await LlmSession.LoadAsync(path, new LlmSessionOptions
            {
                Parallel = new ParallelGenerationOptions { Ranks = 2, ThreadsPerRank = 1 },
            }, timeout.Token))
            {
                await foreach (var _ in session.GenerateAsync("a b c d e f g h", greedy, timeout.Token)) { }
                Assert.Equal(2, session.LastStats!.RankTimings.Count);
                parallelGrowth = Resident() - before;
            }

            // The control measures the managed heap, where a single-process load keeps its packed weights: the process's
            // working set also moves with memory the GC hands back from earlier tests, which made it flaky here.
            long managedBefore = GC.GetTotalMemory(forceFullCollection: true);
            long weightBytes, singleGrowth;
            using (var single = LlmSession.Load(path, new LlmSessionOptions { Model = new Runahead.Models.ModelLoadOptions { Threads = 1 } }))
            {
                await foreach (var _ in single.GenerateAsync("a b c d e f g h", greedy, timeout.Token)) { }
                weightBytes = single.Model!.WeightBytes;
                singleGrowth = GC.GetTotalMemory(forceFullCollection: true) - managedBefore;
            }
            output.WriteLine($"weights {weightBytes >> 20} MiB; managed heap growth of a single-process load {singleGrowth >> 20} MiB; resident growth of the parallel coordinator {parallelGrowth >> 20} MiB");
            Assert.True(weightBytes > 80L << 20, $"the model has only {weightBytes >> 20} MiB of weights");
            Assert.True(singleGrowth > weightBytes / 2, $"a single-process load grew by {singleGrowth >> 20} MiB for {weightBytes >> 20} MiB of weights");
            Assert.True(parallelGrowth < weightBytes / 4,
                $"the parallel coordinator grew by {parallelGrowth >> 20} MiB; the weights are {weightBytes >> 20} MiB");
        }
        finally
        {
            dir.Delete(true);
        }
    }

    private static long Resident()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        using var self = Process.GetCurrentProcess();
        return self.WorkingSet64;
    }
}
