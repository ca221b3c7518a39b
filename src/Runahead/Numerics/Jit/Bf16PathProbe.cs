using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Runahead.Numerics.Jit;

/// <summary>
/// Times the two ways <see cref="PackedGemm"/> can multiply BF16 weights, on one thread and on data that stays in
/// L1/L2, so that <see cref="Bf16Dot"/> can pick the faster for this CPU. Each pass is one (M block x N chunk) item of
/// the blocked product, as the GEMM runs it: <see cref="Rows"/> activation rows against <see cref="Panels"/> weight
/// micro-panels over K = <see cref="K"/>.
/// Kernel: the rows rounded to bf16 pairs (<see cref="Bf16PairsKernels.PackActivations"/>, the GEMM's pack phase),
/// then 14 x 32 vdpbf16ps tiles over the whole K slice.
/// Widening: per KC slice the rows packed to F32 micro-panels, each weight panel widened to F32
/// (<see cref="GemmMicroKernels.WidenPanel{T}"/>) and 8 x 32 F32 tiles.
/// Both passes include their packing at the share a full-width GEMM pays or more (the GEMM rounds activations once per
/// pass of rows, not once per N chunk), so the probe does not favour the kernel. Passes alternate so that a burst of
/// load from other processes hits both; the best of several is compared. About 3-6 ms in all, most of it the JIT.
/// </summary>
internal static unsafe class Bf16PathProbe
{
    /// <summary>A multiple of both micro-kernel heights (8 and 14), so neither pays for edge tiles.</summary>
    public const int Rows = 112;

    /// <summary>One K slice of the kernel path (<see cref="PackedGemm.PairsKC"/>), two of the widening path.</summary>
    public const int K = PackedGemm.PairsKC;

    /// <summary>256 output features: 256 KiB of bf16 weight, with the 224 KiB of activations within a 1-2 MiB L2.</summary>
    public const int Panels = 8;

    private const int NR = GemmMicroKernels.NR;
    private const int Warmup = 2;
    private const int Repeats = 7;

    /// <summary>Best seconds per pass of (kernel, widening).</summary>
    public static (double KernelSeconds, double WideningSeconds) Measure(
        delegate* unmanaged[SuppressGCTransition]<uint*, uint*, nint, float*, nint, nint, void> kernel)
    {
        const int n = Panels * NR;
        int pairs = Bf16PairsKernels.PairCount(K);
        int pairsPanelLength = Bf16PairsKernels.MicroPanelLength(pairs);
        nint xFloats = (nint)Rows * K, cFloats = (nint)Rows * n;
        nint weightElements = (nint)Panels * K * NR; // bf16, the same count in either layout
        nint aPairsDwords = (nint)(Rows / Bf16Dot.MR) * pairsPanelLength;
        nint aFloats = (nint)Rows * PackedGemm.KC, bFloats = (nint)PackedGemm.KC * NR;
        nint total = (xFloats + cFloats + aFloats + bFloats + aPairsDwords) * 4 + 2 * weightElements * 2 + 6 * 64;
        byte* block = (byte*)NativeMemory.AlignedAlloc((nuint)total, 64);
        try
        {
            byte* next = block;
            float* x = (float*)Take(ref next, xFloats * 4);
            float* c = (float*)Take(ref next, cFloats * 4);
            float* aF32 = (float*)Take(ref next, aFloats * 4);
            float* bF32 = (float*)Take(ref next, bFloats * 4);
            uint* aPairs = (uint*)Take(ref next, aPairsDwords * 4);
            ushort* rowsPanels = (ushort*)Take(ref next, weightElements * 2);
            ushort* pairsPanels = (ushort*)Take(ref next, weightElements * 2);
            // Values in [-1, 1): no denormals or NaNs that could slow one path down.
            var rng = new Random(20261127);
            for (nint i = 0; i < xFloats; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
            for (nint i = 0; i < weightElements; i++)
            {
                rowsPanels[i] = DType.FloatToBf16((float)(rng.NextDouble() * 2 - 1));
                pairsPanels[i] = rowsPanels[i];
            }

            double bestKernel = double.PositiveInfinity, bestWidening = double.PositiveInfinity;
            for (int i = 0; i < Warmup + Repeats; i++)
            {
                long t0 = Stopwatch.GetTimestamp();
                KernelPass(kernel, x, (uint*)pairsPanels, aPairs, pairsPanelLength, pairs, c, n);
                long t1 = Stopwatch.GetTimestamp();
                WideningPass(x, (byte*)rowsPanels, aF32, bF32, c, n);
                long t2 = Stopwatch.GetTimestamp();
                if (i < Warmup) continue;
                bestKernel = Math.Min(bestKernel, (t1 - t0) / (double)Stopwatch.Frequency);
                bestWidening = Math.Min(bestWidening, (t2 - t1) / (double)Stopwatch.Frequency);
            }
            return (bestKernel, bestWidening);
        }
        finally
        {
            NativeMemory.AlignedFree(block);
        }
    }

    private static byte* Take(ref byte* next, nint bytes)
    {
        byte* p = next;
        next = (byte*)(((nint)(next + bytes) + 63) & ~(nint)63);
        return p;
    }

    /// <summary>What <see cref="PackedGemm"/>'s pack phase and one pairs item do for Rows x Panels over one K slice.</summary>
    private static void KernelPass(delegate* unmanaged[SuppressGCTransition]<uint*, uint*, nint, float*, nint, nint, void> kernel,
        float* x, uint* panels, uint* aPairs, int panelLength, int pairs, float* c, int n)
    {
        Bf16PairsKernels.PackActivations(x, K, Rows, K, aPairs);
        for (int p = 0; p < Panels; p++)
        {
            uint* b = panels + (nint)p * pairs * NR;
            for (int r0 = 0; r0 < Rows; r0 += Bf16Dot.MR)
                kernel(aPairs + (nint)(r0 / Bf16Dot.MR) * panelLength, b, pairs, c + (nint)r0 * n + p * NR, (nint)n * 4, 0);
        }
    }

    /// <summary>What one F32-kernel item of <see cref="PackedGemm"/> does for Rows x Panels with BF16 rows panels.</summary>
    private static void WideningPass(float* x, byte* panels, float* a, float* b, float* c, int n)
    {
        const int mr = GemmMicroKernels.MR;
        bool v512 = GemmMicroKernels.UseVector512;
        nint panelBytes = (nint)K * NR * 2;
        for (int k0 = 0; k0 < K; k0 += PackedGemm.KC)
        {
            int kc = Math.Min(PackedGemm.KC, K - k0);
            bool accumulate = k0 > 0;
            PackedGemm.PackActivations(x + k0, K, Rows, kc, a);
            for (int p = 0; p < Panels; p++)
            {
                GemmMicroKernels.WidenPanel<Bf16Element>(panels + p * panelBytes + (nint)k0 * NR * 2, kc, b);
                for (int r0 = 0; r0 < Rows; r0 += mr)
                {
                    float* cTile = c + (nint)r0 * n + p * NR;
                    if (v512) GemmMicroKernels.Kernel8x32(a + (nint)r0 * kc, b, kc, cTile, n, accumulate);
                    else GemmMicroKernels.Kernel8x32V256(a + (nint)r0 * kc, b, kc, cTile, n, accumulate);
                }
            }
        }
    }
}
