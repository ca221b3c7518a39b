namespace Runahead.Formats;

/// <summary>Element types of stored weights. Values are our own, not GGML's (see GgmlType for the mapping).</summary>
public enum TensorType
{
    F32,
    F16,
    BF16,
    Q8_0,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
    IQ4_NL,
}

public static class TensorTypeInfo
{
    /// <summary>Elements per super-block of the GGML k-quants.</summary>
    public const int KBlock = 256;

    /// <summary>Elements per block (1 for plain types, 32 for the legacy GGML quants and IQ4_NL, 256 for the k-quants).</summary>
    public static int BlockSize(TensorType t) => t switch
    {
        TensorType.F32 or TensorType.F16 or TensorType.BF16 => 1,
        TensorType.Q8_0 or TensorType.Q4_0 or TensorType.Q4_1 or TensorType.Q5_0 or TensorType.Q5_1 or TensorType.IQ4_NL => 32,
        TensorType.Q2_K or TensorType.Q3_K or TensorType.Q4_K or TensorType.Q5_K or TensorType.Q6_K => KBlock,
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };

    /// <summary>Bytes per block, exactly as ggml's block structs are laid out (no padding).</summary>
    public static int BlockBytes(TensorType t) => t switch
    {
        TensorType.F32 => 4,
        TensorType.F16 => 2,
        TensorType.BF16 => 2,
        TensorType.Q8_0 => 34, // f16 d, 32 x int8
        TensorType.Q4_0 => 18, // f16 d, 16 bytes of nibbles
        TensorType.Q4_1 => 20, // f16 d, f16 m, 16 bytes of nibbles
        TensorType.Q5_0 => 22, // f16 d, 32 high bits, 16 bytes of nibbles
        TensorType.Q5_1 => 24, // f16 d, f16 m, 32 high bits, 16 bytes of nibbles
        TensorType.Q2_K => 84, // 16 scale/min nibble pairs, 64 bytes of 2-bit quants, f16 d, f16 dmin
        TensorType.Q3_K => 110, // 32 bytes high-bit mask, 64 bytes of 2-bit quants, 12 bytes of 6-bit scales, f16 d
        TensorType.Q4_K => 144, // f16 d, f16 dmin, 12 bytes of 6-bit scales/mins, 128 bytes of nibbles
        TensorType.Q5_K => 176, // f16 d, f16 dmin, 12 bytes of scales/mins, 32 bytes of high bits, 128 bytes of nibbles
        TensorType.Q6_K => 210, // 128 bytes low nibbles, 64 bytes high 2-bit pairs, 16 int8 scales, f16 d
        TensorType.IQ4_NL => 18, // f16 d, 16 bytes of nibbles indexing a fixed non-linear table
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };

    /// <summary>Whether <paramref name="t"/> is a GGML block-quantized type (dequantised to F32 at load).</summary>
    public static bool IsQuantized(TensorType t) => BlockSize(t) > 1;

    /// <summary>Bytes taken by a row-major tensor with <paramref name="elements"/> elements, or -1 if not a whole number of blocks.</summary>
    public static long ByteSize(TensorType t, long elements)
    {
        int bs = BlockSize(t);
        if (elements < 0 || elements % bs != 0) return -1;
        return checked(elements / bs * BlockBytes(t));
    }
}
