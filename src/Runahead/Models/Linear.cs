using System.Numerics.Tensors;
using Runahead.Numerics;

namespace Runahead.Models;

/// <summary>A linear layer of the model: a prepared weight and an optional bias.</summary>
internal sealed class Linear
{
    private readonly float[] _bias;

    public LinearWeight Weight { get; }
    public int OutFeatures => Weight.OutFeatures;
    public int InFeatures => Weight.InFeatures;

    public Linear(LinearWeight weight, float[]? bias)
    {
        Weight = weight;
        _bias = bias ?? [];
    }

    /// <summary>Bytes of the prepared weight and the bias.</summary>
    public long Bytes => Weight.MemoryBytes + sizeof(float) * (long)_bias.Length;

    /// <summary>y [tokens, out] = x [tokens, in] W^T + b.</summary>
    public void Forward(ReadOnlySpan<float> x, int tokens, Span<float> y, ComputePool pool)
    {
        Weight.Forward(x[..(tokens * InFeatures)], tokens, y[..(tokens * OutFeatures)], pool);
        if (_bias.Length == 0) return;
        for (int t = 0; t < tokens; t++)
        {
            var row = y.Slice(t * OutFeatures, OutFeatures);
            TensorPrimitives.Add(row, _bias, row);
        }
    }
}
