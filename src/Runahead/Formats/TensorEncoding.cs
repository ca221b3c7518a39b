using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Runahead.Numerics;

namespace Runahead.Formats;

/// <summary>Encodes float rows into stored element types (the inverse of <see cref="DType.ToFloat32"/>).</summary>
public static class TensorEncoding
{
    /// <summary>Encodes <paramref name="src"/> as <paramref name="type"/> into <paramref name="dst"/> (exactly ByteSize bytes).</summary>
    public static void FromFloat32(ReadOnlySpan<float> src, TensorType type, Span<byte> dst)
    {
        long need = TensorTypeInfo.ByteSize(type, src.Length);
        if (need < 0 || dst.Length != need) throw new ArgumentException($"{dst.Length} bytes cannot hold {src.Length} {type} elements");
        switch (type)
        {
            case TensorType.F32:
                MemoryMarshal.AsBytes(src).CopyTo(dst);
                break;
            case TensorType.F16:
                TensorPrimitives.ConvertToHalf(src, MemoryMarshal.Cast<byte, Half>(dst));
                break;
            case TensorType.BF16:
            {
                var b = MemoryMarshal.Cast<byte, ushort>(dst);
                for (int i = 0; i < src.Length; i++) b[i] = DType.FloatToBf16(src[i]);
                break;
            }
            case TensorType.Q8_0:
                QuantizeQ8_0(src, dst);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(type));
        }
    }

    /// <summary>GGML's Q8_0: per 32 values an F16 scale max|x|/127 and 32 int8 rounded to nearest.</summary>
    private static void QuantizeQ8_0(ReadOnlySpan<float> src, Span<byte> dst)
    {
        for (int b = 0; b < src.Length / 32; b++)
        {
            var x = src.Slice(b * 32, 32);
            float amax = TensorPrimitives.MaxMagnitude(x);
            float d = MathF.Abs(amax) / 127f;
            float id = d != 0 ? 1f / d : 0f;
            var blk = dst.Slice(b * 34, 34);
            MemoryMarshal.Write(blk, (Half)d);
            for (int j = 0; j < 32; j++) blk[2 + j] = (byte)(sbyte)MathF.Round(x[j] * id);
        }
    }
}
