using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Runahead.Formats;

namespace Runahead.Numerics;

/// <summary>Conversions between stored element types and float.</summary>
public static class DType
{
    public static float Bf16ToFloat(ushort b) => BitConverter.Int32BitsToSingle(b << 16);

    /// <summary>Round to nearest even, NaN kept as NaN.</summary>
    public static ushort FloatToBf16(float f)
    {
        uint u = BitConverter.SingleToUInt32Bits(f);
        if ((u & 0x7fffffff) > 0x7f800000) return (ushort)((u >> 16) | 0x40);
        u += 0x7fff + ((u >> 16) & 1);
        return (ushort)(u >> 16);
    }

    /// <summary>Decodes <paramref name="dst"/>.Length elements of <paramref name="type"/> from <paramref name="src"/>.</summary>
    public static void ToFloat32(ReadOnlySpan<byte> src, TensorType type, Span<float> dst)
    {
        long need = TensorTypeInfo.ByteSize(type, dst.Length);
        if (need < 0 || src.Length < need) throw new ArgumentException($"{src.Length} bytes cannot hold {dst.Length} {type} elements");
        switch (type)
        {
            case TensorType.F32:
                MemoryMarshal.Cast<byte, float>(src)[..dst.Length].CopyTo(dst);
                break;
            case TensorType.F16:
            {
                var h = MemoryMarshal.Cast<byte, Half>(src);
                System.Numerics.Tensors.TensorPrimitives.ConvertToSingle(h[..dst.Length], dst);
                break;
            }
            case TensorType.BF16:
            {
                var b = MemoryMarshal.Cast<byte, ushort>(src);
                int i = 0;
                if (Vector512.IsHardwareAccelerated)
                {
                    // bf16 is the top half of a float: widen and shift, 32 at a time.
                    var floats = MemoryMarshal.Cast<float, uint>(dst);
                    for (; i + 32 <= dst.Length; i += 32)
                    {
                        var v = Vector512.Create<ushort>(b.Slice(i, 32));
                        Vector512.ShiftLeft(Vector512.WidenLower(v), 16).CopyTo(floats.Slice(i, 16));
                        Vector512.ShiftLeft(Vector512.WidenUpper(v), 16).CopyTo(floats.Slice(i + 16, 16));
                    }
                }
                for (; i < dst.Length; i++) dst[i] = Bf16ToFloat(b[i]);
                break;
            }
            case var q when TensorTypeInfo.IsQuantized(q):
                GgmlDequantizer.Dequantize(src, type, dst);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(type));
        }
    }
}
