using Runahead.Models;

namespace Runahead.Tests.Models;

/// <summary>
/// One compute thread, so the whole forward pass runs on the test's thread and its allocations can be counted
/// exactly (process-wide counters would include other tests' background threads).
/// </summary>
public class AllocationTests
{
    [Fact]
    public void DecodeStepsAllocateAlmostNothing()
    {
        using var model = Model.Load(RandomWeightSource.Create("falcon-new"), new ModelLoadOptions { Threads = 1 });
        var ws = model.CreateWorkspace(8);
        var cache = new KvCache(model.Config, 60);
        var logits = new float[model.Config.VocabSize];
        model.Forward([1, 2, 3, 4, 5, 6, 7, 8], cache, logits, ws);
        int[] step = [9];
        for (int i = 0; i < 5; i++) model.Forward(step, cache, logits, ws); // warm up (JIT, pools)

        long before = GC.GetAllocatedBytesForCurrentThread();
        const int steps = 40;
        for (int i = 0; i < steps; i++) model.Forward(step, cache, logits, ws);
        long perStep = (GC.GetAllocatedBytesForCurrentThread() - before) / steps;
        Assert.True(perStep < 64, $"{perStep} bytes allocated per decode step");

        // Prefill chunks reuse the same workspace: rewind the cache and run 8-token chunks again.
        int[] chunk = [1, 2, 3, 4, 5, 6, 7, 8];
        before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 10; i++)
        {
            cache.SetLength(0);
            model.Forward(chunk, cache, logits, ws);
        }
        long perChunk = (GC.GetAllocatedBytesForCurrentThread() - before) / 10;
        Assert.True(perChunk < 64, $"{perChunk} bytes allocated per prefill chunk");
    }
}
