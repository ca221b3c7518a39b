using Runahead.Formats;
using Runahead.Models;
using Runahead.Numerics;

namespace Runahead.Tests.Numerics;

/// <summary>Hot paths must not allocate per call (checked on the calling thread, where a one-thread pool runs them).</summary>
public class AllocationTests
{
    [Fact]
    public void KernelsDoNotAllocatePerCall()
    {
        var pool = ComputePool.Single;
        var weight = LinearWeight.FromStored(TestData.Stored(TensorType.BF16, 70, 96, 1), TensorType.BF16, 70, 96);
        var x = TestData.Floats(33 * 96, 2);
        var y = new float[33 * 70];
        var q = TestData.Floats(20 * 8 * 32, 3);
        var kv = TestData.Floats(40 * 2 * 32, 4);
        var att = new float[q.Length];
        var norm = new float[x.Length];
        var w = TestData.Floats(96, 5);

        void Step()
        {
            weight.Forward(x, 33, y, pool);
            weight.Forward(x, 1, y, pool);
            Attention.Forward(q, kv, kv, att, 20, 20, 40, 8, 2, 32, pool);
            Attention.Forward(q, kv, kv, att, 20, 20, 40, 8, 2, 32, pool, precision: AttentionPrecision.Bf16); // F32 without the kernel
            Ops.RmsNorm(x, w, norm, 33, 96, 1e-5f);
            Ops.Rope(norm, 33, 3, 32, 7, 10000f, RopeStyle.NeoX);
            Ops.SwiGlu(norm, x);
            Ops.Softmax(norm.AsSpan(0, 96));
        }

        // Warm-up creates the per-thread scratch and the RoPE table; tiered compilation may allocate once on the
        // thread that trips a method's call count, so the claim checked is that some later round allocates nothing.
        for (int i = 0; i < 100; i++) Step();
        long fewest = long.MaxValue;
        for (int round = 0; round < 3; round++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 50; i++) Step();
            fewest = Math.Min(fewest, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        Assert.Equal(0, fewest);
    }
}
