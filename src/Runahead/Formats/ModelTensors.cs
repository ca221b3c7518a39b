using Runahead.Models;

namespace Runahead.Formats;

/// <summary>One tensor a model of a given configuration needs (or may have), with its canonical shape.</summary>
public readonly record struct ExpectedTensor(string Name, long[] Shape, bool Required);

/// <summary>
/// The canonical tensor set of a configuration, shared by every weight source so that the three formats are checked
/// by the same rules and a model never starts with a tensor missing or misshapen.
/// </summary>
public static class ModelTensors
{
    public static string Layer(int layer, string suffix) => $"blk.{layer}.{suffix}";

    /// <summary>Every tensor a model of <paramref name="c"/> must have, plus the optional biases it may have.</summary>
    public static List<ExpectedTensor> Expected(ModelConfig c)
    {
        long d = c.Dim, v = c.VocabSize, q = c.QDim, kv = c.KvDim, f = c.FfnDim;
        var list = new List<ExpectedTensor>(c.Layers * 16 + 4)
        {
            new("token_embd.weight", [v, d], true),
            new("output_norm.weight", [d], true),
        };
        if (!c.TiedEmbeddings) list.Add(new("output.weight", [v, d], true));
        bool falcon = c.Architecture == ModelArchitecture.Falcon;
        list.Add(new("output_norm.bias", [d], falcon));
        for (int l = 0; l < c.Layers; l++)
        {
            void Add(string suffix, long[] shape, bool required) => list.Add(new(Layer(l, suffix), shape, required));
            Add("attn_norm.weight", [d], true);
            Add("attn_norm.bias", [d], falcon);
            Add("attn_output.weight", [d, q], true);
            Add("attn_output.bias", [d], false);
            Add("ffn_up.weight", [f, d], true);
            Add("ffn_up.bias", [f], false);
            Add("ffn_down.weight", [d, f], true);
            Add("ffn_down.bias", [d], false);
            if (falcon)
            {
                Add("attn_qkv.weight", [q + 2 * kv, d], true);
                Add("attn_qkv.bias", [q + 2 * kv], false);
                if (c.FalconNewDecoder)
                {
                    Add("attn_norm_2.weight", [d], true);
                    Add("attn_norm_2.bias", [d], true);
                }
                if (!c.ParallelAttention)
                {
                    Add("ffn_norm.weight", [d], true);
                    Add("ffn_norm.bias", [d], true);
                }
            }
            else
            {
                Add("attn_q.weight", [q, d], true);
                Add("attn_k.weight", [kv, d], true);
                Add("attn_v.weight", [kv, d], true);
                Add("attn_q.bias", [q], false);
                Add("attn_k.bias", [kv], false);
                Add("attn_v.bias", [kv], false);
                Add("ffn_norm.weight", [d], true);
                Add("ffn_gate.weight", [f, d], true);
                Add("ffn_gate.bias", [f], false);
            }
        }
        return list;
    }

    /// <summary>
    /// Validates the configuration and checks every expected tensor's presence, shape and type; throws
    /// <see cref="InvalidModelFileException"/> naming the first offending tensor.
    /// </summary>
    public static void Validate(string path, ModelConfig config, IWeightSource source, Func<string, string?>? storedName = null)
    {
        string Describe(string name) => storedName?.Invoke(name) is { } stored && stored != name ? $"'{name}' ({stored})" : $"'{name}'";
        config.Validate(path);
        if (config.Dim != config.Heads * config.HeadDim && config.Architecture == ModelArchitecture.Falcon)
            throw new InvalidModelFileException(path, $"Falcon hidden size {config.Dim} is not heads {config.Heads} x head size {config.HeadDim}");
        foreach (var e in Expected(config))
        {
            if (!source.TryGetTensor(e.Name, out var t))
            {
                if (e.Required) throw new InvalidModelFileException(path, $"tensor {Describe(e.Name)} is missing");
                continue;
            }
            if (!SameShape(t.Shape, e.Shape))
                throw new InvalidModelFileException(path, $"tensor {Describe(e.Name)} has shape {t.ShapeText}, expected [{string.Join(", ", e.Shape)}]");
            if (TensorTypeInfo.IsQuantized(t.Type) && e.Shape.Length != 2)
                throw new InvalidModelFileException(path, $"tensor {Describe(e.Name)} is {t.Type}, which is only supported for matrices");
        }
    }

    public static bool SameShape(long[] a, long[] b)
    {
        if (a.Length != b.Length) return false;
        for (int i = 0; i < a.Length; i++) if (a[i] != b[i]) return false;
        return true;
    }

    /// <summary>Total number of weights (parameters) of the source's tensors.</summary>
    public static long ParameterCount(IWeightSource source)
    {
        long n = 0;
        foreach (var t in source.Tensors) n += t.ElementCount;
        return n;
    }
}
