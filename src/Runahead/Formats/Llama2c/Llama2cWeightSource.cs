using Runahead.Models;

namespace Runahead.Formats.Llama2c;

/// <summary>
/// A llama2.c checkpoint in the legacy (v0) layout that run.c reads: seven int32 (dim, hidden_dim, n_layers, n_heads,
/// n_kv_heads, vocab_size, seq_len; a negative vocab_size means an unshared classifier), then F32 weights grouped by
/// kind across layers: embeddings, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final, the unused
/// freq_cis_real/imag tables (seq_len x head_size/2 each), and wcls when unshared.
/// </summary>
public sealed unsafe class Llama2cWeightSource : IWeightSource
{
    public const int HeaderBytes = 28;

    private readonly MappedFile _file;
    private readonly Dictionary<string, (TensorInfo info, long offset)> _byName = new(StringComparer.Ordinal);
    private readonly List<TensorInfo> _tensors = new();

    public string SourcePath => _file.Path;
    public string FormatName => "llama2c";
    public ModelConfig Config { get; }
    public IReadOnlyList<TensorInfo> Tensors => _tensors;

    private Llama2cWeightSource(MappedFile file)
    {
        _file = file;
        string path = file.Path;
        if (file.Length < HeaderBytes) throw new InvalidModelFileException(path, "file is too short to be a llama2.c checkpoint");
        var h = new ReadOnlySpan<int>(file.Base, 7);
        // Newer llama2.c exports (version 1+) start with the magic "ak42"; run.c only reads the legacy layout.
        if (h[0] == 0x616b3432)
            throw new InvalidModelFileException(path, $"llama2.c checkpoint version {h[1]} is not supported (only the legacy v0 layout that run.c reads is)");
        int dim = h[0], hidden = h[1], layers = h[2], heads = h[3], kvHeads = h[4], vocabRaw = h[5], seqLen = h[6];
        if (vocabRaw == int.MinValue) throw new InvalidModelFileException(path, "vocabulary size is out of range");
        int vocab = Math.Abs(vocabRaw);
        bool shared = vocabRaw > 0;
        if (heads <= 0 || dim <= 0 || dim % heads != 0)
            throw new InvalidModelFileException(path, $"header dim {dim} is not a positive multiple of head count {heads}");
        Config = ModelShapes.Llama(dim, layers, heads, kvHeads, hidden, vocab, seqLen, shared);
        Config.Validate(path);

        long d = dim, hs = dim / heads, kv = (long)kvHeads * hs, f = hidden, v = vocab;
        long offset = HeaderBytes;
        void Add(string name, long[] shape)
        {
            var info = new TensorInfo(name, TensorType.F32, shape);
            _byName.Add(name, (info, offset));
            _tensors.Add(info);
            offset += info.ByteSize;
        }
        void PerLayer(string suffix, long[] shape)
        {
            for (int i = 0; i < layers; i++) Add(ModelTensors.Layer(i, suffix), shape);
        }
        Add("token_embd.weight", [v, d]);
        PerLayer("attn_norm.weight", [d]);
        PerLayer("attn_q.weight", [d, d]);
        PerLayer("attn_k.weight", [kv, d]);
        PerLayer("attn_v.weight", [kv, d]);
        PerLayer("attn_output.weight", [d, d]);
        PerLayer("ffn_norm.weight", [d]);
        PerLayer("ffn_gate.weight", [f, d]); // w1
        PerLayer("ffn_down.weight", [d, f]); // w2
        PerLayer("ffn_up.weight", [f, d]);   // w3
        Add("output_norm.weight", [d]);
        offset += 2 * (long)seqLen * (hs / 2) * sizeof(float); // freq_cis_real and freq_cis_imag, unused since RoPE is computed
        if (!shared) Add("output.weight", [v, d]);
        if (offset != file.Length)
            throw new InvalidModelFileException(path, offset > file.Length
                ? $"file is truncated: the header implies {offset} bytes but the file has {file.Length}"
                : $"file has {file.Length - offset} bytes past the {offset} the header implies (not a v0 llama2.c checkpoint?)");
        ModelTensors.Validate(path, Config, this);
    }

    public static Llama2cWeightSource Open(string path)
    {
        var file = MappedFile.Open(path);
        try
        {
            return new Llama2cWeightSource(file);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    public bool TryGetTensor(string name, out TensorInfo info)
    {
        if (_byName.TryGetValue(name, out var e))
        {
            info = e.info;
            return true;
        }
        info = null!;
        return false;
    }

    private (TensorInfo info, long offset) Find(TensorInfo tensor) => _byName.TryGetValue(tensor.Name, out var e)
        ? e
        : throw new ArgumentException($"tensor '{tensor.Name}' is not in {SourcePath}", nameof(tensor));

    public ReadOnlySpan<byte> GetTensorBytes(TensorInfo tensor)
    {
        var (info, offset) = Find(tensor);
        if (info.ByteSize > int.MaxValue) throw new InvalidOperationException($"tensor '{info.Name}' is over 2 GiB; use GetTensorPointer");
        return _file.Span(offset, (int)info.ByteSize);
    }

    public byte* GetTensorPointer(TensorInfo tensor) => _file.Pointer(Find(tensor).offset);

    public void Dispose() => _file.Dispose();
}
