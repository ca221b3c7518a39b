namespace Runahead.Formats.Safetensors;

/// <summary>Maps Hugging Face Llama and Falcon parameter names to canonical (llama.cpp GGUF) names.</summary>
public static class HfTensorNames
{
    /// <summary>The canonical name of an HF tensor, or null for tensors the engine does not use (e.g. rotary inv_freq).</summary>
    public static string? ToCanonical(string hf, bool falcon)
    {
        if (hf == "lm_head.weight") return "output.weight";
        return falcon ? Falcon(hf) : Llama(hf);
    }

    private static string? Llama(string hf)
    {
        switch (hf)
        {
            case "model.embed_tokens.weight": return "token_embd.weight";
            case "model.norm.weight": return "output_norm.weight";
        }
        const string prefix = "model.layers.";
        if (!TrySplitLayer(hf, prefix, out int layer, out string rest)) return null;
        string? mapped = rest switch
        {
            "input_layernorm.weight" => "attn_norm.weight",
            "post_attention_layernorm.weight" => "ffn_norm.weight",
            "self_attn.q_proj.weight" => "attn_q.weight",
            "self_attn.q_proj.bias" => "attn_q.bias",
            "self_attn.k_proj.weight" => "attn_k.weight",
            "self_attn.k_proj.bias" => "attn_k.bias",
            "self_attn.v_proj.weight" => "attn_v.weight",
            "self_attn.v_proj.bias" => "attn_v.bias",
            "self_attn.o_proj.weight" => "attn_output.weight",
            "self_attn.o_proj.bias" => "attn_output.bias",
            "mlp.gate_proj.weight" => "ffn_gate.weight",
            "mlp.gate_proj.bias" => "ffn_gate.bias",
            "mlp.up_proj.weight" => "ffn_up.weight",
            "mlp.up_proj.bias" => "ffn_up.bias",
            "mlp.down_proj.weight" => "ffn_down.weight",
            "mlp.down_proj.bias" => "ffn_down.bias",
            _ => null,
        };
        return mapped == null ? null : ModelTensors.Layer(layer, mapped);
    }

    private static string? Falcon(string hf)
    {
        switch (hf)
        {
            case "transformer.word_embeddings.weight": return "token_embd.weight";
            case "transformer.ln_f.weight": return "output_norm.weight";
            case "transformer.ln_f.bias": return "output_norm.bias";
        }
        if (!TrySplitLayer(hf, "transformer.h.", out int layer, out string rest)) return null;
        int dot = rest.LastIndexOf('.');
        if (dot <= 0) return null;
        string module = rest[..dot], param = rest[(dot + 1)..];
        if (param is not ("weight" or "bias")) return null;
        string? mapped = module switch
        {
            "input_layernorm" or "ln_attn" => "attn_norm",
            "ln_mlp" => "attn_norm_2",
            "post_attention_layernorm" => "ffn_norm",
            "self_attention.query_key_value" => "attn_qkv",
            "self_attention.dense" => "attn_output",
            "mlp.dense_h_to_4h" => "ffn_up",
            "mlp.dense_4h_to_h" => "ffn_down",
            _ => null,
        };
        return mapped == null ? null : ModelTensors.Layer(layer, mapped + "." + param);
    }

    private static bool TrySplitLayer(string name, string prefix, out int layer, out string rest)
    {
        layer = -1;
        rest = "";
        if (!name.StartsWith(prefix, StringComparison.Ordinal)) return false;
        int dot = name.IndexOf('.', prefix.Length);
        if (dot < 0 || !int.TryParse(name.AsSpan(prefix.Length, dot - prefix.Length), System.Globalization.NumberStyles.None, null, out layer))
            return false;
        rest = name[(dot + 1)..];
        return true;
    }

    /// <summary>The HF name of a canonical tensor (used by converters and error messages).</summary>
    public static string? FromCanonical(string canonical, bool falcon, bool falconTwoNorms)
    {
        if (canonical == "output.weight") return "lm_head.weight";
        if (!canonical.StartsWith("blk.", StringComparison.Ordinal))
        {
            return (canonical, falcon) switch
            {
                ("token_embd.weight", false) => "model.embed_tokens.weight",
                ("output_norm.weight", false) => "model.norm.weight",
                ("token_embd.weight", true) => "transformer.word_embeddings.weight",
                ("output_norm.weight", true) => "transformer.ln_f.weight",
                ("output_norm.bias", true) => "transformer.ln_f.bias",
                _ => null,
            };
        }
        if (!TrySplitLayer(canonical, "blk.", out int layer, out string rest)) return null;
        int dot = rest.LastIndexOf('.');
        if (dot <= 0) return null;
        string module = rest[..dot], param = rest[(dot + 1)..];
        string? hf = falcon
            ? module switch
            {
                "attn_norm" => falconTwoNorms ? "ln_attn" : "input_layernorm",
                "attn_norm_2" => "ln_mlp",
                "ffn_norm" => "post_attention_layernorm",
                "attn_qkv" => "self_attention.query_key_value",
                "attn_output" => "self_attention.dense",
                "ffn_up" => "mlp.dense_h_to_4h",
                "ffn_down" => "mlp.dense_4h_to_h",
                _ => null,
            }
            : module switch
            {
                "attn_norm" => "input_layernorm",
                "ffn_norm" => "post_attention_layernorm",
                "attn_q" => "self_attn.q_proj",
                "attn_k" => "self_attn.k_proj",
                "attn_v" => "self_attn.v_proj",
                "attn_output" => "self_attn.o_proj",
                "ffn_gate" => "mlp.gate_proj",
                "ffn_up" => "mlp.up_proj",
                "ffn_down" => "mlp.down_proj",
                _ => null,
            };
        if (hf == null) return null;
        return (falcon ? "transformer.h." : "model.layers.") + layer + "." + hf + "." + param;
    }
}
