using Runahead.Generation;
using Runahead.Prefill;

namespace Runahead.Tests.Prefill;

/// <summary>The in-process parallel prefill behind the generation layer's <see cref="IPrefillStrategy"/>.</summary>
public class GeneratorIntegrationTests
{
    [Theory]
    [InlineData(PrefillStrategyKind.Tsp, 3)]
    [InlineData(PrefillStrategyKind.Kvr, 4)]
    public async Task Generator_with_parallel_prefill_yields_the_single_tokens(PrefillStrategyKind strategy, int ranks)
    {
        using var model = SynthWeightSource.LoadTiny();
        var prompt = PrefillReference.Prompt(23, model.Config.VocabSize);
        var options = new GenerationOptions { MaxNewTokens = 10, Sampling = SamplingOptions.Greedy, StopIds = [] };
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));

        var expected = new List<int>();
        await foreach (var t in new Generator(model).GenerateAsync(prompt, options, timeout.Token)) expected.Add(t.Id);

        var models = Enumerable.Range(0, ranks).Select(_ => SynthWeightSource.LoadTiny()).ToArray();
        using var parallel = new InProcessParallelPrefill(strategy, models, PartitionSpec.Even, ownsModels: true) { ReserveTokens = 10 };
        var generator = new Generator(parallel.LastRankModel, null, parallel);
        var actual = new List<int>();
        await foreach (var t in generator.GenerateAsync(prompt, options, timeout.Token)) actual.Add(t.Id);

        Assert.Equal(expected, actual);
        Assert.Equal(ranks, generator.LastStats!.RankTimings.Count);
    }
}
