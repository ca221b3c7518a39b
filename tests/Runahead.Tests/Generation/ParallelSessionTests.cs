using Runahead.Distributed;
using Runahead.Generation;
using Runahead.Prefill;
using Runahead.Tests.Prefill;

namespace Runahead.Tests.Generation;

/// <summary>
/// The library's one generation API over worker processes: <see cref="LlmSession"/> with
/// <see cref="LlmSessionOptions.Parallel"/> loads no weights here, streams the last rank's tokens, and cancelling
/// stops the ranks (the next generation starts them again).
/// </summary>
[Collection(WorkerProcessCollection.Name)]
public class ParallelSessionTests
{
    private static readonly GenerationOptions Greedy = new() { MaxNewTokens = 24, Sampling = SamplingOptions.Greedy };

    private static async Task<List<int>> IdsAsync(LlmSession session, string prompt, GenerationOptions options, CancellationToken ct)
    {
        var ids = new List<int>();
        await foreach (var t in session.GenerateAsync(prompt, options, ct))
            if (t.Id >= 0) ids.Add(t.Id);
        return ids;
    }

    [SkippableTheory]
    [InlineData(RankTransport.SharedMemory, PrefillStrategyKind.Kvr, 2)]
    [InlineData(RankTransport.SharedMemory, PrefillStrategyKind.Tsp, 3)]
    [InlineData(RankTransport.InProcess, PrefillStrategyKind.Kvr, 3)]
    public async Task Parallel_session_loads_no_weights_and_streams_the_single_process_tokens(RankTransport transport, PrefillStrategyKind strategy, int ranks)
    {
        var path = Fixtures.Path("gguf/stories260K.gguf");
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        List<int> expected;
        using (var single = LlmSession.Load(path)) expected = await IdsAsync(single, "Once upon a time", Greedy, timeout.Token);

        using var session = await LlmSession.LoadAsync(path, new LlmSessionOptions
        {
            Parallel = new ParallelGenerationOptions { Ranks = ranks, Strategy = strategy, Transport = transport, ThreadsPerRank = 1 },
        }, timeout.Token);
        // The coordinator holds the tokenizer and the configuration, never a Model (the ranks load the weights).
        Assert.Null(session.Model);
        Assert.Null(session.Generator.Model);
        Assert.NotNull(session.Tokenizer);
        Assert.Equal(ranks, session.Ranks!.Options.Ranks);

        var pieces = new System.Text.StringBuilder();
        var actual = new List<int>();
        await foreach (var t in session.GenerateAsync("Once upon a time", Greedy, timeout.Token))
        {
            pieces.Append(t.Text);
            if (t.Id >= 0) actual.Add(t.Id);
        }
        Assert.Equal(expected, actual);
        var stats = session.LastStats!;
        Assert.Equal(5, stats.PromptTokens);
        Assert.Equal(actual, stats.GeneratedIds);
        Assert.True(stats.TimeToFirstToken > TimeSpan.Zero);
        Assert.Equal(ranks, stats.RankTimings.Count);
        Assert.Equal(strategy, stats.Parallel!.Strategy);
        Assert.Equal(ranks, stats.Parallel.Partition.Ranks);
        var prompt = session.Tokenize("Once upon a time");
        Assert.Equal(session.Detokenize([.. prompt, .. actual]), session.Detokenize(prompt) + pieces);
    }

    [SkippableFact]
    public async Task Cancelling_stops_the_ranks_and_the_next_generation_starts_them_again()
    {
        var path = Fixtures.Path("gguf/stories260K.gguf");
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var session = await LlmSession.LoadAsync(path, new LlmSessionOptions
        {
            Parallel = new ParallelGenerationOptions { Ranks = 2, ThreadsPerRank = 1 },
        }, timeout.Token);
        // No stop ids and a budget the context cannot hold: only the cancellation ends this generation.
        var endless = new GenerationOptions { MaxNewTokens = 100_000, Sampling = SamplingOptions.Greedy, StopIds = [] };
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token);
        int seen = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var t in session.GenerateAsync("Once upon a time", endless, cancel.Token))
                if (++seen == 3) cancel.Cancel();
        });
        Assert.Equal(3, seen);
        Assert.Equal(StopReason.Cancelled, session.LastStats!.StopReason);
        Assert.Equal(1, session.Ranks!.Starts);

        // The cancelled job tore the ranks down; the next generation starts new ones and works.
        var ids = await IdsAsync(session, "Once upon a time", Greedy, timeout.Token);
        Assert.NotEmpty(ids);
        Assert.Equal(2, session.Ranks.Starts);
        Assert.True(session.LastStats!.RankStartup > TimeSpan.Zero);

        // Leaving the loop early also stops the ranks' decoding instead of letting them run to the budget.
        await foreach (var t in session.GenerateAsync("Once upon a time", endless, timeout.Token)) break;
        Assert.Equal(ids, await IdsAsync(session, "Once upon a time", Greedy, timeout.Token));
        Assert.Equal(3, session.Ranks.Starts);
    }

    [SkippableFact]
    public async Task Zero_tokens_and_bad_prompts_need_no_job()
    {
        var path = Fixtures.Path("gguf/stories260K.gguf");
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var session = await LlmSession.LoadAsync(path, new LlmSessionOptions
        {
            Parallel = new ParallelGenerationOptions { Ranks = 2, Transport = RankTransport.InProcess, ThreadsPerRank = 1 },
        }, timeout.Token);
        Assert.Empty(await IdsAsync(session, "Once", Greedy with { MaxNewTokens = 0 }, timeout.Token));
        var tooLong = new int[session.Config.ContextLength + 1];
        var e = await Assert.ThrowsAsync<RunaheadException>(async () =>
        {
            await foreach (var _ in session.GenerateAsync(tooLong, Greedy, timeout.Token)) { }
        });
        Assert.Contains("context length", e.Message);
    }

    [SkippableFact]
    public async Task An_error_found_before_the_job_keeps_the_ranks()
    {
        var path = Fixtures.Path("gguf/stories260K.gguf");
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var session = await LlmSession.LoadAsync(path, new LlmSessionOptions
        {
            Parallel = new ParallelGenerationOptions
            {
                Ranks = 2, Transport = RankTransport.SharedMemory, ThreadsPerRank = 1, Partition = PartitionSpec.Parse("4,4"),
            },
        }, timeout.Token);
        var e = await Assert.ThrowsAsync<RunaheadException>(() => IdsAsync(session, "Once upon a time", Greedy, timeout.Token));
        Assert.Contains("sum to 8 but the prompt has 5 tokens", e.Message);
        var ids = new List<int>();
        await foreach (var t in session.GenerateAsync(new[] { 1, 403, 407, 261, 378, 432, 383, 286 }, Greedy, timeout.Token)) ids.Add(t.Id);
        Assert.NotEmpty(ids);
        Assert.Equal(1, session.Ranks!.Starts);
    }

    [Fact]
    public void Parallel_options_are_checked_before_anything_starts()
    {
        var e = Assert.Throws<RunaheadException>(() =>
            new ParallelGenerationOptions { Ranks = 2, Strategy = PrefillStrategyKind.Single }.Validate());
        Assert.Contains("--strategy single runs on one rank", e.Message);
        e = Assert.Throws<RunaheadException>(() => new ParallelGenerationOptions { Ranks = 0 }.Validate());
        Assert.Contains("--ranks", e.Message);
        e = Assert.Throws<RunaheadException>(() =>
            new ParallelGenerationOptions { Ranks = 3, Links = new LinkShaper(2, 1e9, TimeSpan.Zero) }.Validate());
        Assert.Contains("for 2 ranks", e.Message);
    }
}
