using Runahead.Models;

namespace Runahead.Formats;

/// <summary>
/// Named model shapes (real models' dimensions) for synthetic models, planning and benchmarks. Configurations are
/// in their GGUF form: Llama shapes use interleaved RoPE, Falcon rotate-half with parallel attention.
/// </summary>
public static class ModelShapes
{
    public static IReadOnlyList<string> Names { get; } = ["tiny", "smollm-135m", "tinyllama-1.1b", "llama2-7b", "falcon-7b"];

    /// <summary>The shape's configuration in its own architecture (Falcon for falcon-7b, Llama otherwise).</summary>
    public static ModelConfig Get(string name) => name.ToLowerInvariant() switch
    {
        "tiny" => Llama(dim: 64, layers: 2, heads: 4, kvHeads: 2, ffn: 128, vocab: 512, context: 512, tied: false),
        "smollm-135m" => Llama(dim: 576, layers: 30, heads: 9, kvHeads: 3, ffn: 1536, vocab: 49152, context: 2048, tied: true),
        "tinyllama-1.1b" => Llama(dim: 2048, layers: 22, heads: 32, kvHeads: 4, ffn: 5632, vocab: 32000, context: 2048, tied: false),
        "llama2-7b" => Llama(dim: 4096, layers: 32, heads: 32, kvHeads: 32, ffn: 11008, vocab: 32000, context: 4096, tied: false),
        "falcon-7b" => AsFalcon(Llama(dim: 4544, layers: 32, heads: 71, kvHeads: 1, ffn: 18176, vocab: 65024, context: 2048, tied: true)) with
        {
            BosId = 11,
            EosId = 11,
        },
        _ => throw new RunaheadException($"unknown model shape '{name}' (known: {string.Join(", ", Names)})"),
    };

    /// <summary>A shape in the requested architecture (e.g. a Falcon-style "tiny" for tests).</summary>
    public static ModelConfig Get(string name, ModelArchitecture architecture)
    {
        var c = Get(name);
        if (c.Architecture == architecture) return c;
        return architecture == ModelArchitecture.Falcon
            ? AsFalcon(c)
            : c with { Architecture = ModelArchitecture.Llama, Rope = RopeStyle.Interleaved, ParallelAttention = false, FalconNewDecoder = false };
    }

    /// <summary>A llama2.c-style Llama: RMSNorm eps 1e-5, theta 10000, interleaved RoPE, BOS 1 / EOS 2.</summary>
    internal static ModelConfig Llama(int dim, int layers, int heads, int kvHeads, int ffn, int vocab, int context, bool tied) => new()
    {
        Architecture = ModelArchitecture.Llama,
        Dim = dim,
        Layers = layers,
        Heads = heads,
        KvHeads = kvHeads,
        HeadDim = dim / heads,
        FfnDim = ffn,
        VocabSize = vocab,
        ContextLength = context,
        NormEps = 1e-5f,
        RopeTheta = 10000f,
        Rope = RopeStyle.Interleaved,
        TiedEmbeddings = tied,
        BosId = 1,
        EosId = 2,
    };

    /// <summary>Falcon-7B style: fused QKV, one LayerNorm with bias per layer, attention and MLP in parallel.</summary>
    private static ModelConfig AsFalcon(ModelConfig c) => c with
    {
        Architecture = ModelArchitecture.Falcon,
        Rope = RopeStyle.NeoX,
        ParallelAttention = true,
        FalconNewDecoder = false,
    };
}
