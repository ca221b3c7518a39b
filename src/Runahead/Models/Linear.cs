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
        AddBias(y, tokens);
    }

    /// <summary>y [tokens, out] += x [tokens, in] W^T + b: a residual add done by the product itself (no separate pass).</summary>
    public void ForwardAdd(ReadOnlySpan<float> x, int tokens, Span<float> y, ComputePool pool)
    {
        Weight.Forward(x[..(tokens * InFeatures)], tokens, y[..(tokens * OutFeatures)], pool, addToOutput: true);
        AddBias(y, tokens);
    }

    /// <summary>Whether these layers can run as one product group (<see cref="ForwardGroup"/>) on the same input.</summary>
    public static bool CanGroup(Linear a, Linear b, Linear? c = null) =>
        LinearWeight.CanGroup(a.Weight, b.Weight) && (c is null || LinearWeight.CanGroup(a.Weight, c.Weight));

    /// <summary>The <see cref="Forward"/> of two or three layers over the same input as one product group (same results).</summary>
    public static void ForwardGroup(ReadOnlySpan<float> x, int tokens, Linear l0, Span<float> y0, Linear l1, Span<float> y1,
        Linear? l2, Span<float> y2, ComputePool pool)
    {
        LinearWeight.ForwardGroup(x[..(tokens * l0.InFeatures)], tokens, l0.Weight, y0[..(tokens * l0.OutFeatures)],
            l1.Weight, y1[..(tokens * l1.OutFeatures)], l2?.Weight, l2 is null ? default : y2[..(tokens * l2.OutFeatures)], pool);
        l0.AddBias(y0, tokens);
        l1.AddBias(y1, tokens);
        l2?.AddBias(y2, tokens);
    }

    /// <summary>Whether <see cref="ForwardSplit"/> can cut the outputs after <paramref name="n0"/> and <paramref name="n0"/> + <paramref name="n1"/> features.</summary>
    public bool CanSplit(int n0, int n1) => Weight.CanSplit(n0, n1);

    /// <summary>
    /// <see cref="Forward"/> of a fused layer with its output features [0, n0), [n0, n0 + n1) and the rest written to
    /// three separate row-major outputs (Falcon's fused Q/K/V without copying them apart).
    /// </summary>
    public void ForwardSplit(ReadOnlySpan<float> x, int tokens, int n0, Span<float> y0, int n1, Span<float> y1, Span<float> y2, ComputePool pool)
    {
        int n2 = OutFeatures - n0 - n1;
        Weight.ForwardSplit(x[..(tokens * InFeatures)], tokens, n0, y0[..(tokens * n0)], n1, y1[..(tokens * n1)], y2[..(tokens * n2)], pool);
        if (_bias.Length == 0) return;
        AddBias(y0, tokens, _bias.AsSpan(0, n0));
        AddBias(y1, tokens, _bias.AsSpan(n0, n1));
        AddBias(y2, tokens, _bias.AsSpan(n0 + n1, n2));
    }

    private void AddBias(Span<float> y, int tokens)
    {
        if (_bias.Length == 0) return;
        AddBias(y, tokens, _bias);
    }

    private static void AddBias(Span<float> y, int tokens, ReadOnlySpan<float> bias)
    {
        for (int t = 0; t < tokens; t++)
        {
            var row = y.Slice(t * bias.Length, bias.Length);
            TensorPrimitives.Add(row, bias, row);
        }
    }
}
