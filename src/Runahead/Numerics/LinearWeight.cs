using Runahead.Formats;

namespace Runahead.Numerics;

/// <summary>
/// The weight of a linear layer, W [out, in] as model files store it, prepared once at load for Y = X W^T.
/// NOTE (skeleton): holds an F32 copy and runs a plain loop; the kernels issue replaces the inside with packed
/// panels and an AVX-512 micro-kernel, keeping this signature.
/// </summary>
public sealed class LinearWeight
{
    private readonly float[] _w;

    public int OutFeatures { get; }
    public int InFeatures { get; }
    public TensorType StoredType { get; }

    private LinearWeight(float[] w, int outFeatures, int inFeatures, TensorType type)
    {
        _w = w;
        OutFeatures = outFeatures;
        InFeatures = inFeatures;
        StoredType = type;
    }

    /// <summary>Prepares a weight from its stored bytes (row-major [outFeatures, inFeatures]).</summary>
    public static LinearWeight FromStored(ReadOnlySpan<byte> stored, TensorType type, int outFeatures, int inFeatures)
    {
        var w = new float[checked((long)outFeatures * inFeatures)];
        DType.ToFloat32(stored, type, w);
        return new LinearWeight(w, outFeatures, inFeatures, type);
    }

    public static LinearWeight FromFloat32(float[] w, int outFeatures, int inFeatures) =>
        new((float[])w.Clone(), outFeatures, inFeatures, TensorType.F32);

    /// <summary>y[t, o] = sum_i x[t, i] * W[o, i] for t in [0, tokens).</summary>
    public void Forward(ReadOnlySpan<float> x, int tokens, Span<float> y, ComputePool pool)
    {
        int n = OutFeatures, k = InFeatures;
        for (int t = 0; t < tokens; t++)
        {
            var xr = x.Slice(t * k, k);
            var yr = y.Slice(t * n, n);
            for (int o = 0; o < n; o++)
            {
                float s = 0;
                var wr = _w.AsSpan(o * k, k);
                for (int i = 0; i < k; i++) s += xr[i] * wr[i];
                yr[o] = s;
            }
        }
    }
}
