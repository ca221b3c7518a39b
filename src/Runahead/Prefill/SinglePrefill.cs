using Runahead.Generation;
using Runahead.Models;

namespace Runahead.Prefill;

/// <summary>
/// Prefill in this process: the prompt goes through <see cref="Model.Forward"/> in chunks of the workspace's size
/// (many tokens per GEMM), checking for cancellation between chunks. Not thread-safe (one workspace).
/// </summary>
public sealed class SinglePrefill : IPrefillStrategy
{
    private readonly Model _model;
    private ForwardWorkspace? _workspace;

    /// <param name="model">The model to run.</param>
    /// <param name="reserveTokens">Extra cache rows to allocate beyond the prompt (for the tokens decoding will add),
    /// capped by the context length.</param>
    /// <param name="chunkTokens">Tokens per chunk; 0: the model's <see cref="Model.MaxChunkTokens"/>.</param>
    public SinglePrefill(Model model, int reserveTokens = 0, int chunkTokens = 0)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (reserveTokens < 0) throw new ArgumentOutOfRangeException(nameof(reserveTokens));
        if (chunkTokens < 0) throw new ArgumentOutOfRangeException(nameof(chunkTokens));
        _model = model;
        ReserveTokens = reserveTokens;
        ChunkTokens = chunkTokens > 0 ? chunkTokens : model.MaxChunkTokens;
    }

    public int ChunkTokens { get; }

    /// <summary>Extra cache rows allocated beyond the prompt (capped by the context length).</summary>
    public int ReserveTokens
    {
        get => _reserveTokens;
        set => _reserveTokens = value >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(value));
    }
    private int _reserveTokens;

    /// <summary>Bytes of the workspace once created.</summary>
    public long WorkspaceBytes => _workspace?.Bytes ?? 0;

    public Task<PrefillResult> PrefillAsync(ReadOnlyMemory<int> promptIds, CancellationToken ct)
    {
        var config = _model.Config;
        int n = promptIds.Length;
        if (n == 0) throw new RunaheadException("the prompt is empty: at least one token is needed");
        if (n > config.ContextLength)
            throw new RunaheadException($"the prompt has {n} tokens, more than the model's context length of {config.ContextLength}");
        ct.ThrowIfCancellationRequested();
        _workspace ??= _model.CreateWorkspace(Math.Min(ChunkTokens, Math.Max(n, 1)));
        if (_workspace.MaxTokens < Math.Min(ChunkTokens, n)) _workspace = _model.CreateWorkspace(Math.Min(ChunkTokens, n));
        var cache = new KvCache(config, (int)Math.Min(config.ContextLength, (long)n + ReserveTokens));
        var logits = new float[config.VocabSize];
        var ids = promptIds.Span;
        for (int done = 0; done < n; done += _workspace.MaxTokens)
        {
            ct.ThrowIfCancellationRequested();
            int c = Math.Min(_workspace.MaxTokens, n - done);
            // Only the last chunk's last row needs logits; earlier chunks write theirs to the same buffer.
            _model.Forward(ids.Slice(done, c), cache, logits, _workspace);
        }
        return Task.FromResult(new PrefillResult(logits, cache));
    }
}
