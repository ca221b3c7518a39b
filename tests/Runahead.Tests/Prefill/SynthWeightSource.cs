using System.Runtime.InteropServices;
using Runahead.Formats;
using Runahead.Models;

namespace Runahead.Tests.Prefill;

/// <summary>
/// A small random Llama (or Falcon) held in memory under canonical tensor names, so strategy tests need no files.
/// Weights are drawn with a fixed seed and a spread large enough that greedy choices are well separated.
/// </summary>
internal sealed class SynthWeightSource : IWeightSource
{
    private readonly Dictionary<string, (TensorInfo Info, float[] Data, GCHandle Pin)> _tensors = new();
    private readonly List<TensorInfo> _list = new();

    public SynthWeightSource(ModelConfig config, int seed = 1234)
    {
        Config = config;
        var rng = new Random(seed);
        int dim = config.Dim, qDim = config.QDim, kvDim = config.KvDim, ffn = config.FfnDim;
        bool falcon = config.Architecture == ModelArchitecture.Falcon;
        Add("token_embd.weight", rng, 1.0f, config.VocabSize, dim);
        Add("output_norm.weight", rng, -1, dim);
        if (falcon) Add("output_norm.bias", rng, 0.1f, dim);
        if (!config.TiedEmbeddings) Add("output.weight", rng, 0.3f, config.VocabSize, dim);
        for (int l = 0; l < config.Layers; l++)
        {
            string p = $"blk.{l}.";
            Add(p + "attn_norm.weight", rng, -1, dim);
            if (falcon)
            {
                Add(p + "attn_norm.bias", rng, 0.1f, dim);
                Add(p + "attn_qkv.weight", rng, 0.3f, qDim + 2 * kvDim, dim);
            }
            else
            {
                Add(p + "ffn_norm.weight", rng, -1, dim);
                Add(p + "attn_q.weight", rng, 0.3f, qDim, dim);
                Add(p + "attn_k.weight", rng, 0.3f, kvDim, dim);
                Add(p + "attn_v.weight", rng, 0.3f, kvDim, dim);
                Add(p + "ffn_gate.weight", rng, 0.2f, ffn, dim);
            }
            Add(p + "attn_output.weight", rng, 0.2f, dim, qDim);
            Add(p + "ffn_up.weight", rng, 0.2f, ffn, dim);
            Add(p + "ffn_down.weight", rng, 0.15f, dim, ffn);
        }
    }

    public static ModelConfig TinyLlama(int layers = 3, int context = 256) => new()
    {
        Architecture = ModelArchitecture.Llama,
        Dim = 32, Layers = layers, Heads = 4, KvHeads = 2, HeadDim = 8, FfnDim = 48, VocabSize = 96,
        ContextLength = context, Rope = RopeStyle.NeoX, TiedEmbeddings = false,
    };

    public static Model LoadTiny(ModelConfig? config = null, int threads = 1) =>
        Model.Load(new SynthWeightSource(config ?? TinyLlama()), new ModelLoadOptions { Threads = threads, MaxChunkTokens = 16 });

    /// <summary>std &lt; 0: a norm weight near 1.</summary>
    private void Add(string name, Random rng, float std, params int[] shape)
    {
        long n = 1;
        foreach (var d in shape) n *= d;
        var data = new float[n];
        for (int i = 0; i < n; i++)
        {
            // Sum of uniforms: cheap, roughly normal.
            float u = (float)(rng.NextDouble() + rng.NextDouble() + rng.NextDouble() - 1.5) * 2f;
            data[i] = std < 0 ? 1f + 0.1f * u : std * u;
        }
        var info = new TensorInfo(name, TensorType.F32, Array.ConvertAll(shape, d => (long)d));
        _tensors[name] = (info, data, GCHandle.Alloc(data, GCHandleType.Pinned));
        _list.Add(info);
    }

    public string SourcePath => "synth:tiny";
    public string FormatName => "synth";
    public ModelConfig Config { get; }
    public IReadOnlyList<TensorInfo> Tensors => _list;

    public bool TryGetTensor(string name, out TensorInfo info)
    {
        if (_tensors.TryGetValue(name, out var t)) { info = t.Info; return true; }
        info = null!;
        return false;
    }

    public ReadOnlySpan<byte> GetTensorBytes(TensorInfo tensor) => MemoryMarshal.AsBytes(_tensors[tensor.Name].Data.AsSpan());

    public unsafe byte* GetTensorPointer(TensorInfo tensor) => (byte*)_tensors[tensor.Name].Pin.AddrOfPinnedObject();

    public void Dispose()
    {
        foreach (var t in _tensors.Values) if (t.Pin.IsAllocated) t.Pin.Free();
        _tensors.Clear();
    }
}
