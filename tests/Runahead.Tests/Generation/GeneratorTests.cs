using Runahead.Generation;
using Runahead.Models;
using Runahead.Prefill;
using Runahead.Tests.Models;

namespace Runahead.Tests.Generation;

public class GeneratorTests
{
    private static Model TinyModel() => Model.Load(RandomWeightSource.Create("llama"), new ModelLoadOptions { Threads = 1 });

    private static async Task<List<GeneratedToken>> Collect(IAsyncEnumerable<GeneratedToken> tokens)
    {
        var list = new List<GeneratedToken>();
        await foreach (var t in tokens) list.Add(t);
        return list;
    }

    [Fact]
    public async Task GreedyGenerationEqualsStepwiseArgMaxAndReportsStats()
    {
        using var model = TinyModel();
        var generator = new Generator(model, new FakeTokenizer(model.Config.VocabSize));
        int[] prompt = [0, 7, 9, 12];
        var tokens = await Collect(generator.GenerateAsync(prompt, new GenerationOptions { MaxNewTokens = 10, Sampling = SamplingOptions.Greedy, StopIds = [] }));

        // The same thing by hand: full forward over the growing sequence, argmax of the last logits.
        var seq = new List<int>(prompt);
        var logits = new float[model.Config.VocabSize];
        for (int i = 0; i < 10; i++)
        {
            model.Forward(seq.ToArray(), new KvCache(model.Config, seq.Count), logits, model.CreateWorkspace(32));
            seq.Add(Sampler.ArgMax(logits));
        }
        Assert.Equal(seq.Skip(prompt.Length), tokens.Select(t => t.Id));

        var stats = generator.LastStats!;
        Assert.Equal(4, stats.PromptTokens);
        Assert.Equal(10, stats.GeneratedTokens);
        Assert.Equal(StopReason.TokenBudget, stats.StopReason);
        Assert.True(stats.TimeToFirstToken > TimeSpan.Zero);
        Assert.True(stats.PromptTokensPerSecond > 0 && stats.DecodeTokensPerSecond > 0);
        Assert.Equal(Enumerable.Range(0, 10), tokens.Select(t => t.Index));
    }

    [Fact]
    public void PiecesConcatenateToTheDecodedTextAndHoldBackSplitCharacters()
    {
        var tok = new FakeTokenizer(40);
        var streamer = new TextStreamer(tok, [0, 3]);
        Assert.Equal("w3 ", streamer.Prefix);
        Assert.Equal("w4 ", streamer.Add(4));
        Assert.Equal("", streamer.Add(5));     // first byte of "é"
        Assert.Equal("é", streamer.Add(6));
        Assert.Equal("", streamer.Add(5));
        Assert.Equal("\uFFFD", streamer.Flush());
    }

    [Fact]
    public async Task StopsAtStopIdWithoutYieldingIt()
    {
        using var model = TinyModel();
        var generator = new Generator(model);
        int[] prompt = [0, 7, 9];
        var all = await Collect(generator.GenerateAsync(prompt, new GenerationOptions { MaxNewTokens = 6, Sampling = SamplingOptions.Greedy, StopIds = [] }));
        int stopAt = all[2].Id;
        var stopped = await Collect(generator.GenerateAsync(prompt, new GenerationOptions { MaxNewTokens = 6, Sampling = SamplingOptions.Greedy, StopIds = [stopAt] }));
        int firstStop = all.FindIndex(t => t.Id == stopAt);
        Assert.Equal(all.Take(firstStop).Select(t => t.Id), stopped.Select(t => t.Id));
        Assert.Equal(StopReason.EndOfSequence, generator.LastStats!.StopReason);
    }

    [Fact]
    public async Task CancellationStopsGeneration()
    {
        using var model = TinyModel();
        var generator = new Generator(model);
        using var cts = new CancellationTokenSource();
        int count = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var _ in generator.GenerateAsync(new[] { 0, 3 }, new GenerationOptions { MaxNewTokens = 50, StopIds = [] }, cts.Token))
                if (++count == 3) cts.Cancel();
        });
        Assert.Equal(3, count);
        Assert.Equal(StopReason.Cancelled, generator.LastStats!.StopReason);
    }

    [Fact]
    public async Task StopsWhenTheContextIsFullAndRejectsLongPrompts()
    {
        using var model = TinyModel();
        var generator = new Generator(model);
        int ctx = model.Config.ContextLength;
        var prompt = Enumerable.Range(0, ctx - 3).Select(i => i % 30).ToArray();
        var tokens = await Collect(generator.GenerateAsync(prompt, new GenerationOptions { MaxNewTokens = 100, StopIds = [] }));
        Assert.Equal(4, tokens.Count); // the last token's logits come from position ctx - 1
        Assert.Equal(StopReason.ContextFull, generator.LastStats!.StopReason);

        var tooLong = Enumerable.Range(0, ctx + 1).Select(i => i % 30).ToArray();
        var e = await Assert.ThrowsAsync<RunaheadException>(() => Collect(generator.GenerateAsync(tooLong)));
        Assert.Contains("context length", e.Message);
    }

    [Fact]
    public async Task UsesTheGivenPrefillStrategy()
    {
        using var model = TinyModel();
        var strategy = new CountingPrefill(new SinglePrefill(model, chunkTokens: 2));
        var withStrategy = new Generator(model, prefill: strategy);
        var plain = new Generator(model);
        int[] prompt = [0, 4, 8, 15, 16, 23, 42 % 40];
        var options = new GenerationOptions { MaxNewTokens = 5, Sampling = SamplingOptions.Greedy, StopIds = [] };
        var a = await Collect(withStrategy.GenerateAsync(prompt, options));
        var b = await Collect(plain.GenerateAsync(prompt, options));
        Assert.Equal(1, strategy.Calls);
        Assert.Equal(b.Select(t => t.Id), a.Select(t => t.Id));
    }

    private sealed class CountingPrefill(IPrefillStrategy inner) : IPrefillStrategy
    {
        public int Calls;
        public Task<PrefillResult> PrefillAsync(ReadOnlyMemory<int> promptIds, CancellationToken ct)
        {
            Calls++;
            return inner.PrefillAsync(promptIds, ct);
        }
    }
}
