using Runahead.Models;

namespace Runahead.Tests.Models;

/// <summary>Counts every thread's allocations, so it runs alone (other tests would be counted too).</summary>
[CollectionDefinition(nameof(AllocationTests), DisableParallelization = true)]
public sealed class AllocationTestsCollection;

[Collection(nameof(AllocationTests))]
public class AllocationTests
{
    [Fact]
    public void DecodeStepsAllocateAlmostNothing()
    {
        using var model = Model.Load(RandomWeightSource.Create("falcon-new"), new ModelLoadOptions { Threads = 2 });
        var ws = model.CreateWorkspace(8);
        var cache = new KvCache(model.Config, 60);
        var logits = new float[model.Config.VocabSize];
        model.Forward([1, 2, 3, 4, 5, 6, 7, 8], cache, logits, ws);
        int[] step = [9];
        for (int i = 0; i < 5; i++) model.Forward(step, cache, logits, ws); // warm up (JIT, pools)

        long before = GC.GetTotalAllocatedBytes(precise: true);
        const int steps = 40;
        for (int i = 0; i < steps; i++) model.Forward(step, cache, logits, ws);
        long perStep = (GC.GetTotalAllocatedBytes(precise: true) - before) / steps;
        Assert.True(perStep < 2048, $"{perStep} bytes allocated per decode step");

        // Prefill chunks reuse the same workspace: rewind the cache and run 8-token chunks again.
        int[] chunk = [1, 2, 3, 4, 5, 6, 7, 8];
        before = GC.GetTotalAllocatedBytes(precise: true);
        for (int i = 0; i < 10; i++)
        {
            cache.SetLength(0);
            model.Forward(chunk, cache, logits, ws);
        }
        long perChunk = (GC.GetTotalAllocatedBytes(precise: true) - before) / 10;
        Assert.True(perChunk < 2048, $"{perChunk} bytes allocated per prefill chunk");
    }
}
