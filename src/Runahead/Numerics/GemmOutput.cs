namespace Runahead.Numerics;

/// <summary>One weight of a <see cref="PackedGemm.RunGroup"/> call: its panels, its output width N and its result rows (Y[M, N], row stride N).</summary>
internal readonly unsafe struct GemmOutput(byte* panels, int n, float* y)
{
    public byte* Panels { get; } = panels;
    public int N { get; } = n;
    public float* Y { get; } = y;
}
