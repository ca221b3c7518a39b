using Runahead.Models;

namespace Runahead.Numerics;

/// <summary>The plain definitions <see cref="Ops"/> is tested against (double accumulation, Math.Pow per element).</summary>
public static class OpsReference
{
    /// <summary>out[t] = x[t] / rms(x[t]) * weight.</summary>
    public static void RmsNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, Span<float> output, int tokens, int width, float eps)
    {
        for (int t = 0; t < tokens; t++)
        {
            var xr = x.Slice(t * width, width);
            var o = output.Slice(t * width, width);
            double ss = 0;
            for (int i = 0; i < width; i++) ss += xr[i] * xr[i];
            float scale = (float)(1.0 / Math.Sqrt(ss / width + eps));
            for (int i = 0; i < width; i++) o[i] = xr[i] * scale * weight[i];
        }
    }

    /// <summary>out[t] = (x[t] - mean) / sqrt(var + eps) * weight + bias.</summary>
    public static void LayerNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, Span<float> output, int tokens, int width, float eps)
    {
        for (int t = 0; t < tokens; t++)
        {
            var xr = x.Slice(t * width, width);
            var o = output.Slice(t * width, width);
            double mean = 0;
            for (int i = 0; i < width; i++) mean += xr[i];
            mean /= width;
            double var = 0;
            for (int i = 0; i < width; i++) { double d = xr[i] - mean; var += d * d; }
            var /= width;
            float inv = (float)(1.0 / Math.Sqrt(var + eps));
            for (int i = 0; i < width; i++) o[i] = (float)(xr[i] - mean) * inv * weight[i] + (bias.IsEmpty ? 0 : bias[i]);
        }
    }

    /// <summary>
    /// Rotates heads of x ([tokens, heads * headDim]) in place; token t is at global position startPos + t.
    /// </summary>
    public static void Rope(Span<float> x, int tokens, int heads, int headDim, int startPos, float theta, RopeStyle style)
    {
        int half = headDim / 2;
        for (int t = 0; t < tokens; t++)
        {
            int pos = startPos + t;
            for (int i = 0; i < half; i++)
            {
                double freq = 1.0 / Math.Pow(theta, 2.0 * i / headDim);
                double angle = pos * freq;
                float c = (float)Math.Cos(angle), s = (float)Math.Sin(angle);
                for (int h = 0; h < heads; h++)
                {
                    int b = t * heads * headDim + h * headDim;
                    int i0 = style == RopeStyle.Interleaved ? b + 2 * i : b + i;
                    int i1 = style == RopeStyle.Interleaved ? b + 2 * i + 1 : b + i + half;
                    float a0 = x[i0], a1 = x[i1];
                    x[i0] = a0 * c - a1 * s;
                    x[i1] = a0 * s + a1 * c;
                }
            }
        }
    }

    /// <summary>gate[i] = silu(gate[i]) * up[i].</summary>
    public static void SwiGlu(Span<float> gate, ReadOnlySpan<float> up)
    {
        for (int i = 0; i < gate.Length; i++)
        {
            float g = gate[i];
            gate[i] = g / (1f + MathF.Exp(-g)) * up[i];
        }
    }

    /// <summary>Exact GELU (erf form), as Hugging Face's "gelu".</summary>
    public static void Gelu(Span<float> x)
    {
        for (int i = 0; i < x.Length; i++) x[i] = (float)(0.5 * x[i] * (1.0 + Erf(x[i] / Math.Sqrt(2.0))));
    }

    /// <summary>erf with |error| &lt; 1.2e-7 (Numerical Recipes erfc Chebyshev fit).</summary>
    public static double Erf(double x)
    {
        double z = Math.Abs(x);
        double t = 1.0 / (1.0 + 0.5 * z);
        double r = t * Math.Exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
            t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
        return x >= 0 ? 1 - r : r - 1;
    }

    public static void Softmax(Span<float> x)
    {
        float max = float.NegativeInfinity;
        foreach (var v in x) max = Math.Max(max, v);
        double sum = 0;
        for (int i = 0; i < x.Length; i++) { x[i] = MathF.Exp(x[i] - max); sum += x[i]; }
        float inv = (float)(1 / sum);
        for (int i = 0; i < x.Length; i++) x[i] *= inv;
    }
}
