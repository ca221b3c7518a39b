using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Runahead.Numerics;

namespace Runahead.Formats;

/// <summary>
/// Encodes float rows into stored element types (the inverse of <see cref="DType.ToFloat32"/>). The GGML quants are
/// plain round-to-nearest per block (what ggml's quantize_row_*_ref does for the legacy types); the k-quants need
/// ggml's search for scales and are not written.
/// </summary>
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
            case TensorType.Q4_0 or TensorType.Q5_0:
                QuantizeSymmetric(src, type, dst);
                break;
            case TensorType.Q4_1 or TensorType.Q5_1:
                QuantizeWithMin(src, type, dst);
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

    /// <summary>
    /// Q4_0 / Q5_0: the value of largest magnitude maps to the most negative level (-8 or -16), so d = that value / -8
    /// (or -16) and the levels are round(x / d) offset to unsigned, clamped to the top level.
    /// </summary>
    private static void QuantizeSymmetric(ReadOnlySpan<float> src, TensorType type, Span<byte> dst)
    {
        bool five = type == TensorType.Q5_0;
        int levels = five ? 32 : 16, offset = levels / 2, blockBytes = TensorTypeInfo.BlockBytes(type);
        Span<int> q = stackalloc int[32];
        for (int b = 0; b < src.Length / 32; b++)
        {
            var x = src.Slice(b * 32, 32);
            float extreme = 0;
            foreach (var v in x) if (MathF.Abs(v) > MathF.Abs(extreme)) extreme = v;
            float d = extreme / -offset;
            float id = d != 0 ? 1f / d : 0f;
            for (int j = 0; j < 32; j++) q[j] = Math.Clamp((int)MathF.Round(x[j] * id) + offset, 0, levels - 1);
            var blk = dst.Slice(b * blockBytes, blockBytes);
            MemoryMarshal.Write(blk, (Half)d);
            PackLevels(q, five, blk[2..]);
        }
    }

    /// <summary>Q4_1 / Q5_1: levels spread evenly from the block minimum (m) to its maximum, d = (max - min) / top level.</summary>
    private static void QuantizeWithMin(ReadOnlySpan<float> src, TensorType type, Span<byte> dst)
    {
        bool five = type == TensorType.Q5_1;
        int top = five ? 31 : 15, blockBytes = TensorTypeInfo.BlockBytes(type);
        Span<int> q = stackalloc int[32];
        for (int b = 0; b < src.Length / 32; b++)
        {
            var x = src.Slice(b * 32, 32);
            float min = TensorPrimitives.Min(x), max = TensorPrimitives.Max(x);
            float d = (max - min) / top;
            float id = d != 0 ? 1f / d : 0f;
            for (int j = 0; j < 32; j++) q[j] = Math.Clamp((int)MathF.Round((x[j] - min) * id), 0, top);
            var blk = dst.Slice(b * blockBytes, blockBytes);
            MemoryMarshal.Write(blk, (Half)d);
            MemoryMarshal.Write(blk[2..], (Half)min);
            PackLevels(q, five, blk[4..]);
        }
    }

    /// <summary>Nibbles (element j low, j + 16 high in byte j), after a 32-bit field of fifth bits for the Q5 types.</summary>
    private static void PackLevels(ReadOnlySpan<int> q, bool five, Span<byte> dst)
    {
        if (five)
        {
            uint qh = 0;
            for (int j = 0; j < 32; j++) qh |= (uint)((q[j] >> 4) & 1) << j;
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(dst, qh);
            dst = dst[4..];
        }
        for (int j = 0; j < 16; j++) dst[j] = (byte)((q[j] & 0xF) | ((q[j + 16] & 0xF) << 4));
    }
}
