using Runahead.Formats;
using Runahead.Formats.Gguf;
using Runahead.Numerics;

namespace Runahead.Models;

/// <summary>
/// A decoder-only model (Llama or Falcon) ready to run: embeddings, layers addressable one by one (the seam the
/// parallel prefill strategies use), final norm and LM head. <see cref="Forward"/> runs whole steps through a
/// <see cref="KvCache"/>: prefill is the many-token case, decode the one-token case of the same code.
/// </summary>
public sealed class Model : IDisposable
{
    private readonly IWeightSource _source;
    private readonly TensorInfo _embedding;
    private readonly int _embeddingRowBytes;
    private readonly NormWeights _outputNorm;
    private readonly Linear _lmHead;
    private readonly DecoderLayer[] _layers;
    private readonly bool _ownsPool;
    private readonly bool _ownsSource;
    private readonly bool _releaseEmbeddingPages;
    private readonly MappedPanels? _sharedPanels;

    public ModelConfig Config { get; }
    public ComputePool Pool { get; }
    public IReadOnlyList<DecoderLayer> Layers => _layers;

    /// <summary>What <see cref="ModelLoadOptions.SharedWeights"/> did; null when it was off.</summary>
    public SharedWeightsStatus? SharedWeights { get; }

    /// <summary>Default chunk size of workspaces made by callers that do not choose one.</summary>
    public int MaxChunkTokens { get; }

    /// <summary>The weight source's path (file or folder) and format.</summary>
    public string SourcePath => _source.SourcePath;
    public string FormatName => _source.FormatName;

    private Model(IWeightSource source, ModelConfig config, ComputePool pool, bool ownsPool, bool ownsSource, int maxChunk,
        TensorInfo embedding, NormWeights outputNorm, Linear lmHead, DecoderLayer[] layers, MappedPanels? sharedPanels,
        SharedWeightsStatus? sharedWeights)
    {
        _sharedPanels = sharedPanels;
        SharedWeights = sharedWeights;
        _source = source;
        Config = config;
        Pool = pool;
        _ownsPool = ownsPool;
        _ownsSource = ownsSource;
        MaxChunkTokens = maxChunk;
        _embedding = embedding;
        _embeddingRowBytes = (int)TensorTypeInfo.ByteSize(embedding.Type, config.Dim);
        // GGUF tensors are file-backed mapped pages (see MappedPages); other sources may hand out heap buffers.
        _releaseEmbeddingPages = source is GgufWeightSource;
        _outputNorm = outputNorm;
        _lmHead = lmHead;
        _layers = layers;
    }

    /// <summary>
    /// Prepares every weight of <paramref name="source"/>. The model reads embedding rows from the source's
    /// (memory-mapped) bytes, so the source must stay open; with <see cref="ModelLoadOptions.DisposeSource"/> the
    /// model disposes it.
    /// </summary>
    public static Model Load(IWeightSource source, ModelLoadOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        options ??= new ModelLoadOptions();
        if (options.MaxChunkTokens < 1) throw new RunaheadException($"max chunk tokens must be >= 1, got {options.MaxChunkTokens}");
        var config = source.Config;
        if (options.ContextLength is int ctx) config = config with { ContextLength = ctx };
        config.Validate(source.SourcePath);
        var reader = new WeightReader(source);

        var embedding = reader.Require("token_embd.weight", config.VocabSize, config.Dim);
        if (TensorTypeInfo.ByteSize(embedding.Type, config.Dim) < 0)
            throw new InvalidModelFileException(source.SourcePath, $"token_embd.weight: rows of {config.Dim} are not whole {embedding.Type} blocks");
        bool falcon = config.Architecture == ModelArchitecture.Falcon;
        var outputNorm = new NormWeights(reader.Vector("output_norm.weight", config.Dim),
            reader.OptionalVector("output_norm.bias", config.Dim), falcon, config.NormEps);
        var pool = options.Pool ?? new ComputePool(Math.Max(1, options.Threads));
        MappedPanels? shared = null;
        try
        {
            (Linear LmHead, DecoderLayer[] Layers) Prepare(WeightReader r)
            {
                // Tied embeddings: the file has no output.weight and the LM head is the embedding matrix.
                var head = r.Has("output.weight")
                    ? r.Linear("output", config.VocabSize, config.Dim)
                    : new Linear(r.Matrix("token_embd.weight", config.VocabSize, config.Dim), null);
                var decoderLayers = new DecoderLayer[config.Layers];
                for (int l = 0; l < decoderLayers.Length; l++) decoderLayers[l] = DecoderLayer.Load(l, config, r, pool, options.GroupProjections);
                return (head, decoderLayers);
            }

            (Linear LmHead, DecoderLayer[] Layers) prepared;
            SharedWeightsStatus? status = null;
            if (options.SharedWeights)
            {
                var outcome = PackedWeightCache.Load(source, options.SharedWeightsFolder ?? PackedWeightCache.DefaultFolder(),
                    options.SharedWeightsLockTimeout, Prepare);
                prepared = outcome.Value;
                shared = outcome.Mapping;
                status = outcome.Status;
            }
            else prepared = Prepare(reader);
            // Everything the model reads from the file from now on is embedding rows, read (and given back) per token.
            // The pages still mapped are the header (metadata, tokenizer tables), the norm vectors and the large
            // folios their small reads mapped: copied already, and read again from the file if ever needed.
            if (source is GgufWeightSource gguf) ReleaseFilePages(gguf.File);
            return new Model(source, config, pool, options.Pool == null, options.DisposeSource, options.MaxChunkTokens,
                embedding, outputNorm, prepared.LmHead, prepared.Layers, shared, status);
        }
        catch
        {
            shared?.Dispose();
            if (options.Pool == null) pool.Dispose();
            throw;
        }
    }

    private static unsafe void ReleaseFilePages(GgufFile file) => MappedPages.Release(file.Base, file.FileSize);

    /// <summary>Opens a model file or Hugging Face folder (any format <see cref="WeightSources.Open"/> reads) and loads it.</summary>
    public static Model Load(string path, ModelLoadOptions? options = null)
    {
        var source = WeightSources.Open(path);
        try
        {
            return Load(source, (options ?? new ModelLoadOptions()) with { DisposeSource = true });
        }
        catch
        {
            source.Dispose();
            throw;
        }
    }

    /// <summary>
    /// How this model's BF16 weights run: "kernel" (packed in pairs for the generated vdpbf16ps kernel), "widening"
    /// (widened to F32 for the F32 kernel), "mixed" (both; a packed-weight cache written by another decision), or
    /// "none" (no BF16 linear weights). See <see cref="Numerics.Jit.Bf16Dot"/> for why.
    /// </summary>
    public string Bf16Path
    {
        get
        {
            int kernel = 0, widening = 0;
            void Count(Linear l)
            {
                if (l.Weight.PanelType == Numerics.PanelType.BF16Pairs) kernel++;
                else if (l.Weight.PanelType == Numerics.PanelType.BF16) widening++;
            }
            foreach (var layer in _layers)
                foreach (var l in layer.Linears) Count(l);
            Count(_lmHead);
            return kernel > 0 ? widening > 0 ? "mixed" : "kernel" : widening > 0 ? "widening" : "none";
        }
    }

    /// <summary>Why BF16 weights packed in this process use the kernel or widen ("on: measured 1.95x widening", ...).</summary>
    public static string Bf16Decision => Numerics.Jit.Bf16Dot.Status;

    /// <summary>Bytes of weights prepared for compute (the embedding table stays in the mapped file, see <see cref="MappedEmbeddingBytes"/>).</summary>
    public long WeightBytes
    {
        get
        {
            long b = _outputNorm.Bytes + _lmHead.Bytes;
            foreach (var l in _layers) b += l.WeightBytes;
            return b;
        }
    }

    /// <summary>
    /// Bytes of all tensors in the (memory-mapped) source. Pages read while preparing weights count in the process's
    /// resident set until the kernel drops them, so peak RSS can exceed the prepared weights by up to this much.
    /// </summary>
    public long SourceTensorBytes
    {
        get
        {
            long b = 0;
            foreach (var t in _source.Tensors) b += Math.Max(0, t.ByteSize);
            return b;
        }
    }

    /// <summary>Bytes of the embedding table read from the memory-mapped source.</summary>
    public long MappedEmbeddingBytes => _embedding.ByteSize;

    /// <summary>Scratch for chunks of up to <paramref name="maxTokens"/> tokens (defaults to <see cref="MaxChunkTokens"/>).</summary>
    public ForwardWorkspace CreateWorkspace(int maxTokens = 0) =>
        new(Config, maxTokens > 0 ? maxTokens : MaxChunkTokens, _layers.Length > 0 && _layers[0].FusedQkv, _layers.Length == 0 || _layers[0].Gated);

    /// <summary>hidden [ids.Length, Dim] = embedding rows of the ids.</summary>
    public unsafe void Embed(ReadOnlySpan<int> ids, Span<float> hidden)
    {
        int dim = Config.Dim;
        if (hidden.Length < ids.Length * dim) throw new ArgumentException($"hidden holds {hidden.Length} floats, needs {ids.Length * dim}", nameof(hidden));
        var table = _source.GetTensorBytes(_embedding);
        byte* tableStart = _releaseEmbeddingPages ? _source.GetTensorPointer(_embedding) : null;
        for (int t = 0; t < ids.Length; t++)
        {
            int id = ids[t];
            if ((uint)id >= (uint)Config.VocabSize)
                throw new RunaheadException($"token id {id} is outside the model's vocabulary of {Config.VocabSize}");
            long offset = (long)id * _embeddingRowBytes;
            DType.ToFloat32(table.Slice((int)offset, _embeddingRowBytes), _embedding.Type, hidden.Slice(t * dim, dim));
            // A row read maps whole large folios of the file: over a long prompt of random ids that would make most of
            // the table resident, a second copy of it beside a tied LM head's packed weights. Releasing the pages right
            // after the copy bounds that to a few MiB, for about a microsecond per token.
            if (tableStart != null) MappedPages.ReleaseAround(tableStart + offset, _embeddingRowBytes, tableStart, _embedding.ByteSize);
        }
    }

    /// <summary>logits [rows, VocabSize] = LM head of the final norm of hidden rows.</summary>
    public void Logits(ReadOnlySpan<float> hiddenRows, int rows, Span<float> logits, ForwardWorkspace ws)
    {
        int dim = Config.Dim, vocab = Config.VocabSize;
        if (hiddenRows.Length < rows * dim) throw new ArgumentException($"hidden holds {hiddenRows.Length} floats, needs {rows * dim}", nameof(hiddenRows));
        if (logits.Length < (long)rows * vocab) throw new ArgumentException($"logits holds {logits.Length} floats, needs {(long)rows * vocab}", nameof(logits));
        for (int start = 0; start < rows; start += ws.MaxTokens)
        {
            int n = Math.Min(ws.MaxTokens, rows - start);
            var normed = ws.Normed.AsSpan(0, n * dim);
            _outputNorm.Apply(hiddenRows.Slice(start * dim, n * dim), normed, n, Pool);
            _lmHead.Forward(normed, n, logits.Slice(start * vocab, n * vocab), Pool);
        }
    }

    /// <summary>
    /// Runs all layers for the tokens at positions [cache.Length, cache.Length + ids.Length), appends their keys and
    /// values to the cache, and writes the logits of the last token (or of every token with
    /// <paramref name="allLogits"/>: [ids.Length, VocabSize]). Chunks of ws.MaxTokens tokens go through each GEMM.
    /// </summary>
    public void Forward(ReadOnlySpan<int> ids, KvCache cache, Span<float> logits, ForwardWorkspace ws, bool allLogits = false)
    {
        ArgumentNullException.ThrowIfNull(cache);
        ArgumentNullException.ThrowIfNull(ws);
        int n = ids.Length, dim = Config.Dim, vocab = Config.VocabSize, kvDim = Config.KvDim;
        if (n == 0) throw new ArgumentException("no tokens to run", nameof(ids));
        if (cache.Config.Layers != Config.Layers || cache.Config.KvDim != kvDim)
            throw new ArgumentException("the KV cache was made for another model shape", nameof(cache));
        long needLogits = allLogits ? (long)n * vocab : vocab;
        if (logits.Length < needLogits) throw new ArgumentException($"logits holds {logits.Length} floats, needs {needLogits}", nameof(logits));
        int start = cache.Length;
        if (start + n > Config.ContextLength)
            throw new RunaheadException($"{start + n} tokens exceed the model's context length of {Config.ContextLength}");
        if (start + n > cache.Capacity)
            throw new RunaheadException($"{start + n} tokens exceed the KV cache capacity of {cache.Capacity}");

        var hiddenAll = ws.Hidden;
        for (int done = 0; done < n; done += ws.MaxTokens)
        {
            int c = Math.Min(ws.MaxTokens, n - done);
            int pos = start + done;
            var hidden = hiddenAll.AsSpan(0, c * dim);
            Embed(ids.Slice(done, c), hidden);
            var q = ws.Q.AsSpan(0, c * Config.QDim);
            for (int l = 0; l < _layers.Length; l++)
            {
                var layer = _layers[l];
                layer.ComputeQkv(hidden, c, pos, q, cache.Keys(l, pos, c), cache.Values(l, pos, c), ws);
                layer.Finish(hidden, c, q, cache.Keys(l, 0, pos + c), cache.Values(l, 0, pos + c), pos, pos + c, ws);
            }
            cache.SetLength(pos + c);
            if (allLogits) Logits(hidden, c, logits.Slice(done * vocab, c * vocab), ws);
            else if (done + c == n) Logits(hidden.Slice((c - 1) * dim, dim), 1, logits[..vocab], ws);
        }
    }

    public void Dispose()
    {
        if (_ownsPool) Pool.Dispose();
        _sharedPanels?.Dispose();
        if (_ownsSource) _source.Dispose();
    }
}
