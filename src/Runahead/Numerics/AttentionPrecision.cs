namespace Runahead.Numerics;

/// <summary>The arithmetic of attention's two products (the softmax and the output accumulation stay F32).</summary>
public enum AttentionPrecision
{
    /// <summary>F32 products (<see cref="FlashAttention"/>).</summary>
    F32,

    /// <summary>
    /// Q, K and V rounded and P truncated to bf16 for the products on the generated vdpbf16ps kernel (<see cref="FlashAttentionBf16"/>);
    /// falls back to F32 where the kernel is unavailable and for decode-sized calls (see <see cref="Attention.UsesBf16"/>).
    /// </summary>
    Bf16,
}
