using System.Buffers.Binary;
using Runahead.Formats;

namespace Runahead.Tests.Formats;

/// <summary>
/// Plain dequantisers for the GGML block types, written element by element from the block descriptions (where each
/// element's bits live), independent of the production loops that walk blocks in ggml's order. The float operations
/// are the same as ggml's, so results are compared bit for bit.
/// </summary>
internal static class GgmlQuantReference
{
    /// <summary>Byte offsets of the f16 fields of each block type (the rest are raw bits).</summary>
    public static int[] HalfFields(TensorType t) => t switch
    {
        TensorType.Q8_0 or TensorType.Q4_0 or TensorType.Q5_0 or TensorType.IQ4_NL => [0],
        TensorType.Q4_1 or TensorType.Q5_1 or TensorType.Q4_K or TensorType.Q5_K => [0, 2],
        TensorType.Q2_K => [80, 82],
        TensorType.Q3_K => [108],
        TensorType.Q6_K => [208],
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };

    public static readonly TensorType[] All =
    [
        TensorType.Q8_0, TensorType.Q4_0, TensorType.Q4_1, TensorType.Q5_0, TensorType.Q5_1,
        TensorType.Q2_K, TensorType.Q3_K, TensorType.Q4_K, TensorType.Q5_K, TensorType.Q6_K, TensorType.IQ4_NL,
    ];

    /// <summary>Random blocks: random bits, with every f16 field a finite value of magnitude at most <paramref name="scale"/>.</summary>
    public static byte[] RandomBlocks(TensorType t, int blocks, Random rng, float scale = 1f)
    {
        int bb = TensorTypeInfo.BlockBytes(t);
        var data = new byte[blocks * bb];
        rng.NextBytes(data);
        for (int b = 0; b < blocks; b++)
            foreach (int at in HalfFields(t))
                BinaryPrimitives.WriteHalfLittleEndian(data.AsSpan(b * bb + at), (Half)((rng.NextSingle() * 2 - 1) * scale));
        return data;
    }

    public static float[] Dequantize(byte[] data, TensorType t, int elements)
    {
        int bs = TensorTypeInfo.BlockSize(t), bb = TensorTypeInfo.BlockBytes(t);
        var y = new float[elements];
        for (int i = 0; i < elements; i++) y[i] = Element(data.AsSpan(i / bs * bb, bb), t, i % bs);
        return y;
    }

    /// <summary>IQ4_NL's level for index k, as listed in ggml-common.h.</summary>
    private static int Iq4NlLevel(int k) => new[] { -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113 }[k];

    private static float Half(ReadOnlySpan<byte> b, int at) => (float)BinaryPrimitives.ReadHalfLittleEndian(b[at..]);

    /// <summary>Legacy 32-element blocks: byte i % 16 of the nibbles, low nibble for the first 16 elements.</summary>
    private static int Nibble(ReadOnlySpan<byte> qs, int i) => i < 16 ? qs[i] & 0xF : qs[i - 16] >> 4;

    public static float Element(ReadOnlySpan<byte> blk, TensorType t, int i)
    {
        switch (t)
        {
            case TensorType.Q8_0: return Half(blk, 0) * (sbyte)blk[2 + i];
            case TensorType.Q4_0: return (Nibble(blk[2..], i) - 8) * Half(blk, 0);
            case TensorType.IQ4_NL: return Half(blk, 0) * Iq4NlLevel(Nibble(blk[2..], i));
            case TensorType.Q4_1: return Nibble(blk[4..], i) * Half(blk, 0) + Half(blk, 2);
            case TensorType.Q5_0:
            {
                int fifth = (int)(BinaryPrimitives.ReadUInt32LittleEndian(blk[2..]) >> i) & 1;
                return ((Nibble(blk[6..], i) | fifth << 4) - 16) * Half(blk, 0);
            }
            case TensorType.Q5_1:
            {
                int fifth = (int)(BinaryPrimitives.ReadUInt32LittleEndian(blk[4..]) >> i) & 1;
                return (Nibble(blk[8..], i) | fifth << 4) * Half(blk, 0) + Half(blk, 2);
            }
            case TensorType.Q2_K:
            {
                // Element i: 128-element half h, within it plane p (which 2 bits) and column c (which byte).
                int h = i / 128, p = i % 128 / 32, c = i % 32;
                int q = blk[16 + h * 32 + c] >> (2 * p) & 3;
                byte sc = blk[i / 16];
                float d = Half(blk, 80), dmin = Half(blk, 82);
                return d * (sc & 0xF) * q - dmin * (sc >> 4);
            }
            case TensorType.Q3_K:
            {
                int h = i / 128, p = i % 128 / 32, c = i % 32;
                int q = blk[32 + h * 32 + c] >> (2 * p) & 3;
                bool high = (blk[c] >> (h * 4 + p) & 1) != 0;
                return Half(blk, 108) * (Q3Scale(blk.Slice(96, 12), i / 16) - 32) * (q - (high ? 0 : 4));
            }
            case TensorType.Q4_K or TensorType.Q5_K:
            {
                bool five = t == TensorType.Q5_K;
                var qs = blk[(five ? 48 : 16)..];
                int j = i / 32, c = i % 32;
                int q = j % 2 == 0 ? qs[j / 2 * 32 + c] & 0xF : qs[j / 2 * 32 + c] >> 4;
                if (five) q += (blk[16 + c] >> j & 1) * 16;
                var (sc, m) = K4ScaleMin(blk.Slice(4, 12), j);
                return Half(blk, 0) * sc * q - Half(blk, 2) * m;
            }
            case TensorType.Q6_K:
            {
                // Quarter k of a half: low nibbles from byte c (k = 0, 2) or c + 32 (k = 1, 3), low (k < 2) or high.
                int h = i / 128, k = i % 128 / 32, c = i % 32;
                byte lowByte = blk[h * 64 + c + (k % 2) * 32];
                int low = k < 2 ? lowByte & 0xF : lowByte >> 4;
                int high = blk[128 + h * 32 + c] >> (2 * k) & 3;
                return Half(blk, 208) * (sbyte)blk[192 + i / 16] * ((low | high << 4) - 32);
            }
            default: throw new ArgumentOutOfRangeException(nameof(t));
        }
    }

    /// <summary>
    /// Q3_K's 12 scale bytes as one 96-bit little-endian field: the low 64 bits are 16 low nibbles (scale k in byte
    /// k % 8, low nibble for k &lt; 8), the top 32 bits 16 two-bit high parts (scale k at bit 8 * (k % 4) + 2 * (k / 4)).
    /// </summary>
    private static int Q3Scale(ReadOnlySpan<byte> s, int k)
    {
        ulong lows = BinaryPrimitives.ReadUInt64LittleEndian(s);
        uint highs = BinaryPrimitives.ReadUInt32LittleEndian(s[8..]);
        int low = (int)(lows >> (8 * (k % 8) + (k < 8 ? 0 : 4))) & 0xF;
        int high = (int)(highs >> (8 * (k % 4) + 2 * (k / 4))) & 3;
        return low | high << 4;
    }

    /// <summary>
    /// Q4_K/Q5_K: sub-blocks 0-3 keep scale and min in the low 6 bits of bytes j and j + 4; sub-blocks 4-7 keep their
    /// low 4 bits in the nibbles of byte j + 4 and their top 2 bits in the spare top bits of bytes j - 4 and j.
    /// </summary>
    private static (int Scale, int Min) K4ScaleMin(ReadOnlySpan<byte> s, int j) => j < 4
        ? (s[j] & 63, s[j + 4] & 63)
        : ((s[j + 4] & 0xF) | (s[j - 4] >> 6) << 4, (s[j + 4] >> 4) | (s[j] >> 6) << 4);
}
