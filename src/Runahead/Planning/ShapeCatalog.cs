using Runahead.Formats;
using Runahead.Models;

namespace Runahead.Planning;

/// <summary>Model shapes the planner simulates without a model file (the formats layer's named shapes).</summary>
public static class ShapeCatalog
{
    public static IReadOnlyCollection<string> Names => ModelShapes.Names;

    public static ModelConfig Get(string name) => ModelShapes.Get(name);

    /// <summary>
    /// Share of a layer's linear (weight) work spent on the Q, K, V projections: the part of the layer that can run
    /// before the K,V prefix from the previous rank is needed.
    /// </summary>
    public static double QkvLinearShare(ModelConfig shape)
    {
        double d = shape.Dim;
        double qkv = d * (shape.QDim + 2.0 * shape.KvDim);
        double output = shape.QDim * d;
        // Llama's SwiGLU MLP has three matrices, Falcon's GELU MLP two.
        double mlp = (shape.Architecture == ModelArchitecture.Llama ? 3.0 : 2.0) * d * shape.FfnDim;
        return qkv / (qkv + output + mlp);
    }
}
