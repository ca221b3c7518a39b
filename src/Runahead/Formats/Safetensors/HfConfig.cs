using System.Text.Json;
using Runahead.Models;

namespace Runahead.Formats.Safetensors;

/// <summary>How a Falcon checkpoint lays out the rows of its fused query_key_value weight.</summary>
public enum FalconQkvLayout
{
    /// <summary>Not Falcon (separate q/k/v projections).</summary>
    None,

    /// <summary>Multi-query (Falcon-7B): all Q heads, then the K head, then the V head (already canonical).</summary>
    QueriesThenKeyValue,

    /// <summary>
    /// New decoder architecture (Falcon-40B), and the old per-head layout where every head has its own K/V: groups of
    /// [q x (heads / kv_heads), k, v] per KV head, which are reordered to canonical [all Q; all K; all V] at load.
    /// </summary>
    GroupedPerKvHead,
}

/// <summary>A Hugging Face config.json read into a <see cref="ModelConfig"/> plus what the tensor mapping needs.</summary>
public sealed record HfConfig(ModelConfig Config, FalconQkvLayout QkvLayout, bool FalconTwoLayerNorms)
{
    public static HfConfig Load(string configPath)
    {
        byte[] bytes = JsonFiles.ReadBounded(configPath, 16 << 20);
        using var doc = JsonFiles.Parse(configPath, bytes, "config.json", maxDepth: 32);
        if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new InvalidModelFileException(configPath, "config.json is not a JSON object");
        return Parse(configPath, doc.RootElement);
    }

    private static HfConfig Parse(string path, JsonElement root)
    {
        var r = new JsonFields(path, root);
        string arch = "";
        if (root.TryGetProperty("architectures", out var archs) && archs.ValueKind == JsonValueKind.Array && archs.GetArrayLength() > 0
            && archs[0].ValueKind == JsonValueKind.String)
            arch = archs[0].GetString()!;
        string modelType = r.Str("model_type") ?? "";
        bool falcon = arch == "FalconForCausalLM" || (arch.Length == 0 && modelType is "falcon" or "RefinedWeb" or "RefinedWebModel");
        bool llama = arch == "LlamaForCausalLM" || (arch.Length == 0 && modelType == "llama");
        if (!falcon && !llama)
            throw new InvalidModelFileException(path, $"architecture '{(arch.Length > 0 ? arch : modelType)}' is not supported (LlamaForCausalLM and FalconForCausalLM are)");

        float theta = (float)(r.Num("rope_theta") ?? r.NestedNum("rope_parameters", "rope_theta") ?? 10000.0);
        if (root.TryGetProperty("rope_scaling", out var scaling) && scaling.ValueKind == JsonValueKind.Object)
            throw new InvalidModelFileException(path, "rope_scaling is not supported");
        if (root.TryGetProperty("rope_parameters", out var ropeParams) && ropeParams.ValueKind == JsonValueKind.Object
            && ropeParams.TryGetProperty("rope_type", out var ropeType) && ropeType.ValueKind == JsonValueKind.String
            && ropeType.GetString() != "default")
            throw new InvalidModelFileException(path, $"rope_type '{ropeType.GetString()}' is not supported (only default RoPE is)");
        int vocab = r.Int("vocab_size") ?? throw r.Missing("vocab_size");
        int dim = r.Int("hidden_size") ?? r.Int("n_embed") ?? throw r.Missing("hidden_size");
        int bos = r.Int("bos_token_id") ?? 1;
        int eos = r.Int("eos_token_id") ?? 2;

        if (llama)
        {
            int heads = r.Int("num_attention_heads") ?? throw r.Missing("num_attention_heads");
            if (heads <= 0) throw r.Bad("num_attention_heads", heads);
            var config = new ModelConfig
            {
                Architecture = ModelArchitecture.Llama,
                Dim = dim,
                Layers = r.Int("num_hidden_layers") ?? throw r.Missing("num_hidden_layers"),
                Heads = heads,
                KvHeads = r.Int("num_key_value_heads") ?? heads,
                HeadDim = r.Int("head_dim") ?? dim / heads,
                FfnDim = r.Int("intermediate_size") ?? throw r.Missing("intermediate_size"),
                VocabSize = vocab,
                ContextLength = r.Int("max_position_embeddings") ?? 2048,
                NormEps = (float)(r.Num("rms_norm_eps") ?? 1e-6),
                RopeTheta = theta,
                // Hugging Face Llama rotates halves (rotate_half) on q/k rows permuted by the converter.
                Rope = RopeStyle.NeoX,
                TiedEmbeddings = r.Bool("tie_word_embeddings") ?? false,
                BosId = bos,
                EosId = eos,
            };
            return new HfConfig(config, FalconQkvLayout.None, false);
        }
        else
        {
            if (r.Bool("alibi") == true) throw new InvalidModelFileException(path, "Falcon with ALiBi is not supported (rotary only)");
            int heads = r.Int("num_attention_heads") ?? r.Int("n_head") ?? throw r.Missing("num_attention_heads");
            if (heads <= 0) throw r.Bad("num_attention_heads", heads);
            bool newArch = r.Bool("new_decoder_architecture") ?? false;
            bool multiQuery = r.Bool("multi_query") ?? true;
            // transformers' FalconConfig: the new architecture uses num_kv_heads; otherwise multi_query means one
            // K/V head and anything else one per query head.
            int kvHeads = newArch ? r.Int("num_kv_heads") ?? r.Int("n_head_kv") ?? heads : multiQuery ? 1 : heads;
            int lnCount = r.Int("num_ln_in_parallel_attn") ?? 2;
            bool twoNorms = newArch && lnCount == 2;
            var layout = !newArch && multiQuery ? FalconQkvLayout.QueriesThenKeyValue : FalconQkvLayout.GroupedPerKvHead;
            var config = new ModelConfig
            {
                Architecture = ModelArchitecture.Falcon,
                Dim = dim,
                Layers = r.Int("num_hidden_layers") ?? r.Int("n_layer") ?? throw r.Missing("num_hidden_layers"),
                Heads = heads,
                KvHeads = kvHeads,
                HeadDim = dim / heads,
                FfnDim = r.Int("ffn_hidden_size") ?? 4 * dim,
                VocabSize = vocab,
                ContextLength = r.Int("max_position_embeddings") ?? 2048,
                NormEps = (float)(r.Num("layer_norm_epsilon") ?? 1e-5),
                RopeTheta = theta,
                Rope = RopeStyle.NeoX,
                TiedEmbeddings = r.Bool("tie_word_embeddings") ?? true,
                ParallelAttention = newArch || (r.Bool("parallel_attn") ?? true),
                FalconNewDecoder = twoNorms,
                BosId = bos,
                EosId = eos,
            };
            return new HfConfig(config, layout, twoNorms);
        }
    }

    /// <summary>Typed, range-checked access to config.json fields; a wrong type is an error, not a silent default.</summary>
    private readonly struct JsonFields(string path, JsonElement root)
    {
        public InvalidModelFileException Missing(string key) => new(path, $"'{key}' is missing");
        public InvalidModelFileException Bad(string key, object v) => new(path, $"'{key}' = {v} is out of range");

        private bool TryGet(string key, out JsonElement e) =>
            root.TryGetProperty(key, out e) && e.ValueKind != JsonValueKind.Null;

        public int? Int(string key)
        {
            if (!TryGet(key, out var e)) return null;
            if (e.ValueKind == JsonValueKind.Array && e.GetArrayLength() > 0 && key.EndsWith("_token_id", StringComparison.Ordinal))
                e = e[0]; // several EOS ids: the first is the one the model was trained to emit
            if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt64(out long v))
                throw new InvalidModelFileException(path, $"'{key}' should be an integer, found {e.ValueKind}");
            if (v < int.MinValue || v > int.MaxValue) throw Bad(key, v);
            return (int)v;
        }

        public double? Num(string key) => TryGet(key, out var e) ? AsNumber(key, e) : null;

        public double? NestedNum(string outer, string key) =>
            TryGet(outer, out var o) && o.ValueKind == JsonValueKind.Object && o.TryGetProperty(key, out var e) && e.ValueKind != JsonValueKind.Null
                ? AsNumber(key, e) : null;

        private double AsNumber(string key, JsonElement e) =>
            e.ValueKind == JsonValueKind.Number && e.TryGetDouble(out double d)
                ? d : throw new InvalidModelFileException(path, $"'{key}' should be a number, found {e.ValueKind}");

        public bool? Bool(string key)
        {
            if (!TryGet(key, out var e)) return null;
            return e.ValueKind switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                _ => throw new InvalidModelFileException(path, $"'{key}' should be true or false, found {e.ValueKind}"),
            };
        }

        public string? Str(string key) => TryGet(key, out var e) && e.ValueKind == JsonValueKind.String ? e.GetString() : null;
    }
}
