using Runahead.Numerics;
using Runahead.Numerics.Jit;

namespace Runahead.Tests.Numerics;

/// <summary>
/// <see cref="FlashAttentionBf16"/> against the F32 definition. Q, K and V are rounded to bf16 (8 significant bits,
/// relative error up to 2^-9 = 0.002 each) and P truncated (relative error in [0, 2^-8), its bias cancelled by the
/// normalisation): a score q.k/sqrt(d) of inputs in [-2, 2] moves by about 2 * 2^-9 * |q.k|/sqrt(d) (a few 1e-3),
/// which changes each softmax weight by that much relative, and V's rounding adds 2^-9 |v|. Outputs are convex
/// combinations of V rows (|v| &lt;= 1), and the errors of different keys largely cancel in the sum: the largest error
/// observed over these cases is ~5e-3 (~4e-3 with P rounded instead); the bound <see cref="Tolerance"/> leaves 1.5x
/// headroom and is still well below what a one-key masking error does (<see cref="AMaskOffByOneFailsTheTolerance"/>).
/// </summary>
public class AttentionBf16Tests
{
    private const float Tolerance = 8e-3f;

    public static TheoryData<int, int, int, int, int, int, AttentionMask, int> Cases()
    {
        var data = new TheoryData<int, int, int, int, int, int, AttentionMask, int>();
        // (queries, queryStart, totalKeys, heads, kvHeads, headDim)
        (int c, int start, int total, int heads, int kv, int d)[] shapes =
        [
            (1, 0, 1, 1, 1, 64),         // one token
            (1, 99, 100, 8, 1, 64),      // a chunk of one query (decode-sized), MQA
            (37, 0, 37, 3, 1, 64),       // odd query count, GQA 3
            (31, 40, 71, 8, 1, 64),      // KV-Runahead chunk after a prefix, GQA 8
            (65, 64, 129, 9, 3, 64),     // smollm-like, crosses key blocks and panels
            (100, 0, 100, 32, 4, 64),    // tinyllama-like
            (29, 5, 61, 4, 4, 64),       // GQA 1, TSP-style keys beyond the chunk
            (20, 10, 100, 6, 2, 24),     // head size under one 32-dim chunk
            (33, 17, 50, 2, 1, 80),      // head size 80: a full and a partial dim chunk
            (9, 3, 12, 3, 1, 38),        // head size not a multiple of 16
            (13, 27, 40, 4, 2, 15),      // odd head size: the last pair's second half is zero padding
            (130, 0, 130, 2, 2, 128),    // head 128: two groups of 16 pairs
        ];
        foreach (var (c, start, total, heads, kv, d) in shapes)
            foreach (var mask in new[] { AttentionMask.PrefixCausal, AttentionMask.DenseThenMask })
                foreach (int threads in new[] { 1, 2 })
                    data.Add(c, start, total, heads, kv, d, mask, threads);
        return data;
    }

    [SkippableTheory]
    [MemberData(nameof(Cases))]
    public void MatchesReferenceWithinBf16Rounding(int c, int queryStart, int totalKeys, int heads, int kvHeads, int d, AttentionMask mask, int threads)
    {
        Skip.IfNot(Bf16Dot.KernelAvailable, "no AVX512_BF16 kernel here: " + Bf16Dot.Status);
        using var pool = new ComputePool(threads);
        var (q, k, v) = Inputs(c, totalKeys, heads, kvHeads, d, seed: c + totalKeys + d);
        var expected = new float[c * heads * d];
        AttentionReference.Forward(q, k, v, expected, c, queryStart, totalKeys, heads, kvHeads, d, pool, mask);
        var actual = RunBf16(q, k, v, c, queryStart, totalKeys, heads, kvHeads, d, pool, mask);
        TestData.AssertClose(expected, actual, ReadOnlySpan<float>.Empty, 0f, Tolerance);
    }

    [SkippableFact]
    public void AMaskOffByOneFailsTheTolerance()
    {
        Skip.IfNot(Bf16Dot.KernelAvailable, "no AVX512_BF16 kernel here: " + Bf16Dot.Status);
        const int c = 40, start = 20, total = 60, heads = 3, kv = 1, d = 64;
        var (q, k, v) = Inputs(c, total, heads, kv, d, seed: 5);
        var actual = RunBf16(q, k, v, c, start, total, heads, kv, d, ComputePool.Single, AttentionMask.PrefixCausal);
        // Each query seeing one key too few: the BF16 result must be further than the tolerance from that.
        var wrong = new float[c * heads * d];
        AttentionReference.Forward(q, k, v, wrong, c, start - 1, total, heads, kv, d, ComputePool.Single);
        float worst = 0;
        for (int i = 0; i < wrong.Length; i++) worst = Math.Max(worst, Math.Abs(wrong[i] - actual[i]));
        Assert.True(worst > 3 * Tolerance, $"an off-by-one mask is only {worst} away");
    }

    [SkippableFact]
    public void GrowingScoresMoveTheReferenceMaximum()
    {
        // Dimension 0 gives key t a score of ~0.72 t (log2 units) for every query: each block of 32 keys raises a
        // row's maximum by ~23, past the rescaling threshold, so every block rescales and late rows reach scores of
        // ~140 (far beyond exp range without the running maximum). Integer keys and a small random part keep the
        // rounding error at the ordinary level.
        Skip.IfNot(Bf16Dot.KernelAvailable, "no AVX512_BF16 kernel here: " + Bf16Dot.Status);
        const int c = 200, heads = 2, kv = 1, d = 64;
        var q = TestData.Floats(c * heads * d, 7, 0.5f);
        var k = TestData.Floats(c * kv * d, 8, 0.5f);
        for (int t = 0; t < c; t++) k[t * d] = t;
        for (int i = 0; i < c * heads; i++) q[i * d] = 4f;
        var v = TestData.Floats(c * kv * d, 9);
        var expected = new float[c * heads * d];
        AttentionReference.Forward(q, k, v, expected, c, 0, c, heads, kv, d, ComputePool.Single);
        var actual = RunBf16(q, k, v, c, 0, c, heads, kv, d, ComputePool.Single, AttentionMask.PrefixCausal);
        TestData.AssertClose(expected, actual, ReadOnlySpan<float>.Empty, 0f, Tolerance);
    }

    [SkippableFact]
    public void AttentionForwardRoutesByPrecisionAndSize()
    {
        Skip.IfNot(Bf16Dot.KernelAvailable, "no AVX512_BF16 kernel here: " + Bf16Dot.Status);
        Assert.True(Attention.UsesBf16(AttentionPrecision.Bf16, PackedGemm.SmallM + 1));
        Assert.False(Attention.UsesBf16(AttentionPrecision.F32, 64));
        Assert.False(Attention.UsesBf16(AttentionPrecision.Bf16, 1)); // decode stays F32, as BF16 GEMMs do

        const int c = 64, heads = 9, kv = 3, d = 64;
        var (q, k, v) = Inputs(c, c, heads, kv, d, seed: 11);
        var viaForward = new float[c * heads * d];
        Attention.Forward(q, k, v, viaForward, c, 0, c, heads, kv, d, ComputePool.Single, precision: AttentionPrecision.Bf16);
        var direct = RunBf16(q, k, v, c, 0, c, heads, kv, d, ComputePool.Single, AttentionMask.PrefixCausal);
        Assert.Equal(direct, viaForward);
    }

    [SkippableFact]
    public void ChunkRowsEqualSingleRowsBitForBit()
    {
        // Key blocks start at key 0 for every chunk, so a KV-Runahead rank's rows are computed exactly as in one call.
        Skip.IfNot(Bf16Dot.KernelAvailable, "no AVX512_BF16 kernel here: " + Bf16Dot.Status);
        const int total = 150, heads = 9, kv = 3, d = 64;
        using var pool = new ComputePool(2);
        var (q, k, v) = Inputs(total, total, heads, kv, d, seed: 13);
        // Some rows move their reference maximum at most blocks, the rest never: panels mix rows that take the
        // rescaling path with rows that would not, and their composition differs between the chunks and the whole.
        for (int t = 0; t < total; t++) k[t * kv * d] = t;
        for (int row = 0; row < total * heads; row++) q[row * d] = row % 5 == 0 ? 3f : 0f;
        var single = RunBf16(q, k, v, total, 0, total, heads, kv, d, pool, AttentionMask.PrefixCausal);
        foreach (var (start, count) in new[] { (0, 41), (41, 60), (101, 49) })
        {
            var chunk = RunBf16(q.AsSpan(start * heads * d, count * heads * d).ToArray(), k, v, count, start, start + count,
                heads, kv, d, pool, AttentionMask.PrefixCausal);
            Assert.Equal(single.AsSpan(start * heads * d, count * heads * d).ToArray(), chunk);
            var dense = RunBf16(q.AsSpan(start * heads * d, count * heads * d).ToArray(), k, v, count, start, total,
                heads, kv, d, pool, AttentionMask.DenseThenMask);
            Assert.Equal(single.AsSpan(start * heads * d, count * heads * d).ToArray(), dense);
        }
    }

    private static (float[] Q, float[] K, float[] V) Inputs(int c, int totalKeys, int heads, int kvHeads, int d, int seed) =>
        (TestData.Floats(c * heads * d, seed, 2f), TestData.Floats(totalKeys * kvHeads * d, seed + 1, 2f),
         TestData.Floats(totalKeys * kvHeads * d, seed + 2));

    private static unsafe float[] RunBf16(float[] q, float[] k, float[] v, int c, int queryStart, int totalKeys, int heads, int kvHeads,
        int d, ComputePool pool, AttentionMask mask)
    {
        var output = new float[c * heads * d];
        fixed (float* qp = q)
        fixed (float* kp = k)
        fixed (float* vp = v)
        fixed (float* op = output)
        {
            FlashAttentionBf16.Run(qp, kp, vp, op, c, queryStart, totalKeys, heads, kvHeads, d, pool, mask);
        }
        return output;
    }
}
