using Runahead.Numerics;

namespace Runahead.Models;

/// <summary>A normalisation layer: RMSNorm (Llama) or LayerNorm with optional bias (Falcon).</summary>
internal sealed class NormWeights
{
    private readonly float[] _weight;
    private readonly float[] _bias;
    private readonly bool _layerNorm;
    private readonly float _eps;

    public NormWeights(float[] weight, float[]? bias, bool layerNorm, float eps)
    {
        _weight = weight;
        _bias = bias ?? [];
        _layerNorm = layerNorm;
        _eps = eps;
    }

    public long Bytes => sizeof(float) * ((long)_weight.Length + _bias.Length);

    /// <summary>Normalises <paramref name="tokens"/> rows, split over <paramref name="pool"/> when they are many (same result either way).</summary>
    public void Apply(ReadOnlySpan<float> x, Span<float> output, int tokens, ComputePool pool)
    {
        int width = _weight.Length;
        if (_layerNorm) Ops.LayerNorm(x, _weight, _bias, output, tokens, width, _eps, pool);
        else Ops.RmsNorm(x, _weight, output, tokens, width, _eps, pool);
    }
}
