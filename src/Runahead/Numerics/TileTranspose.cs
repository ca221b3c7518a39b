using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Runahead.Numerics;

/// <summary>
/// 16x16 transposes of 32-bit elements in AVX-512 registers, for the attention kernels' layout changes (Q^T of the F32
/// attention, K^T pairs of the BF16 one), which scalar stores made a visible part of attention time.
/// </summary>
internal static unsafe class TileTranspose
{
    public const int Size = 16;

    /// <summary>
    /// dst[c * dstStride + r] = rows[r][c] for r, c in [0, 16), storing only output rows c &lt; <paramref name="columns"/>:
    /// dword unpacks pair rows, qword unpacks make 4x4 blocks in each 128-bit lane, two rounds of 128-bit lane
    /// shuffles gather each column's four lanes. <paramref name="rows"/> is overwritten.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Transpose(Vector512<uint>* rows, uint* dst, int dstStride, int columns)
    {
        if (!Avx512F.IsSupported)
        {
            TransposeScalar((uint*)rows, Size, dst, dstStride, columns);
            return;
        }
        for (int r = 0; r < Size; r += 4)
        {
            var t0 = Avx512F.UnpackLow(rows[r], rows[r + 1]).AsUInt64();
            var t1 = Avx512F.UnpackHigh(rows[r], rows[r + 1]).AsUInt64();
            var t2 = Avx512F.UnpackLow(rows[r + 2], rows[r + 3]).AsUInt64();
            var t3 = Avx512F.UnpackHigh(rows[r + 2], rows[r + 3]).AsUInt64();
            // rows[r + k], lane L: elements r..r+3 of column 4L + k
            rows[r] = Avx512F.UnpackLow(t0, t2).AsUInt32();
            rows[r + 1] = Avx512F.UnpackHigh(t0, t2).AsUInt32();
            rows[r + 2] = Avx512F.UnpackLow(t1, t3).AsUInt32();
            rows[r + 3] = Avx512F.UnpackHigh(t1, t3).AsUInt32();
        }
        for (int k = 0; k < 4; k++)
        {
            var p = Avx512F.Shuffle4x128(rows[k], rows[4 + k], 0x44);   // lanes 0, 1 of elements 0-3 and 4-7
            var q = Avx512F.Shuffle4x128(rows[k], rows[4 + k], 0xEE);   // lanes 2, 3
            var p2 = Avx512F.Shuffle4x128(rows[8 + k], rows[12 + k], 0x44);
            var q2 = Avx512F.Shuffle4x128(rows[8 + k], rows[12 + k], 0xEE);
            if (k < columns) Avx512F.Shuffle4x128(p, p2, 0x88).Store(dst + k * dstStride);
            if (4 + k < columns) Avx512F.Shuffle4x128(p, p2, 0xDD).Store(dst + (4 + k) * dstStride);
            if (8 + k < columns) Avx512F.Shuffle4x128(q, q2, 0x88).Store(dst + (8 + k) * dstStride);
            if (12 + k < columns) Avx512F.Shuffle4x128(q, q2, 0xDD).Store(dst + (12 + k) * dstStride);
        }
    }

    /// <summary>The plain definition, for tests and for CPUs without AVX-512.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void TransposeScalar(uint* src, int srcStride, uint* dst, int dstStride, int columns)
    {
        for (int c = 0; c < columns; c++)
            for (int r = 0; r < Size; r++) dst[c * dstStride + r] = src[r * srcStride + c];
    }
}
