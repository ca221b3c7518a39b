using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Runahead.Numerics;

/// <summary>
/// Register-blocked inner loops of the GEMM. A micro-panel holds <see cref="MR"/> activation rows interleaved per k
/// ([k][MR]); a weight micro-panel holds <see cref="NR"/> output features per k ([k][NR]). Both are streamed linearly.
/// </summary>
internal static unsafe class GemmMicroKernels
{
    public const int MR = 8;
    public const int NR = 32;

    /// <summary>False forces the Vector256 kernels (tests exercise the fallback on AVX-512 machines).</summary>
    internal static bool UseVector512 = Vector512.IsHardwareAccelerated;

    /// <summary>C[8, 32] (+)= A[8, kc] B[kc, 32]: 16 accumulators, 2 weight loads and 8 broadcasts per k.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Kernel8x32(float* a, float* b, nint kc, float* c, nint ldc, bool accumulate)
    {
        Vector512<float> c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51, c60, c61, c70, c71;
        if (accumulate)
        {
            c00 = Vector512.Load(c); c01 = Vector512.Load(c + 16);
            c10 = Vector512.Load(c + ldc); c11 = Vector512.Load(c + ldc + 16);
            c20 = Vector512.Load(c + 2 * ldc); c21 = Vector512.Load(c + 2 * ldc + 16);
            c30 = Vector512.Load(c + 3 * ldc); c31 = Vector512.Load(c + 3 * ldc + 16);
            c40 = Vector512.Load(c + 4 * ldc); c41 = Vector512.Load(c + 4 * ldc + 16);
            c50 = Vector512.Load(c + 5 * ldc); c51 = Vector512.Load(c + 5 * ldc + 16);
            c60 = Vector512.Load(c + 6 * ldc); c61 = Vector512.Load(c + 6 * ldc + 16);
            c70 = Vector512.Load(c + 7 * ldc); c71 = Vector512.Load(c + 7 * ldc + 16);
        }
        else
        {
            c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = Vector512<float>.Zero;
            c40 = c41 = c50 = c51 = c60 = c61 = c70 = c71 = Vector512<float>.Zero;
        }
        float* end = a + kc * MR;
        while (a < end)
        {
            var b0 = Vector512.Load(b);
            var b1 = Vector512.Load(b + 16);
            var x = Vector512.Create(a[0]);
            c00 = Vector512.FusedMultiplyAdd(x, b0, c00); c01 = Vector512.FusedMultiplyAdd(x, b1, c01);
            x = Vector512.Create(a[1]);
            c10 = Vector512.FusedMultiplyAdd(x, b0, c10); c11 = Vector512.FusedMultiplyAdd(x, b1, c11);
            x = Vector512.Create(a[2]);
            c20 = Vector512.FusedMultiplyAdd(x, b0, c20); c21 = Vector512.FusedMultiplyAdd(x, b1, c21);
            x = Vector512.Create(a[3]);
            c30 = Vector512.FusedMultiplyAdd(x, b0, c30); c31 = Vector512.FusedMultiplyAdd(x, b1, c31);
            x = Vector512.Create(a[4]);
            c40 = Vector512.FusedMultiplyAdd(x, b0, c40); c41 = Vector512.FusedMultiplyAdd(x, b1, c41);
            x = Vector512.Create(a[5]);
            c50 = Vector512.FusedMultiplyAdd(x, b0, c50); c51 = Vector512.FusedMultiplyAdd(x, b1, c51);
            x = Vector512.Create(a[6]);
            c60 = Vector512.FusedMultiplyAdd(x, b0, c60); c61 = Vector512.FusedMultiplyAdd(x, b1, c61);
            x = Vector512.Create(a[7]);
            c70 = Vector512.FusedMultiplyAdd(x, b0, c70); c71 = Vector512.FusedMultiplyAdd(x, b1, c71);
            a += MR;
            b += NR;
        }
        c00.Store(c); c01.Store(c + 16);
        c10.Store(c + ldc); c11.Store(c + ldc + 16);
        c20.Store(c + 2 * ldc); c21.Store(c + 2 * ldc + 16);
        c30.Store(c + 3 * ldc); c31.Store(c + 3 * ldc + 16);
        c40.Store(c + 4 * ldc); c41.Store(c + 4 * ldc + 16);
        c50.Store(c + 5 * ldc); c51.Store(c + 5 * ldc + 16);
        c60.Store(c + 6 * ldc); c61.Store(c + 6 * ldc + 16);
        c70.Store(c + 7 * ldc); c71.Store(c + 7 * ldc + 16);
    }

    /// <summary>The same contract with Vector256 (AVX2 has 16 registers): two rows at a time, 8 accumulators.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Kernel8x32V256(float* a, float* b, nint kc, float* c, nint ldc, bool accumulate)
    {
        for (int r = 0; r < MR; r += 2)
        {
            float* c0 = c + r * ldc, c1 = c0 + ldc;
            Vector256<float> a0, a1, a2, a3, d0, d1, d2, d3;
            if (accumulate)
            {
                a0 = Vector256.Load(c0); a1 = Vector256.Load(c0 + 8); a2 = Vector256.Load(c0 + 16); a3 = Vector256.Load(c0 + 24);
                d0 = Vector256.Load(c1); d1 = Vector256.Load(c1 + 8); d2 = Vector256.Load(c1 + 16); d3 = Vector256.Load(c1 + 24);
            }
            else
            {
                a0 = a1 = a2 = a3 = d0 = d1 = d2 = d3 = Vector256<float>.Zero;
            }
            float* ap = a + r, bp = b;
            for (nint k = 0; k < kc; k++, ap += MR, bp += NR)
            {
                var b0 = Vector256.Load(bp); var b1 = Vector256.Load(bp + 8);
                var b2 = Vector256.Load(bp + 16); var b3 = Vector256.Load(bp + 24);
                var x = Vector256.Create(ap[0]);
                a0 = Vector256.FusedMultiplyAdd(x, b0, a0); a1 = Vector256.FusedMultiplyAdd(x, b1, a1);
                a2 = Vector256.FusedMultiplyAdd(x, b2, a2); a3 = Vector256.FusedMultiplyAdd(x, b3, a3);
                x = Vector256.Create(ap[1]);
                d0 = Vector256.FusedMultiplyAdd(x, b0, d0); d1 = Vector256.FusedMultiplyAdd(x, b1, d1);
                d2 = Vector256.FusedMultiplyAdd(x, b2, d2); d3 = Vector256.FusedMultiplyAdd(x, b3, d3);
            }
            a0.Store(c0); a1.Store(c0 + 8); a2.Store(c0 + 16); a3.Store(c0 + 24);
            d0.Store(c1); d1.Store(c1 + 8); d2.Store(c1 + 16); d3.Store(c1 + 24);
        }
    }

    /// <summary>
    /// Decode path: y[r, 0..32) = x[r, 0..k) . panel for up to 4 activation rows, converting stored weights in
    /// registers so each panel byte is read from memory exactly once (the loop is memory-bound).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void RowsKernel<T>(float* x, nint ldx, int rows, byte* panel, nint k, float* y, nint ldy)
        where T : struct, IPanelElement
    {
        // Missing rows alias row 0: the extra FMAs are free in a memory-bound loop and keep one code path.
        float* x0 = x, x1 = rows > 1 ? x + ldx : x, x2 = rows > 2 ? x + 2 * ldx : x, x3 = rows > 3 ? x + 3 * ldx : x;
        nint step = NR * T.Size;
        if (UseVector512 && rows == 1)
        {
            // Two k per iteration into separate accumulators: FMA latency, not the conversion, would bound one chain.
            Vector512<float> s0 = default, s1 = default, s2 = default, s3 = default;
            nint i = 0;
            for (; i + 2 <= k; i += 2, panel += 2 * step)
            {
                T.Load32(panel, out var lo, out var hi);
                T.Load32(panel + step, out var lo2, out var hi2);
                var v = Vector512.Create(x0[i]);
                var v2 = Vector512.Create(x0[i + 1]);
                s0 = Vector512.FusedMultiplyAdd(v, lo, s0); s1 = Vector512.FusedMultiplyAdd(v, hi, s1);
                s2 = Vector512.FusedMultiplyAdd(v2, lo2, s2); s3 = Vector512.FusedMultiplyAdd(v2, hi2, s3);
            }
            if (i < k)
            {
                T.Load32(panel, out var lo, out var hi);
                var v = Vector512.Create(x0[i]);
                s0 = Vector512.FusedMultiplyAdd(v, lo, s0); s1 = Vector512.FusedMultiplyAdd(v, hi, s1);
            }
            (s0 + s2).Store(y);
            (s1 + s3).Store(y + 16);
            return;
        }
        if (UseVector512)
        {
            Vector512<float> a0 = default, a1 = default, b0 = default, b1 = default;
            Vector512<float> c0 = default, c1 = default, d0 = default, d1 = default;
            for (nint i = 0; i < k; i++, panel += step)
            {
                T.Load32(panel, out var lo, out var hi);
                var v = Vector512.Create(x0[i]);
                a0 = Vector512.FusedMultiplyAdd(v, lo, a0); a1 = Vector512.FusedMultiplyAdd(v, hi, a1);
                v = Vector512.Create(x1[i]);
                b0 = Vector512.FusedMultiplyAdd(v, lo, b0); b1 = Vector512.FusedMultiplyAdd(v, hi, b1);
                v = Vector512.Create(x2[i]);
                c0 = Vector512.FusedMultiplyAdd(v, lo, c0); c1 = Vector512.FusedMultiplyAdd(v, hi, c1);
                v = Vector512.Create(x3[i]);
                d0 = Vector512.FusedMultiplyAdd(v, lo, d0); d1 = Vector512.FusedMultiplyAdd(v, hi, d1);
            }
            a0.Store(y); a1.Store(y + 16);
            if (rows > 1) { b0.Store(y + ldy); b1.Store(y + ldy + 16); }
            if (rows > 2) { c0.Store(y + 2 * ldy); c1.Store(y + 2 * ldy + 16); }
            if (rows > 3) { d0.Store(y + 3 * ldy); d1.Store(y + 3 * ldy + 16); }
            return;
        }
        for (int r = 0; r < rows; r++)
        {
            float* xr = r switch { 0 => x0, 1 => x1, 2 => x2, _ => x3 };
            Vector256<float> s0 = default, s1 = default, s2 = default, s3 = default;
            byte* p = panel;
            for (nint i = 0; i < k; i++, p += step)
            {
                var v = Vector256.Create(xr[i]);
                s0 = Vector256.FusedMultiplyAdd(v, T.Load8(p), s0);
                s1 = Vector256.FusedMultiplyAdd(v, T.Load8(p + 8 * T.Size), s1);
                s2 = Vector256.FusedMultiplyAdd(v, T.Load8(p + 16 * T.Size), s2);
                s3 = Vector256.FusedMultiplyAdd(v, T.Load8(p + 24 * T.Size), s3);
            }
            float* yr = y + r * ldy;
            s0.Store(yr); s1.Store(yr + 8); s2.Store(yr + 16); s3.Store(yr + 24);
        }
    }

    /// <summary>Widens kc rows of a stored panel into an F32 micro-panel ([kc][32]) the F32 kernel streams from L1/L2.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void WidenPanel<T>(byte* src, nint kc, float* dst) where T : struct, IPanelElement
    {
        nint step = NR * T.Size;
        if (Vector512.IsHardwareAccelerated)
        {
            for (nint i = 0; i < kc; i++, src += step, dst += NR)
            {
                T.Load32(src, out var lo, out var hi);
                lo.Store(dst);
                hi.Store(dst + 16);
            }
            return;
        }
        for (nint i = 0; i < kc; i++, src += step, dst += NR)
        {
            T.Load8(src).Store(dst);
            T.Load8(src + 8 * T.Size).Store(dst + 8);
            T.Load8(src + 16 * T.Size).Store(dst + 16);
            T.Load8(src + 24 * T.Size).Store(dst + 24);
        }
    }
}
