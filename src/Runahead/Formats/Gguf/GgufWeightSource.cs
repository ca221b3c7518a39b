using Runahead.Models;

namespace Runahead.Formats.Gguf;

/// <summary>A GGUF file (arch "llama" or "falcon") as a weight source; tensors are used in place from the map.</summary>
public sealed unsafe class GgufWeightSource : IWeightSource
{
    private readonly Dictionary<string, (GgufTensor stored, TensorInfo info)> _byName = new(StringComparer.Ordinal);
    private readonly List<TensorInfo> _tensors;

    public GgufFile File { get; }
    public string SourcePath => File.Path;
    public string FormatName => "gguf";
    public ModelConfig Config { get; }
    public IReadOnlyList<TensorInfo> Tensors => _tensors;

    private GgufWeightSource(GgufFile file)
    {
        File = file;
        _tensors = new List<TensorInfo>(file.Tensors.Count);
        bool swapNorms = FalconNormNames.AreSwapped(file.GetString("general.architecture"), file.TryGetTensor("blk.0.attn_norm_2.weight", out _));
        foreach (var t in file.Tensors)
        {
            string name = swapNorms ? FalconNormNames.Swap(t.Name) : t.Name;
            var info = name == t.Name ? t.Info : new TensorInfo(name, t.Type, t.Shape);
            _byName[name] = (t, info);
            _tensors.Add(info);
        }
        Config = ReadConfig(file);
        ModelTensors.Validate(file.Path, Config, this);
    }

    public static GgufWeightSource Open(string path)
    {
        var file = GgufFile.Open(path);
        try
        {
            return new GgufWeightSource(file);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>Reads the model configuration from GGUF metadata (llama.cpp's key names).</summary>
    public static ModelConfig ReadConfig(GgufFile f)
    {
        string path = f.Path;
        string arch = f.GetString("general.architecture")
            ?? throw new InvalidModelFileException(path, "metadata 'general.architecture' is missing");
        var architecture = arch switch
        {
            "llama" => ModelArchitecture.Llama,
            "falcon" => ModelArchitecture.Falcon,
            _ => throw new InvalidModelFileException(path, $"architecture '{arch}' is not supported (llama and falcon are)"),
        };
        int Int(string key, long fallback, bool required)
        {
            long v = required ? f.RequireInt(key) : f.GetInt(key, fallback);
            if (v < int.MinValue || v > int.MaxValue) throw new InvalidModelFileException(path, $"metadata '{key}' = {v} is out of range");
            return (int)v;
        }
        // llama.cpp writes 0xFFFFFFFF (or -1) for "no such token".
        int TokenId(string key, int fallback)
        {
            long v = f.GetInt(key, fallback);
            if (v is -1 or 0xFFFFFFFF) return -1;
            if (v < 0 || v > int.MaxValue) throw new InvalidModelFileException(path, $"metadata '{key}' = {v} is out of range");
            return (int)v;
        }
        int dim = Int($"{arch}.embedding_length", 0, true);
        int layers = Int($"{arch}.block_count", 0, true);
        int heads = Int($"{arch}.attention.head_count", 0, true);
        int kvHeads = Int($"{arch}.attention.head_count_kv", heads, false);
        if (heads <= 0) throw new InvalidModelFileException(path, $"metadata '{arch}.attention.head_count' = {heads} is out of range");
        int headDim = Int($"{arch}.attention.key_length", dim / heads, false);
        int ropeDims = Int($"{arch}.rope.dimension_count", headDim, false);
        if (ropeDims != headDim)
            throw new InvalidModelFileException(path, $"rotary dimension count {ropeDims} differs from head size {headDim} (partial RoPE is not supported)");

        // These change the computation; running the model without them would give plausible but wrong output.
        string? scaling = f.GetString($"{arch}.rope.scaling.type");
        if (scaling is not (null or "none"))
            throw new InvalidModelFileException(path, $"RoPE scaling '{scaling}' is not supported");
        if (f.TryGetTensor("rope_freqs.weight", out _))
            throw new InvalidModelFileException(path, "RoPE frequency factors (rope_freqs.weight, Llama 3.1 style scaling) are not supported");
        if (f.GetInt($"{arch}.expert_count", 0) > 0)
            throw new InvalidModelFileException(path, "mixture-of-experts models are not supported");

        f.TryGetTensor("token_embd.weight", out var embd);
        f.TryGetTensor("blk.0.ffn_up.weight", out var up);
        int vocab = Int($"{arch}.vocab_size", embd?.Shape[0] ?? 0, false);
        int ffn = Int($"{arch}.feed_forward_length", up?.Shape[0] ?? 0, false);
        double epsDefault = 1e-5;
        double eps = architecture == ModelArchitecture.Llama
            ? f.GetFloat($"{arch}.attention.layer_norm_rms_epsilon", epsDefault)
            : f.GetFloat($"{arch}.attention.layer_norm_epsilon", epsDefault);
        bool falcon = architecture == ModelArchitecture.Falcon;
        var config = new ModelConfig
        {
            Architecture = architecture,
            Dim = dim,
            Layers = layers,
            Heads = heads,
            KvHeads = kvHeads,
            HeadDim = headDim,
            FfnDim = ffn,
            VocabSize = vocab,
            ContextLength = Int($"{arch}.context_length", 0, true),
            NormEps = (float)eps,
            RopeTheta = (float)f.GetFloat($"{arch}.rope.freq_base", 10000),
            Rope = falcon ? RopeStyle.NeoX : RopeStyle.Interleaved,
            TiedEmbeddings = !f.TryGetTensor("output.weight", out _),
            // llama.cpp's Falcon is always parallel; our writer marks the sequential variant by its ffn_norm.
            ParallelAttention = falcon && !f.TryGetTensor("blk.0.ffn_norm.weight", out _),
            FalconNewDecoder = falcon && f.TryGetTensor("blk.0.attn_norm_2.weight", out _),
            BosId = TokenId("tokenizer.ggml.bos_token_id", 1),
            EosId = TokenId("tokenizer.ggml.eos_token_id", 2),
        };
        return config;
    }

    public bool TryGetTensor(string name, out TensorInfo info)
    {
        if (_byName.TryGetValue(name, out var t))
        {
            info = t.info;
            return true;
        }
        info = null!;
        return false;
    }

    private GgufTensor Find(TensorInfo tensor) => _byName.TryGetValue(tensor.Name, out var t)
        ? t.stored
        : throw new ArgumentException($"tensor '{tensor.Name}' is not in {SourcePath}", nameof(tensor));

    public ReadOnlySpan<byte> GetTensorBytes(TensorInfo tensor) => File.GetBytes(Find(tensor));

    public byte* GetTensorPointer(TensorInfo tensor) => File.GetPointer(Find(tensor));

    public void Dispose() => File.Dispose();
}
