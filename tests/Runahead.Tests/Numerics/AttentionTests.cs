using Runahead.Numerics;

namespace Runahead.Tests.Numerics;

public class AttentionTests
{
    public static TheoryData<int, int, int, int, int, int, AttentionMask, int> Cases()
    {
        var data = new TheoryData<int, int, int, int, int, int, AttentionMask, int>();
        // (queries, queryStart, totalKeys, heads, kvHeads, headDim)
        (int c, int start, int total, int heads, int kv, int d)[] shapes =
        [
            (1, 0, 1, 1, 1, 16),       // one token
            (1, 99, 100, 8, 1, 64),    // decode, MQA
            (7, 0, 7, 4, 4, 8),        // plain causal, tiny heads (stories260K-like)
            (33, 0, 33, 8, 4, 16),     // GQA 2
            (31, 40, 71, 8, 2, 32),    // KV-Runahead chunk after a prefix, GQA 4
            (65, 64, 129, 16, 2, 64),  // GQA 8, crosses key tiles
            (20, 10, 100, 6, 3, 24),   // TSP-style: keys beyond the chunk exist, odd head size
            (129, 0, 129, 2, 1, 128),  // several query blocks, head 128
            (9, 3, 12, 71, 1, 16),     // Falcon-like MQA with 71 heads
        ];
        foreach (var (c, start, total, heads, kv, d) in shapes)
            foreach (var mask in new[] { AttentionMask.PrefixCausal, AttentionMask.DenseThenMask })
                foreach (int threads in new[] { 1, 2 })
                    data.Add(c, start, total, heads, kv, d, mask, threads);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void TiledMatchesReference(int c, int queryStart, int totalKeys, int heads, int kvHeads, int d, AttentionMask mask, int threads)
    {
        using var pool = new ComputePool(threads);
        var q = TestData.Floats(c * heads * d, 1, 2f);
        var k = TestData.Floats(totalKeys * kvHeads * d, 2, 2f);
        var v = TestData.Floats(totalKeys * kvHeads * d, 3);
        var expected = new float[c * heads * d];
        AttentionReference.Forward(q, k, v, expected, c, queryStart, totalKeys, heads, kvHeads, d, pool, mask);
        var actual = new float[c * heads * d];
        Attention.Forward(q, k, v, actual, c, queryStart, totalKeys, heads, kvHeads, d, pool, mask);
        // Outputs are convex combinations of V rows (|v| <= 1): an absolute bound is relative to their magnitude.
        TestData.AssertClose(expected, actual, ReadOnlySpan<float>.Empty, 1e-5f, 2e-6f);
    }

    [Fact]
    public void QueryStartVariationsAgree()
    {
        using var pool = new ComputePool(2);
        const int total = 50, heads = 4, kv = 2, d = 32;
        var k = TestData.Floats(total * kv * d, 5);
        var v = TestData.Floats(total * kv * d, 6);
        for (int start = 0; start < total; start += 7)
        {
            int c = Math.Min(13, total - start);
            var q = TestData.Floats(c * heads * d, start);
            var expected = new float[c * heads * d];
            var actual = new float[c * heads * d];
            AttentionReference.Forward(q, k, v, expected, c, start, total, heads, kv, d, pool);
            Attention.Forward(q, k, v, actual, c, start, total, heads, kv, d, pool);
            TestData.AssertClose(expected, actual, ReadOnlySpan<float>.Empty, 1e-5f, 2e-6f);
        }
    }

    [Fact]
    public void LogitsOfSeveralTensKeepFullAccuracy()
    {
        const int c = 100, heads = 4, kv = 2, d = 64;
        var q = TestData.Floats(c * heads * d, 17, 10f);
        var k = TestData.Floats(c * kv * d, 18, 10f);
        var v = TestData.Floats(c * kv * d, 19);
        var expected = new float[c * heads * d];
        var actual = new float[c * heads * d];
        AttentionReference.Forward(q, k, v, expected, c, 0, c, heads, kv, d, ComputePool.Single);
        Attention.Forward(q, k, v, actual, c, 0, c, heads, kv, d, ComputePool.Single);
        TestData.AssertClose(expected, actual, ReadOnlySpan<float>.Empty, 2e-5f, 5e-6f);
    }

    [Fact]
    public void LargeScoresDoNotOverflow()
    {
        const int c = 70, heads = 2, d = 16;
        var q = TestData.Floats(c * heads * d, 7, 30f);
        var k = TestData.Floats(c * heads * d, 8, 30f);
        var v = TestData.Floats(c * heads * d, 9);
        var expected = new float[c * heads * d];
        var actual = new float[c * heads * d];
        AttentionReference.Forward(q, k, v, expected, c, 0, c, heads, heads, d, ComputePool.Single);
        Attention.Forward(q, k, v, actual, c, 0, c, heads, heads, d, ComputePool.Single);
        // Scores reach ~3000 here: their float rounding alone (ulp 2.4e-4) moves softmax weights by ~1e-4 relative
        // in any float implementation, the reference included, so the bound is looser than for ordinary logits.
        TestData.AssertClose(expected, actual, ReadOnlySpan<float>.Empty, 1e-4f, 1e-5f);
    }

    [Fact]
    public void BadShapesAreRejected()
    {
        var buf = new float[64];
        Assert.Throws<ArgumentOutOfRangeException>(() => Attention.Forward(buf, buf, buf, buf, 2, 1, 2, 1, 1, 8, ComputePool.Single));
        Assert.Throws<ArgumentException>(() => Attention.Forward(buf, buf, buf, buf, 1, 0, 1, 3, 2, 8, ComputePool.Single));
        Assert.Throws<ArgumentException>(() => Attention.Forward(buf, buf, buf, new float[4], 1, 0, 1, 1, 1, 8, ComputePool.Single));
        Attention.Forward(buf, buf, buf, buf, 0, 0, 0, 1, 1, 8, ComputePool.Single);
    }
}
