using System.Diagnostics;
using System.Runtime.CompilerServices;
using Runahead.Models;
using Runahead.Prefill;
using Runahead.Text;

namespace Runahead.Generation;

/// <summary>
/// Prompt in, tokens out: prefill through an <see cref="IPrefillStrategy"/>, then one-token decode steps on this
/// process's model, each sampled and yielded as soon as it is known. One generation at a time per generator.
/// </summary>
public sealed class Generator
{
    private readonly IPrefillStrategy _prefill;
    private readonly SinglePrefill? _ownPrefill;
    private ForwardWorkspace? _decodeWorkspace;

    public Model Model { get; }
    public ITokenizer? Tokenizer { get; }

    /// <summary>Counts and timings of the current or last generation (updated as tokens are produced).</summary>
    public GenerationStats? LastStats { get; private set; }

    /// <param name="model">Model for decoding (and for prefill when <paramref name="prefill"/> is null).</param>
    /// <param name="tokenizer">Needed for text prompts and text pieces; without it pieces are empty.</param>
    /// <param name="prefill">Prefill strategy; null: <see cref="SinglePrefill"/> on <paramref name="model"/>.</param>
    public Generator(Model model, ITokenizer? tokenizer = null, IPrefillStrategy? prefill = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        Model = model;
        Tokenizer = tokenizer;
        _prefill = prefill ?? (_ownPrefill = new SinglePrefill(model));
    }

    /// <summary>Encodes <paramref name="prompt"/> (with BOS when the tokenizer asks for it) and generates.</summary>
    public IAsyncEnumerable<GeneratedToken> GenerateAsync(string prompt, GenerationOptions? options = null, CancellationToken ct = default)
    {
        if (Tokenizer == null) throw new RunaheadException("a text prompt needs a tokenizer; pass token ids instead");
        return GenerateAsync(Tokenizer.Encode(prompt, Tokenizer.AddBosByDefault), options, ct);
    }

    /// <summary>
    /// Generates after <paramref name="promptIds"/>. Stops at a stop id (not yielded), after
    /// <see cref="GenerationOptions.MaxNewTokens"/> tokens, when the context is full, or when
    /// <paramref name="ct"/> is cancelled (throws <see cref="OperationCanceledException"/>).
    /// </summary>
    public async IAsyncEnumerable<GeneratedToken> GenerateAsync(ReadOnlyMemory<int> promptIds, GenerationOptions? options = null,
        [EnumeratorCancellation] CancellationToken ct = default)
    {
        options ??= new GenerationOptions();
        if (options.MaxNewTokens < 0) throw new RunaheadException($"-n must be >= 0, got {options.MaxNewTokens}");
        var config = Model.Config;
        int n = promptIds.Length;
        ValidatePrompt(promptIds.Span);

        var sampler = new Sampler(config.VocabSize, options.Sampling);
        var stopIds = StopIds(options);
        var stats = new GenerationStats { PromptIds = promptIds.ToArray() };
        LastStats = stats;
        var history = new List<int>(n + Math.Min(options.MaxNewTokens, config.ContextLength));
        history.AddRange(stats.PromptIds);
        var streamer = Tokenizer != null ? new TextStreamer(Tokenizer, stats.PromptIds) : null;
        if (options.MaxNewTokens == 0) { stats.StopReason = StopReason.TokenBudget; yield break; }

        // Our own single prefill sizes the cache for the whole generation, so decoding never copies it.
        if (_ownPrefill != null) _ownPrefill.ReserveTokens = options.MaxNewTokens;
        var clock = Stopwatch.StartNew();
        PrefillResult prefill;
        try
        {
            prefill = await _prefill.PrefillAsync(promptIds, ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            stats.StopReason = StopReason.Cancelled;
            throw;
        }
        stats.PrefillTime = clock.Elapsed;
        stats.RankTimings = prefill.RankTimings;
        var cache = prefill.Cache;
        if (cache.Length != n)
            throw new InvalidOperationException($"the prefill strategy returned a cache of {cache.Length} tokens for a prompt of {n}");
        // Grown (if the strategy did not reserve room) only before the first decode step, outside the TTFT.
        int capacity = (int)Math.Min(config.ContextLength, (long)n + options.MaxNewTokens);
        _decodeWorkspace ??= Model.CreateWorkspace(1);
        var logits = prefill.Logits;
        var step = new int[1];
        TimeSpan stepStart = default;

        for (int index = 0; ; index++)
        {
            int next = sampler.Sample(logits, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(history));
            var known = clock.Elapsed;
            // Decode time counts only our own work: the consumer's time between tokens (printing) is left out.
            if (index == 0) stats.TimeToFirstToken = known;
            else { stats.DecodeTime += known - stepStart; stats.DecodeSteps++; }
            if (stopIds.Contains(next)) { stats.StopReason = StopReason.EndOfSequence; break; }

            history.Add(next);
            stats.GeneratedIds.Add(next);
            yield return new GeneratedToken(next, streamer?.Add(next) ?? "", index, known);
            stepStart = clock.Elapsed;

            if (index + 1 >= options.MaxNewTokens) { stats.StopReason = StopReason.TokenBudget; break; }
            if (index == 0) cache.EnsureCapacity(capacity);
            if (cache.Length >= cache.Capacity) { stats.StopReason = StopReason.ContextFull; break; }
            if (ct.IsCancellationRequested) { stats.StopReason = StopReason.Cancelled; ct.ThrowIfCancellationRequested(); }
            step[0] = next;
            Model.Forward(step, cache, logits, _decodeWorkspace);
        }
        var rest = streamer?.Flush();
        if (!string.IsNullOrEmpty(rest))
            yield return new GeneratedToken(-1, rest, stats.GeneratedTokens, clock.Elapsed);
    }

    /// <summary>Throws <see cref="RunaheadException"/> for an empty prompt, one longer than the context, or unknown ids.</summary>
    public void ValidatePrompt(ReadOnlySpan<int> promptIds)
    {
        var config = Model.Config;
        if (promptIds.Length == 0) throw new RunaheadException("the prompt is empty: at least one token is needed");
        if (promptIds.Length > config.ContextLength)
            throw new RunaheadException($"the prompt has {promptIds.Length} tokens, more than the model's context length of {config.ContextLength}");
        foreach (var id in promptIds)
            if ((uint)id >= (uint)config.VocabSize)
                throw new RunaheadException($"prompt token id {id} is outside the model's vocabulary of {config.VocabSize}");
    }

    private HashSet<int> StopIds(GenerationOptions options)
    {
        var set = new HashSet<int>();
        if (options.StopIds != null) { foreach (var id in options.StopIds) set.Add(id); return set; }
        int eos = Tokenizer?.EosId ?? Model.Config.EosId;
        if (eos >= 0) set.Add(eos);
        // llama2.c's run.c ends a story when the model starts the next one (BOS), as its training data delimits them.
        int bos = Tokenizer?.BosId ?? Model.Config.BosId;
        if (Model.FormatName == "llama2c" && bos >= 0) set.Add(bos);
        return set;
    }
}
