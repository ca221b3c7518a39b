namespace Runahead.Numerics;

/// <summary>The plain definition the packed GEMM is tested against: y[t, o] = sum_i x[t, i] w[o, i], in double.</summary>
public static class GemmReference
{
    public static void Forward(ReadOnlySpan<float> x, ReadOnlySpan<float> w, Span<float> y, int tokens, int outFeatures, int inFeatures)
    {
        for (int t = 0; t < tokens; t++)
        {
            var xr = x.Slice(t * inFeatures, inFeatures);
            for (int o = 0; o < outFeatures; o++)
            {
                var wr = w.Slice(o * inFeatures, inFeatures);
                double s = 0;
                for (int i = 0; i < inFeatures; i++) s += (double)xr[i] * wr[i];
                y[t * outFeatures + o] = (float)s;
            }
        }
    }
}
