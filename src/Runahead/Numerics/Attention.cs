namespace Runahead.Numerics;

public enum AttentionMask
{
    /// <summary>Skip keys a query cannot see (KV-Runahead, single).</summary>
    PrefixCausal,

    /// <summary>Compute the full score block, then mask (TSP as in the paper): same result, more work.</summary>
    DenseThenMask,
}

/// <summary>
/// Attention of c queries at global positions [queryStart, queryStart + c) against keys at positions [0, totalKeys):
/// query j sees key k iff k &lt;= queryStart + j. KV-Runahead and single prefill pass queryStart = totalKeys - c
/// (the lower-right aligned causal mask); TSP passes its chunk start and all C keys.
/// Layouts: q [c, heads*headDim]; k, v [totalKeys, kvHeads*headDim]; output [c, heads*headDim].
/// GQA: head h reads KV head h / (heads / kvHeads).
/// Computed tile by tile with an online softmax (<see cref="FlashAttention"/>); <see cref="AttentionReference"/> is
/// the plain definition. <see cref="AttentionPrecision.Bf16"/> runs the products on the vdpbf16ps kernel
/// (<see cref="FlashAttentionBf16"/>) where it exists and the query count repays packing K and V; F32 otherwise.
/// </summary>
public static class Attention
{
    public static unsafe void Forward(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, Span<float> output,
        int queries, int queryStart, int totalKeys, int heads, int kvHeads, int headDim, ComputePool pool, AttentionMask mask = AttentionMask.PrefixCausal,
        AttentionPrecision precision = AttentionPrecision.F32)
    {
        ArgumentNullException.ThrowIfNull(pool);
        if (heads < 1 || kvHeads < 1 || heads % kvHeads != 0)
            throw new ArgumentException($"heads ({heads}) must be a positive multiple of kvHeads ({kvHeads})");
        if (headDim < 1) throw new ArgumentOutOfRangeException(nameof(headDim), $"headDim must be positive, got {headDim}");
        if (queries < 0 || queryStart < 0 || (long)queryStart + queries > totalKeys)
            throw new ArgumentOutOfRangeException(nameof(queryStart), $"queries [{queryStart}, {(long)queryStart + queries}) must lie within the {totalKeys} keys");
        long qLen = (long)queries * heads * headDim, kvLen = (long)totalKeys * kvHeads * headDim;
        if (q.Length < qLen) throw new ArgumentException($"q holds {q.Length} floats, {qLen} needed", nameof(q));
        if (k.Length < kvLen) throw new ArgumentException($"k holds {k.Length} floats, {kvLen} needed", nameof(k));
        if (v.Length < kvLen) throw new ArgumentException($"v holds {v.Length} floats, {kvLen} needed", nameof(v));
        if (output.Length < qLen) throw new ArgumentException($"output holds {output.Length} floats, {qLen} needed", nameof(output));
        if (queries == 0) return;
        fixed (float* qp = q)
        fixed (float* kp = k)
        fixed (float* vp = v)
        fixed (float* op = output)
        {
            // A call whose packed K/V would not fit one array (hundreds of thousands of keys) stays F32.
            if (UsesBf16(precision, queries)
                && FlashAttentionBf16.PackedBytes(queries, queryStart, totalKeys, kvHeads, headDim, mask) <= Array.MaxLength)
                FlashAttentionBf16.Run(qp, kp, vp, op, queries, queryStart, totalKeys, heads, kvHeads, headDim, pool, mask);
            else
                FlashAttention.Run(qp, kp, vp, op, queries, queryStart, totalKeys, heads, kvHeads, headDim, pool, mask);
        }
    }

    /// <summary>
    /// Whether a call with these arguments runs on the BF16 kernel: as for BF16 GEMMs, decode-sized calls (at most
    /// <see cref="PackedGemm.SmallM"/> queries) stay F32 (packing all of K and V would cost more than it saves), so a
    /// chunk's attention rounds to bf16 exactly when its projections round their activations, whatever the strategy.
    /// </summary>
    public static bool UsesBf16(AttentionPrecision precision, int queries) =>
        precision == AttentionPrecision.Bf16 && queries > PackedGemm.SmallM && Jit.Bf16Dot.KernelAvailable && !Jit.Bf16Dot.ForceWidening;
}
