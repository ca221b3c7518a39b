namespace Runahead.Formats;

/// <summary>Element types of stored weights. Values are our own, not GGML's (see GgufTypes for the mapping).</summary>
public enum TensorType
{
    F32,
    F16,
    BF16,
    Q8_0,
}

public static class TensorTypeInfo
{
    /// <summary>Elements per block (1 for plain types, 32 for Q8_0).</summary>
    public static int BlockSize(TensorType t) => t == TensorType.Q8_0 ? 32 : 1;

    /// <summary>Bytes per block.</summary>
    public static int BlockBytes(TensorType t) => t switch
    {
        TensorType.F32 => 4,
        TensorType.F16 => 2,
        TensorType.BF16 => 2,
        TensorType.Q8_0 => 34, // f16 scale + 32 x int8
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };

    /// <summary>Bytes taken by a row-major tensor with <paramref name="elements"/> elements, or -1 if not a whole number of blocks.</summary>
    public static long ByteSize(TensorType t, long elements)
    {
        int bs = BlockSize(t);
        if (elements < 0 || elements % bs != 0) return -1;
        return checked(elements / bs * BlockBytes(t));
    }
}
