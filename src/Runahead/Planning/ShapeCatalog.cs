using Runahead.Models;

namespace Runahead.Planning;

/// <summary>
/// Model shapes the planner can simulate without a model file. Kept here until the formats helper's
/// ModelShapes.Get lands; the numbers are the published configurations of each model.
/// </summary>
public static class ShapeCatalog
{
    private static readonly Dictionary<string, ModelConfig> Shapes = new(StringComparer.OrdinalIgnoreCase)
    {
        ["llama2-7b"] = new ModelConfig
        {
            Architecture = ModelArchitecture.Llama, Layers = 32, Dim = 4096, Heads = 32, KvHeads = 32, HeadDim = 128,
            FfnDim = 11008, VocabSize = 32000, ContextLength = 4096,
        },
        ["falcon-7b"] = new ModelConfig
        {
            Architecture = ModelArchitecture.Falcon, Layers = 32, Dim = 4544, Heads = 71, KvHeads = 1, HeadDim = 64,
            FfnDim = 18176, VocabSize = 65024, ContextLength = 2048, ParallelAttention = true, Rope = RopeStyle.NeoX,
        },
        ["tinyllama-1.1b"] = new ModelConfig
        {
            Architecture = ModelArchitecture.Llama, Layers = 22, Dim = 2048, Heads = 32, KvHeads = 4, HeadDim = 64,
            FfnDim = 5632, VocabSize = 32000, ContextLength = 2048, Rope = RopeStyle.NeoX,
        },
        ["smollm-135m"] = new ModelConfig
        {
            Architecture = ModelArchitecture.Llama, Layers = 30, Dim = 576, Heads = 9, KvHeads = 3, HeadDim = 64,
            FfnDim = 1536, VocabSize = 49152, ContextLength = 2048, Rope = RopeStyle.NeoX, TiedEmbeddings = true,
        },
        // stories260K (the shared llama2.c fixture).
        ["tiny"] = new ModelConfig
        {
            Architecture = ModelArchitecture.Llama, Layers = 5, Dim = 64, Heads = 8, KvHeads = 4, HeadDim = 8,
            FfnDim = 172, VocabSize = 512, ContextLength = 512, TiedEmbeddings = true,
        },
    };

    public static IReadOnlyCollection<string> Names => Shapes.Keys;

    public static ModelConfig Get(string name) =>
        Shapes.TryGetValue(name, out var shape)
            ? shape
            : throw new RunaheadException($"unknown model shape '{name}' (known: {string.Join(", ", Shapes.Keys)})");

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
