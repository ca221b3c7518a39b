namespace Runahead.Formats.Gguf;

/// <summary>
/// Falcon new-decoder-architecture LayerNorm names differ between our canonical names and GGUF files.
/// Canonically (as in <see cref="IWeightSource"/>), attn_norm feeds attention (HF ln_attn) and attn_norm_2 the MLP
/// (HF ln_mlp). llama.cpp's converter maps them the other way round (ln_mlp to attn_norm, ln_attn to attn_norm_2)
/// and its Falcon graph feeds attention from attn_norm_2 and the MLP from attn_norm. GGUF files therefore store the
/// two under swapped names, and the reader and writer swap them back, so Falcon-40B style GGUF files from
/// llama.cpp load correctly here and ours run in llama.cpp.
/// </summary>
public static class FalconNormNames
{
    /// <summary>Whether a GGUF file of <paramref name="arch"/> stores the two norms under swapped names.</summary>
    public static bool AreSwapped(string? arch, bool hasSecondNorm) => arch == "falcon" && hasSecondNorm;

    /// <summary>blk.N.attn_norm.{weight,bias} and blk.N.attn_norm_2.{weight,bias} trade names; others pass through.</summary>
    public static string Swap(string name)
    {
        if (!name.StartsWith("blk.", StringComparison.Ordinal)) return name;
        int dot = name.IndexOf('.', 4);
        if (dot < 0) return name;
        var rest = name.AsSpan(dot + 1);
        string prefix = name[..(dot + 1)];
        return rest switch
        {
            "attn_norm.weight" => prefix + "attn_norm_2.weight",
            "attn_norm.bias" => prefix + "attn_norm_2.bias",
            "attn_norm_2.weight" => prefix + "attn_norm.weight",
            "attn_norm_2.bias" => prefix + "attn_norm.bias",
            _ => name,
        };
    }
}
