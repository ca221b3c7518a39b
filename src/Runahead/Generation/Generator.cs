using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Runahead.Models;
using Runahead.Prefill;
using Runahead.Text;

namespace Runahead.Generation;

/// <summary>
/// Prompt in, tokens out, each sampled and yielded as soon as it is known. Either in this process (prefill through an
/// <see cref="IPrefillStrategy"/>, then one-token decode steps on this process's model) or over
/// <see cref="ParallelRanks"/> (the ranks prefill, the last one decodes and streams the ids here; this process holds
/// no weights). One generation at a time per generator.
/// </summary>
public sealed class Generator
{
    private readonly IPrefillStrategy? _prefill;
    private readonly SinglePrefill? _ownPrefill;
    private readonly ParallelRanks? _ranks;
    private readonly string _formatName;
    private ForwardWorkspace? _decodeWorkspace;

    /// <summary>The model this process decodes with; null when the ranks decode (<see cref="Ranks"/>).</summary>
    public Model? Model { get; }

    /// <summary>The ranks that prefill and decode; null when this process does.</summary>
    public ParallelRanks? Ranks { get; }

    public ModelConfig Config { get; }
    public ITokenizer? Tokenizer { get; }

    /// <summary>False on MPI ranks other than 0: they take part in each generation but yield no tokens.</summary>
    public bool IsClient => _ranks?.IsClient ?? true;

    /// <summary>Counts and timings of the current or last generation (updated as tokens are produced).</summary>
    public GenerationStats? LastStats { get; private set; }

    /// <param name="model">Model for decoding (and for prefill when <paramref name="prefill"/> is null).</param>
    /// <param name="tokenizer">Needed for text prompts and text pieces; without it pieces are empty.</param>
    /// <param name="prefill">Prefill strategy; null: <see cref="SinglePrefill"/> on <paramref name="model"/>.</param>
    public Generator(Model model, ITokenizer? tokenizer = null, IPrefillStrategy? prefill = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        Model = model;
        Config = model.Config;
        _formatName = model.FormatName;
        Tokenizer = tokenizer;
        _prefill = prefill ?? (_ownPrefill = new SinglePrefill(model));
    }

    /// <param name="ranks">Started ranks that loaded the model this <paramref name="config"/> describes.</param>
    /// <param name="config">The model's configuration (context length as the ranks use it).</param>
    /// <param name="formatName">"gguf", "safetensors" or "llama2c" (llama2.c checkpoints also stop at BOS).</param>
    public Generator(ParallelRanks ranks, ModelConfig config, string formatName, ITokenizer? tokenizer = null)
    {
        ArgumentNullException.ThrowIfNull(ranks);
        ArgumentNullException.ThrowIfNull(config);
        _ranks = ranks;
        Ranks = ranks;
        Config = config;
        _formatName = formatName ?? "";
        Tokenizer = tokenizer;
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
        var config = Config;
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
        if (_ranks != null)
        {
            await foreach (var token in GenerateOnRanksAsync(_ranks, stats, options, stopIds, streamer, ct).ConfigureAwait(false))
                yield return token;
            yield break;
        }
        var model = Model!;
        var prefillStrategy = _prefill!;

        // Our own single prefill sizes the cache for the whole generation, so decoding never copies it.
        if (_ownPrefill != null) _ownPrefill.ReserveTokens = options.MaxNewTokens;
        var clock = Stopwatch.StartNew();
        PrefillResult prefill;
        try
        {
            prefill = await prefillStrategy.PrefillAsync(promptIds, ct).ConfigureAwait(false);
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
        _decodeWorkspace ??= model.CreateWorkspace(1);
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
            model.Forward(step, cache, logits, _decodeWorkspace);
        }
        var rest = streamer?.Flush();
        if (!string.IsNullOrEmpty(rest))
            yield return new GeneratedToken(-1, rest, stats.GeneratedTokens, clock.Elapsed);
    }

    /// <summary>
    /// The ranks prefill and the last one decodes; its ids arrive through a channel (pushed on the host's thread) and
    /// are yielded here. Cancelling, or the caller leaving the loop early, cancels the job: that stops the ranks'
    /// decoding and tears them down, and the next generation starts them again.
    /// </summary>
    private async IAsyncEnumerable<GeneratedToken> GenerateOnRanksAsync(ParallelRanks ranks, GenerationStats stats, GenerationOptions options,
        HashSet<int> stopIds, TextStreamer? streamer, [EnumeratorCancellation] CancellationToken ct)
    {
        int startsBefore = ranks.Starts;
        PrefillClient client;
        try
        {
            client = await ranks.ClientAsync(ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            stats.StopReason = StopReason.Cancelled;
            throw;
        }
        // Ranks torn down by an earlier cancelled job start again here, before the TTFT clock.
        stats.RankStartup = ranks.Starts != startsBefore ? ranks.StartupTime : TimeSpan.Zero;

        var arrived = Channel.CreateUnbounded<(int Id, TimeSpan Known)>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        using var job = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var clock = Stopwatch.StartNew();
        var stopList = new int[stopIds.Count];
        stopIds.CopyTo(stopList);
        var opts = ranks.Options;
        var run = RunJobAsync(client, stats.PromptIds, opts, options, stopList, id => arrived.Writer.TryWrite((id, clock.Elapsed)), arrived.Writer, job.Token);

        bool finished = false;
        try
        {
            int index = 0;
            while (await WaitForTokenAsync(arrived.Reader, stats, ct).ConfigureAwait(false))
            {
                while (arrived.Reader.TryRead(out var token))
                {
                    if (index == 0) { stats.TimeToFirstToken = token.Known; stats.PrefillTime = token.Known; }
                    if (stopIds.Contains(token.Id)) { stats.StopReason = StopReason.EndOfSequence; break; }
                    stats.GeneratedIds.Add(token.Id);
                    yield return new GeneratedToken(token.Id, streamer?.Add(token.Id) ?? "", index++, token.Known);
                    if (ct.IsCancellationRequested) { stats.StopReason = StopReason.Cancelled; ct.ThrowIfCancellationRequested(); }
                }
                if (stats.StopReason == StopReason.EndOfSequence) break;
            }
            PrefillRun? result;
            try
            {
                result = await run.ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                stats.StopReason = StopReason.Cancelled;
                throw;
            }
            finished = true;
            if (result != null)
            {
                stats.Parallel = result;
                // The client's own clock starts when the job goes to the ranks, after the partition is planned (a KVR-S
                // search is planning, as in the paper, not prefill), as bench ttft measures it.
                stats.TimeToFirstToken = stats.PrefillTime = TimeSpan.FromMilliseconds(result.TtftMs);
                stats.RankTimings = ToRankTimings(result);
                stats.DecodeTime = TimeSpan.FromMilliseconds(result.DecodeMs);
                stats.DecodeSteps = Math.Max(0, result.Generated.Length - 1);
                if (stats.StopReason == StopReason.None)
                    stats.StopReason = stats.GeneratedTokens >= options.MaxNewTokens ? StopReason.TokenBudget : StopReason.ContextFull;
            }
        }
        finally
        {
            if (!finished)
            {
                // Cancelled, failed, or the caller stopped enumerating: stop the ranks rather than let them decode on.
                bool wasRunning = !run.IsCompleted;
                job.Cancel();
                Exception? error = null;
                try
                {
                    await run.ConfigureAwait(false);
                }
                catch (Exception e) when (e is OperationCanceledException or RunaheadException)
                {
                    // Already on its way to the caller (or the caller left); here it only tells whether the ranks broke.
                    error = e;
                }
                // A job cancelled mid-run, or a failed rank, leaves the ranks unusable; an error found before the job
                // reached them (a partition that does not fit, say) does not.
                if (wasRunning || error is OperationCanceledException or Distributed.RankFailedException) ranks.Discard(client);
            }
        }
        var rest = streamer?.Flush();
        if (!string.IsNullOrEmpty(rest))
            yield return new GeneratedToken(-1, rest, stats.GeneratedTokens, clock.Elapsed);
    }

    private static async Task<bool> WaitForTokenAsync(ChannelReader<(int Id, TimeSpan Known)> reader, GenerationStats stats, CancellationToken ct)
    {
        try
        {
            return await reader.WaitToReadAsync(ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            stats.StopReason = StopReason.Cancelled;
            throw;
        }
    }

    private static async Task<PrefillRun?> RunJobAsync(PrefillClient client, int[] promptIds, ParallelGenerationOptions parallel, GenerationOptions options,
        int[] stopIds, Action<int> onToken, ChannelWriter<(int Id, TimeSpan Known)> writer, CancellationToken ct)
    {
        // Off the caller's thread: the host may call back synchronously, and the caller is reading the channel.
        await Task.Yield();
        try
        {
            var run = await client.RunAsync(promptIds, parallel.Strategy, parallel.Partition, options.MaxNewTokens, options.Sampling, stopIds,
                false, onToken, ct).ConfigureAwait(false);
            writer.TryComplete();
            return run;
        }
        catch
        {
            // Ends the reader's wait; the exception itself reaches the caller through the returned task.
            writer.TryComplete();
            throw;
        }
    }

    private static RankTiming[] ToRankTimings(PrefillRun run)
    {
        var totals = run.RankTimings;
        var timings = new RankTiming[totals.Count];
        for (int i = 0; i < timings.Length; i++)
        {
            var t = totals[i];
            timings[i] = new RankTiming(t.Rank, TimeSpan.FromMilliseconds(t.ComputeMs), TimeSpan.FromMilliseconds(t.WaitKvMs + t.SendMs),
                TimeSpan.FromMilliseconds(t.TotalMs));
        }
        return timings;
    }

    /// <summary>Throws <see cref="RunaheadException"/> for an empty prompt, one longer than the context, or unknown ids.</summary>
    public void ValidatePrompt(ReadOnlySpan<int> promptIds) => ValidatePrompt(promptIds, Config);

    /// <summary>The checks of <see cref="ValidatePrompt(ReadOnlySpan{int})"/> against a model's configuration.</summary>
    public static void ValidatePrompt(ReadOnlySpan<int> promptIds, ModelConfig config)
    {
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
        int eos = Tokenizer?.EosId ?? Config.EosId;
        if (eos >= 0) set.Add(eos);
        // llama2.c's run.c ends a story when the model starts the next one (BOS), as its training data delimits them.
        int bos = Tokenizer?.BosId ?? Config.BosId;
        if (_formatName == "llama2c" && bos >= 0) set.Add(bos);
        return set;
    }
}
