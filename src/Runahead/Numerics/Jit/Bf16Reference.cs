namespace Runahead.Numerics.Jit;

/// <summary>Plain scalar references for the pairs layouts (self-test and tests).</summary>
internal static class Bf16Reference
{
    /// <summary>sum over k pairs of A[r] . B[col] with A in the kernel's grouped layout and B [kPairs][32] pair dwords, in double.</summary>
    public static double PairDot(ReadOnlySpan<uint> a, ReadOnlySpan<uint> b, int kPairs, int mr, int r, int col)
    {
        double s = 0;
        for (int p = 0; p < kPairs; p++)
        {
            uint x = a[Bf16KernelGenerator.ActivationIndex(p, r, mr)], w = b[p * 32 + col];
            s += (double)DType.Bf16ToFloat((ushort)x) * DType.Bf16ToFloat((ushort)w);
            s += (double)DType.Bf16ToFloat((ushort)(x >> 16)) * DType.Bf16ToFloat((ushort)(w >> 16));
        }
        return s;
    }
}
