using System.Runtime.InteropServices;
using Runahead.Formats;
using Runahead.Models;

namespace Runahead.Tests.Models;

/// <summary>An in-memory F32 weight source with random weights under canonical names, for shape-generic tests.</summary>
internal sealed class RandomWeightSource : IWeightSource
{
    private readonly Dictionary<string, (TensorInfo Info, byte[] Bytes)> _tensors = new();
    private readonly List<TensorInfo> _list = new();

    public string SourcePath => "random-test-model";
    public string FormatName => "memory";
    public ModelConfig Config { get; }
    public IReadOnlyList<TensorInfo> Tensors => _list;

    public RandomWeightSource(ModelConfig config, int seed = 1, bool fusedQkv = false, bool secondNorm = false, bool biases = false)
    {
        Config = config;
        var rng = new Random(seed);
        bool falcon = config.Architecture == ModelArchitecture.Falcon;
        void Add(string name, float std, float mean, params long[] shape)
        {
            long n = 1; foreach (var d in shape) n *= d;
            var bytes = GC.AllocateArray<byte>(checked((int)n * 4), pinned: true);
            var f = MemoryMarshal.Cast<byte, float>(bytes.AsSpan());
            for (int i = 0; i < f.Length; i++) f[i] = mean + std * (float)(rng.NextDouble() * 2 - 1);
            var info = new TensorInfo(name, TensorType.F32, shape);
            _tensors[name] = (info, bytes);
            _list.Add(info);
        }
        void Norm(string name)
        {
            Add(name + ".weight", 0.2f, 1f, config.Dim);
            if (falcon) Add(name + ".bias", 0.1f, 0f, config.Dim);
        }
        void Lin(string name, int o, int i)
        {
            Add(name + ".weight", 1.7f / MathF.Sqrt(i), 0, o, i);
            if (biases) Add(name + ".bias", 0.05f, 0, o);
        }
        Add("token_embd.weight", 1f, 0, config.VocabSize, config.Dim);
        Norm("output_norm");
        if (!config.TiedEmbeddings) Lin("output", config.VocabSize, config.Dim);
        for (int l = 0; l < config.Layers; l++)
        {
            string p = $"blk.{l}.";
            Norm(p + "attn_norm");
            if (secondNorm) Norm(p + "attn_norm_2");
            if (!(falcon && config.ParallelAttention)) Norm(p + "ffn_norm");
            if (fusedQkv) Lin(p + "attn_qkv", config.QDim + 2 * config.KvDim, config.Dim);
            else
            {
                Lin(p + "attn_q", config.QDim, config.Dim);
                Lin(p + "attn_k", config.KvDim, config.Dim);
                Lin(p + "attn_v", config.KvDim, config.Dim);
            }
            Lin(p + "attn_output", config.Dim, config.QDim);
            if (!falcon) Lin(p + "ffn_gate", config.FfnDim, config.Dim);
            Lin(p + "ffn_up", config.FfnDim, config.Dim);
            Lin(p + "ffn_down", config.Dim, config.FfnDim);
        }
    }

    public static ModelConfig LlamaConfig => new()
    {
        Architecture = ModelArchitecture.Llama, Dim = 32, Layers = 2, Heads = 4, KvHeads = 2, HeadDim = 8, FfnDim = 48,
        VocabSize = 40, ContextLength = 64, Rope = RopeStyle.Interleaved,
    };

    public static ModelConfig FalconConfig(bool newDecoder) => new()
    {
        Architecture = ModelArchitecture.Falcon, Dim = 32, Layers = 2, Heads = 4, KvHeads = newDecoder ? 2 : 1, HeadDim = 8,
        FfnDim = 64, VocabSize = 40, ContextLength = 64, Rope = RopeStyle.NeoX, TiedEmbeddings = true,
        ParallelAttention = true, FalconNewDecoder = newDecoder,
    };

    /// <summary>The three architectures the engine supports, as (name, source factory).</summary>
    public static RandomWeightSource Create(string kind) => kind switch
    {
        "llama" => new RandomWeightSource(LlamaConfig),
        "llama-bias" => new RandomWeightSource(LlamaConfig with { TiedEmbeddings = true }, biases: true),
        "falcon-7b" => new RandomWeightSource(FalconConfig(false), fusedQkv: true),
        "falcon-new" => new RandomWeightSource(FalconConfig(true), fusedQkv: true, secondNorm: true),
        "falcon-seq" => new RandomWeightSource(FalconConfig(false) with { ParallelAttention = false }, fusedQkv: true),
        _ => throw new ArgumentException(kind),
    };

    public bool TryGetTensor(string name, out TensorInfo info)
    {
        if (_tensors.TryGetValue(name, out var t)) { info = t.Info; return true; }
        info = null!;
        return false;
    }

    public ReadOnlySpan<byte> GetTensorBytes(TensorInfo tensor) => _tensors[tensor.Name].Bytes;

    public unsafe byte* GetTensorPointer(TensorInfo tensor) =>
        (byte*)Marshal.UnsafeAddrOfPinnedArrayElement(_tensors[tensor.Name].Bytes, 0);

    /// <summary>Replaces a tensor's shape (for bad-input tests).</summary>
    public void Reshape(string name, params long[] shape)
    {
        var (info, bytes) = _tensors[name];
        var changed = info with { Shape = shape };
        _tensors[name] = (changed, bytes);
        _list[_list.IndexOf(info)] = changed;
    }

    public void Remove(string name)
    {
        _list.Remove(_tensors[name].Info);
        _tensors.Remove(name);
    }

    public void Dispose() { }
}
