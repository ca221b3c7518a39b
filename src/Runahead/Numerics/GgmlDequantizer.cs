using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Runahead.Formats;

namespace Runahead.Numerics;

/// <summary>
/// Decodes GGML's block-quantized types to float, element for element as ggml's dequantize_row_* does (same block
/// layouts, same order of float operations; a C build that contracts a*b+c into an FMA may differ in the last bit).
/// Runs once per tensor at load, so it is written for clarity per block; the panels the GEMM reads are F32.
/// </summary>
public static class GgmlDequantizer
{
    /// <summary>Decodes <paramref name="dst"/>.Length elements (a whole number of blocks) of <paramref name="type"/>.</summary>
    public static void Dequantize(ReadOnlySpan<byte> src, TensorType type, Span<float> dst)
    {
        int blockSize = TensorTypeInfo.BlockSize(type), blockBytes = TensorTypeInfo.BlockBytes(type);
        long need = TensorTypeInfo.ByteSize(type, dst.Length);
        if (blockSize == 1 || need < 0 || src.Length < need)
            throw new ArgumentException($"{src.Length} bytes cannot hold {dst.Length} {type} elements");
        int blocks = dst.Length / blockSize;
        for (int b = 0; b < blocks; b++)
        {
            var blk = src.Slice(b * blockBytes, blockBytes);
            var y = dst.Slice(b * blockSize, blockSize);
            switch (type)
            {
                case TensorType.Q8_0: Q8_0(blk, y); break;
                case TensorType.Q4_0: Q4_0(blk, y); break;
                case TensorType.Q4_1: Q4_1(blk, y); break;
                case TensorType.Q5_0: Q5_0(blk, y); break;
                case TensorType.Q5_1: Q5_1(blk, y); break;
                case TensorType.Q2_K: Q2_K(blk, y); break;
                case TensorType.Q3_K: Q3_K(blk, y); break;
                case TensorType.Q4_K: Q4_K(blk, y); break;
                case TensorType.Q5_K: Q5_K(blk, y); break;
                case TensorType.Q6_K: Q6_K(blk, y); break;
                case TensorType.IQ4_NL: IQ4_NL(blk, y); break;
                default: throw new ArgumentOutOfRangeException(nameof(type));
            }
        }
    }

    private static float F16(ReadOnlySpan<byte> b, int at) => (float)MemoryMarshal.Read<Half>(b[at..]);

    private static void Q8_0(ReadOnlySpan<byte> blk, Span<float> y)
    {
        float d = F16(blk, 0);
        for (int j = 0; j < 32; j++) y[j] = d * (sbyte)blk[2 + j];
    }

    // Legacy quants: byte j holds element j in its low nibble and element j + 16 in its high nibble.
    private static void Q4_0(ReadOnlySpan<byte> blk, Span<float> y)
    {
        float d = F16(blk, 0);
        var qs = blk.Slice(2, 16);
        for (int j = 0; j < 16; j++)
        {
            y[j] = ((qs[j] & 0xF) - 8) * d;
            y[j + 16] = ((qs[j] >> 4) - 8) * d;
        }
    }

    private static void Q4_1(ReadOnlySpan<byte> blk, Span<float> y)
    {
        float d = F16(blk, 0), m = F16(blk, 2);
        var qs = blk.Slice(4, 16);
        for (int j = 0; j < 16; j++)
        {
            y[j] = (qs[j] & 0xF) * d + m;
            y[j + 16] = (qs[j] >> 4) * d + m;
        }
    }

    // Q5: bit j of the little-endian 32-bit qh is the fifth bit of element j.
    private static void Q5_0(ReadOnlySpan<byte> blk, Span<float> y)
    {
        float d = F16(blk, 0);
        uint qh = BinaryPrimitives.ReadUInt32LittleEndian(blk[2..]);
        var qs = blk.Slice(6, 16);
        for (int j = 0; j < 16; j++)
        {
            var (lo, hi) = Q5Levels(qs, qh, j);
            y[j] = (lo - 16) * d;
            y[j + 16] = (hi - 16) * d;
        }
    }

    /// <summary>Elements j and j + 16 of a Q5 block: their nibbles with the fifth bit from bits j and j + 16 of qh.</summary>
    private static (int Lo, int Hi) Q5Levels(ReadOnlySpan<byte> qs, uint qh, int j) =>
        ((int)((uint)(qs[j] & 0xF) | ((qh >> j) << 4 & 0x10)), (int)((uint)(qs[j] >> 4) | ((qh >> (j + 12)) & 0x10)));

    private static void Q5_1(ReadOnlySpan<byte> blk, Span<float> y)
    {
        float d = F16(blk, 0), m = F16(blk, 2);
        uint qh = BinaryPrimitives.ReadUInt32LittleEndian(blk[4..]);
        var qs = blk.Slice(8, 16);
        for (int j = 0; j < 16; j++)
        {
            var (lo, hi) = Q5Levels(qs, qh, j);
            y[j] = lo * d + m;
            y[j + 16] = hi * d + m;
        }
    }

    // Q2_K: 16 sub-blocks of 16; scale byte = (min nibble << 4) | scale nibble. Each 128-element half reads 32 bytes
    // of quants four times, two bits deeper each time.
    private static void Q2_K(ReadOnlySpan<byte> blk, Span<float> y)
    {
        var scales = blk[..16];
        var qs = blk.Slice(16, 64);
        float d = F16(blk, 80), dmin = F16(blk, 82);
        int o = 0, s = 0;
        for (int half = 0; half < 2; half++)
        {
            var q = qs.Slice(half * 32, 32);
            for (int shift = 0; shift < 8; shift += 2)
            {
                for (int part = 0; part < 2; part++)
                {
                    byte sc = scales[s++];
                    float dl = d * (sc & 0xF), ml = dmin * (sc >> 4);
                    for (int l = 0; l < 16; l++) y[o++] = dl * ((q[part * 16 + l] >> shift) & 3) - ml;
                }
            }
        }
    }

    // Q3_K: 16 signed 6-bit scales (offset 32) packed in 12 bytes; quants are Q2_K's 2-bit layout plus a high bit in
    // hmask that, when clear, subtracts 4.
    private static void Q3_K(ReadOnlySpan<byte> blk, Span<float> y)
    {
        var hmask = blk[..32];
        var qs = blk.Slice(32, 64);
        Span<int> scales = stackalloc int[16];
        UnpackQ3Scales(blk.Slice(96, 12), scales);
        float dAll = F16(blk, 108);
        int o = 0, s = 0, m = 1;
        for (int half = 0; half < 2; half++)
        {
            var q = qs.Slice(half * 32, 32);
            for (int shift = 0; shift < 8; shift += 2, m <<= 1)
            {
                for (int part = 0; part < 2; part++)
                {
                    float dl = dAll * (scales[s++] - 32);
                    for (int l = 0; l < 16; l++)
                    {
                        int i = part * 16 + l;
                        y[o++] = dl * (((q[i] >> shift) & 3) - ((hmask[i] & m) != 0 ? 0 : 4));
                    }
                }
            }
        }
    }

    /// <summary>Scale k: low 4 bits from byte k (k &lt; 8, low nibble) or k - 8 (high nibble), high 2 bits from byte 8 + k % 4 at bit 2 * (k / 4).</summary>
    internal static void UnpackQ3Scales(ReadOnlySpan<byte> packed, Span<int> scales)
    {
        for (int k = 0; k < 16; k++)
        {
            int low = k < 8 ? packed[k] & 0xF : packed[k - 8] >> 4;
            int high = (packed[8 + k % 4] >> (2 * (k / 4))) & 3;
            scales[k] = low | (high << 4);
        }
    }

    /// <summary>ggml's get_scale_min_k4: 6-bit scale and min of sub-block j of a Q4_K/Q5_K super-block.</summary>
    internal static (int Scale, int Min) ScaleMinK4(int j, ReadOnlySpan<byte> q) => j < 4
        ? (q[j] & 63, q[j + 4] & 63)
        : ((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4));

    // Q4_K: 8 sub-blocks of 32; each 64-element pair shares 32 bytes, low nibbles first.
    private static void Q4_K(ReadOnlySpan<byte> blk, Span<float> y) => Q45_K(blk, default, blk.Slice(16, 128), y);

    // Q5_K: Q4_K plus a fifth bit per element: sub-block s takes bit s of qh[l].
    private static void Q5_K(ReadOnlySpan<byte> blk, Span<float> y) => Q45_K(blk, blk.Slice(16, 32), blk.Slice(48, 128), y);

    /// <summary>Q4_K (no <paramref name="qh"/>) and Q5_K: d, dmin and the packed 6-bit scales/mins lead both blocks.</summary>
    private static void Q45_K(ReadOnlySpan<byte> blk, ReadOnlySpan<byte> qh, ReadOnlySpan<byte> qs, Span<float> y)
    {
        float d = F16(blk, 0), dmin = F16(blk, 2);
        var scales = blk.Slice(4, 12);
        bool fifthBit = !qh.IsEmpty;
        for (int pair = 0; pair < 4; pair++)
        {
            var (sc1, m1) = ScaleMinK4(2 * pair, scales);
            var (sc2, m2) = ScaleMinK4(2 * pair + 1, scales);
            float d1 = d * sc1, min1 = dmin * m1, d2 = d * sc2, min2 = dmin * m2;
            int u1 = 1 << (2 * pair), u2 = 2 << (2 * pair);
            var q = qs.Slice(pair * 32, 32);
            var yy = y.Slice(pair * 64, 64);
            for (int l = 0; l < 32; l++) yy[l] = d1 * ((q[l] & 0xF) + (fifthBit && (qh[l] & u1) != 0 ? 16 : 0)) - min1;
            for (int l = 0; l < 32; l++) yy[32 + l] = d2 * ((q[l] >> 4) + (fifthBit && (qh[l] & u2) != 0 ? 16 : 0)) - min2;
        }
    }

    // Q6_K: per 128-element half, 64 bytes of low nibbles (elements l and l + 64 share byte l, l + 32 and l + 96 byte
    // l + 32) and 32 bytes of high 2-bit pairs (four per byte); 16 int8 scales, one per 16 elements.
    private static void Q6_K(ReadOnlySpan<byte> blk, Span<float> y)
    {
        float d = F16(blk, 208);
        for (int half = 0; half < 2; half++)
        {
            var ql = blk.Slice(half * 64, 64);
            var qh = blk.Slice(128 + half * 32, 32);
            var sc = blk.Slice(192 + half * 8, 8);
            var yy = y.Slice(half * 128, 128);
            for (int l = 0; l < 32; l++)
            {
                int s = l / 16;
                int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                yy[l] = d * (sbyte)sc[s] * q1;
                yy[l + 32] = d * (sbyte)sc[s + 2] * q2;
                yy[l + 64] = d * (sbyte)sc[s + 4] * q3;
                yy[l + 96] = d * (sbyte)sc[s + 6] * q4;
            }
        }
    }

    /// <summary>ggml's kvalues_iq4nl: 16 levels spaced for roughly normal weights (denser near zero).</summary>
    private static ReadOnlySpan<sbyte> Iq4NlLevels => [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

    // IQ4_NL: Q4_0's layout, but each nibble indexes the level table instead of being offset by 8.
    private static void IQ4_NL(ReadOnlySpan<byte> blk, Span<float> y)
    {
        float d = F16(blk, 0);
        var qs = blk.Slice(2, 16);
        var levels = Iq4NlLevels;
        for (int j = 0; j < 16; j++)
        {
            y[j] = d * levels[qs[j] & 0xF];
            y[j + 16] = d * levels[qs[j] >> 4];
        }
    }
}
