using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Runahead.Numerics.Jit;

namespace Runahead.Numerics;

/// <summary>
/// The "pairs" layout of BF16 weights for the generated vdpbf16ps kernel (<see cref="Bf16Dot"/>): a panel of 32 output
/// features is [k/2][32][2] bf16, so each dword holds one feature's weights for k and k+1 and one zmm holds 16 features
/// x 2 consecutive k (odd K: the last pair's second half is zero). Activations are packed per call to pair dwords (grouped
/// as <see cref="Bf16KernelGenerator"/> describes) rounded to bf16 (nearest even, NaN kept NaN), as llama.cpp does for BF16 weights.
/// </summary>
internal static unsafe class Bf16PairsKernels
{
    private const int NR = GemmMicroKernels.NR;
    public const int MR = Bf16Dot.MR;

    /// <summary>bf16 elements (ushorts) of one panel: 32 features x K rounded up to even.</summary>
    public static long PanelLength(int inFeatures) => (long)NR * 2 * PairCount(inFeatures);

    public static int PairCount(int k) => (k + 1) / 2;

    /// <summary>Packs panel <paramref name="panel"/> of the row-major [outFeatures, inFeatures] bf16 weight, zero-padding features and the odd k.</summary>
    public static void PackPanel(ushort* src, ushort* dst, int panel, int outFeatures, int inFeatures)
    {
        ushort* panelStart = dst + panel * PanelLength(inFeatures);
        int pairs = PairCount(inFeatures);
        for (int c = 0; c < NR; c++)
        {
            int o = panel * NR + c;
            ushort* d = panelStart + 2 * c;
            if (o >= outFeatures)
            {
                for (int p = 0; p < pairs; p++) *(uint*)(d + (long)p * 2 * NR) = 0;
                continue;
            }
            ushort* row = src + (long)o * inFeatures;
            int i = 0;
            for (; i + 2 <= inFeatures; i += 2) *(uint*)(d + (long)i * NR) = *(uint*)(row + i);
            if (i < inFeatures) *(uint*)(d + (long)i * NR) = row[i];
        }
    }

    /// <summary>Dwords of one activation micro-panel for <paramref name="pairs"/> k pairs (whole groups of 16).</summary>
    public static int MicroPanelLength(int pairs) =>
        (pairs + Bf16KernelGenerator.Group - 1) / Bf16KernelGenerator.Group * Bf16KernelGenerator.Group * MR;

    /// <summary>
    /// Packs rows [0, mc) x columns [0, kc) of x (row stride ldx) into MR-row micro-panels of bf16 pairs in the
    /// kernel's grouped layout ([pairs/16][MR][16] dwords, micro-panel i at <paramref name="dst"/> + i *
    /// <see cref="MicroPanelLength"/>), zero-padding missing rows and the odd k.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void PackActivations(float* x, nint ldx, int mc, int kc, uint* dst)
    {
        const int group = Bf16KernelGenerator.Group;
        int pairs = PairCount(kc);
        int panelLength = MicroPanelLength(pairs);
        for (int r0 = 0; r0 < mc; r0 += MR)
        {
            int rows = Math.Min(MR, mc - r0);
            uint* panel = dst + (nint)(r0 / MR) * panelLength;
            for (int r = 0; r < MR; r++)
            {
                uint* d = panel + r * group;
                if (r >= rows)
                {
                    for (int g = 0; g < panelLength / (MR * group); g++) new Span<uint>(d + g * MR * group, group).Clear();
                    continue;
                }
                float* row = x + (r0 + r) * ldx;
                int k = 0;
                if (Vector512.IsHardwareAccelerated)
                {
                    // 32 floats are one group: 16 pair dwords, one store.
                    for (; k + 2 * group <= kc; k += 2 * group, d += MR * group)
                    {
                        var lo = RoundToBf16Bits(Vector512.Load(row + k));
                        var hi = RoundToBf16Bits(Vector512.Load(row + k + 16));
                        Vector512.Narrow(lo, hi).AsUInt32().Store(d);
                    }
                }
                for (; k < kc; k += 2)
                {
                    int j = k / 2 % group;
                    uint pair = DType.FloatToBf16(row[k]);
                    if (k + 1 < kc) pair |= (uint)DType.FloatToBf16(row[k + 1]) << 16;
                    d[j] = pair;
                    if (j == group - 1) d += MR * group;
                }
            }
        }
    }

    /// <summary>Round to nearest even into the low 16 bits of each lane; NaN stays a (quiet) NaN, as <see cref="DType.FloatToBf16"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<uint> RoundToBf16Bits(Vector512<float> f)
    {
        var u = f.AsUInt32();
        var rounded = u + Vector512.Create(0x7fffu) + (Vector512.ShiftRightLogical(u, 16) & Vector512<uint>.One);
        var nan = Vector512.GreaterThan(u & Vector512.Create(0x7fffffffu), Vector512.Create(0x7f800000u));
        return Vector512.ShiftRightLogical(Vector512.ConditionalSelect(nan, u | Vector512.Create(0x400000u), rounded), 16);
    }

    /// <summary>
    /// Decode: y[r, 0..32) = x[r, 0..k) . panel for up to 4 rows with F32 activations, widening each pair dword in
    /// registers (k = low half shifted up, k+1 = high half masked), so each panel byte is read once (memory-bound loop).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void RowsKernel(float* x, nint ldx, int rows, uint* panel, int k, float* y, nint ldy)
    {
        float* x0 = x, x1 = rows > 1 ? x + ldx : x, x2 = rows > 2 ? x + 2 * ldx : x, x3 = rows > 3 ? x + 3 * ldx : x;
        int fullPairs = k / 2;
        bool odd = (k & 1) != 0;
        if (!GemmMicroKernels.UseVector512)
        {
            RowsKernelV256(x, ldx, rows, panel, k, y, ldy);
            return;
        }
        var mask = Vector512.Create(0xffff0000u);
        if (rows == 1)
        {
            Vector512<float> s0 = default, s1 = default, s2 = default, s3 = default;
            for (int p = 0; p < fullPairs; p++, panel += NR)
            {
                var l = Vector512.Load(panel);
                var h = Vector512.Load(panel + 16);
                var v0 = Vector512.Create(x0[2 * p]);
                var v1 = Vector512.Create(x0[2 * p + 1]);
                s0 = Vector512.FusedMultiplyAdd(v0, Vector512.ShiftLeft(l, 16).AsSingle(), s0);
                s1 = Vector512.FusedMultiplyAdd(v0, Vector512.ShiftLeft(h, 16).AsSingle(), s1);
                s2 = Vector512.FusedMultiplyAdd(v1, (l & mask).AsSingle(), s2);
                s3 = Vector512.FusedMultiplyAdd(v1, (h & mask).AsSingle(), s3);
            }
            if (odd)
            {
                var v0 = Vector512.Create(x0[k - 1]);
                s0 = Vector512.FusedMultiplyAdd(v0, Vector512.ShiftLeft(Vector512.Load(panel), 16).AsSingle(), s0);
                s1 = Vector512.FusedMultiplyAdd(v0, Vector512.ShiftLeft(Vector512.Load(panel + 16), 16).AsSingle(), s1);
            }
            (s0 + s2).Store(y);
            (s1 + s3).Store(y + 16);
            return;
        }
        // Even and odd k accumulate separately (16 chains): one chain per row half would put two dependent FMAs per pair on it.
        Vector512<float> a0 = default, a1 = default, b0 = default, b1 = default;
        Vector512<float> c0 = default, c1 = default, d0 = default, d1 = default;
        Vector512<float> a2 = default, a3 = default, b2 = default, b3 = default;
        Vector512<float> c2 = default, c3 = default, d2 = default, d3 = default;
        for (int p = 0; p < fullPairs; p++, panel += NR)
        {
            var l = Vector512.Load(panel);
            var h = Vector512.Load(panel + 16);
            var el = Vector512.ShiftLeft(l, 16).AsSingle();
            var eh = Vector512.ShiftLeft(h, 16).AsSingle();
            var ol = (l & mask).AsSingle();
            var oh = (h & mask).AsSingle();
            int i = 2 * p;
            var v = Vector512.Create(x0[i]);
            a0 = Vector512.FusedMultiplyAdd(v, el, a0); a1 = Vector512.FusedMultiplyAdd(v, eh, a1);
            v = Vector512.Create(x0[i + 1]);
            a2 = Vector512.FusedMultiplyAdd(v, ol, a2); a3 = Vector512.FusedMultiplyAdd(v, oh, a3);
            v = Vector512.Create(x1[i]);
            b0 = Vector512.FusedMultiplyAdd(v, el, b0); b1 = Vector512.FusedMultiplyAdd(v, eh, b1);
            v = Vector512.Create(x1[i + 1]);
            b2 = Vector512.FusedMultiplyAdd(v, ol, b2); b3 = Vector512.FusedMultiplyAdd(v, oh, b3);
            v = Vector512.Create(x2[i]);
            c0 = Vector512.FusedMultiplyAdd(v, el, c0); c1 = Vector512.FusedMultiplyAdd(v, eh, c1);
            v = Vector512.Create(x2[i + 1]);
            c2 = Vector512.FusedMultiplyAdd(v, ol, c2); c3 = Vector512.FusedMultiplyAdd(v, oh, c3);
            v = Vector512.Create(x3[i]);
            d0 = Vector512.FusedMultiplyAdd(v, el, d0); d1 = Vector512.FusedMultiplyAdd(v, eh, d1);
            v = Vector512.Create(x3[i + 1]);
            d2 = Vector512.FusedMultiplyAdd(v, ol, d2); d3 = Vector512.FusedMultiplyAdd(v, oh, d3);
        }
        if (odd)
        {
            var el = Vector512.ShiftLeft(Vector512.Load(panel), 16).AsSingle();
            var eh = Vector512.ShiftLeft(Vector512.Load(panel + 16), 16).AsSingle();
            int i = k - 1;
            a0 = Vector512.FusedMultiplyAdd(Vector512.Create(x0[i]), el, a0); a1 = Vector512.FusedMultiplyAdd(Vector512.Create(x0[i]), eh, a1);
            b0 = Vector512.FusedMultiplyAdd(Vector512.Create(x1[i]), el, b0); b1 = Vector512.FusedMultiplyAdd(Vector512.Create(x1[i]), eh, b1);
            c0 = Vector512.FusedMultiplyAdd(Vector512.Create(x2[i]), el, c0); c1 = Vector512.FusedMultiplyAdd(Vector512.Create(x2[i]), eh, c1);
            d0 = Vector512.FusedMultiplyAdd(Vector512.Create(x3[i]), el, d0); d1 = Vector512.FusedMultiplyAdd(Vector512.Create(x3[i]), eh, d1);
        }
        (a0 + a2).Store(y); (a1 + a3).Store(y + 16);
        if (rows > 1) { (b0 + b2).Store(y + ldy); (b1 + b3).Store(y + ldy + 16); }
        if (rows > 2) { (c0 + c2).Store(y + 2 * ldy); (c1 + c3).Store(y + 2 * ldy + 16); }
        if (rows > 3) { (d0 + d2).Store(y + 3 * ldy); (d1 + d3).Store(y + 3 * ldy + 16); }
    }

    /// <summary>The decode contract with Vector256 (only reached when tests force the 256-bit kernels).</summary>
    private static void RowsKernelV256(float* x, nint ldx, int rows, uint* panel, int k, float* y, nint ldy)
    {
        var mask = Vector256.Create(0xffff0000u);
        Span<Vector256<float>> s = stackalloc Vector256<float>[4];
        for (int r = 0; r < rows; r++)
        {
            float* xr = x + r * ldx;
            s.Clear();
            uint* p = panel;
            for (int i = 0; i < k; i += 2, p += NR)
            {
                var v0 = Vector256.Create(xr[i]);
                var v1 = Vector256.Create(i + 1 < k ? xr[i + 1] : 0f);
                for (int q = 0; q < 4; q++)
                {
                    var d = Vector256.Load(p + 8 * q);
                    s[q] = Vector256.FusedMultiplyAdd(v0, Vector256.ShiftLeft(d, 16).AsSingle(), s[q]);
                    s[q] = Vector256.FusedMultiplyAdd(v1, (d & mask).AsSingle(), s[q]);
                }
            }
            for (int q = 0; q < 4; q++) s[q].Store(y + r * ldy + 8 * q);
        }
    }

    /// <summary>
    /// Widens kc rows (from an even k) of a pairs panel into an F32 micro-panel [kc][32], for the F32 kernel when the
    /// generated kernel is not there (a defensive path: pairs panels are only made when it is).
    /// </summary>
    public static void WidenPanel(uint* src, int kc, float* dst)
    {
        for (int i = 0; i < kc; i += 2, src += NR)
            for (int c = 0; c < NR; c++)
            {
                uint pair = src[c];
                dst[(nint)i * NR + c] = BitConverter.UInt32BitsToSingle(pair << 16);
                if (i + 1 < kc) dst[(nint)(i + 1) * NR + c] = BitConverter.UInt32BitsToSingle(pair & 0xffff0000u);
            }
    }
}
