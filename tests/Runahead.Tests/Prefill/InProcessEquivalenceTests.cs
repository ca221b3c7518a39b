using Runahead.Models;
using Runahead.Prefill;

namespace Runahead.Tests.Prefill;

/// <summary>
/// The bulk of the equivalence matrix on the in-process transport: every strategy x P = 1..4 x partitions (even,
/// very uneven, one token on a rank) gives the single-rank logits (1e-4) and greedy continuation.
/// </summary>
public class InProcessEquivalenceTests
{
    private const int PromptTokens = 37;   // not a multiple of 2, 3 or 4; above the 16-token GEMM slice
    private const int NewTokens = 8;

    public static TheoryData<string, int> StrategyAndRanks()
    {
        var data = new TheoryData<string, int>();
        foreach (var s in new[] { "tsp", "tsp-causal", "kvr" })
            for (int p = 1; p <= 4; p++) data.Add(s, p);
        return data;
    }

    [Theory]
    [MemberData(nameof(StrategyAndRanks))]
    public async Task Synth_llama_matches_single(string strategy, int ranks) =>
        await CheckAllPartitions(() => SynthWeightSource.LoadTiny(), strategy, ranks);

    [Theory]
    [MemberData(nameof(StrategyAndRanks))]
    public async Task Synth_falcon_mqa_matches_single(string strategy, int ranks) =>
        await CheckAllPartitions(() => SynthWeightSource.LoadTiny(SynthWeightSource.TinyLlama() with
        {
            Architecture = ModelArchitecture.Falcon, KvHeads = 1, ParallelAttention = true, TiedEmbeddings = true,
        }), strategy, ranks);

    internal static async Task CheckAllPartitions(Func<Model> load, string strategy, int ranks, int promptTokens = PromptTokens)
    {
        var kind = PrefillStrategyNames.Parse(strategy);
        using var reference = load();
        var prompt = PrefillReference.Prompt(promptTokens, reference.Config.VocabSize);
        var (expectedLogits, expectedIds) = PrefillReference.Single(reference, prompt, NewTokens);
        foreach (var (name, spec) in PrefillReference.Partitions(prompt.Length, ranks))
        {
            var models = new Model[ranks];
            for (int r = 0; r < ranks; r++) models[r] = load();
            using var parallel = new InProcessParallelPrefill(kind, models, spec, ownsModels: true);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            var result = await parallel.PrefillAsync(prompt, prompt.Length + NewTokens, timeout.Token);
            string what = $"{strategy} P={ranks} {name} ({result.Partition})";
            PrefillReference.AssertClose(expectedLogits, result.Logits, what);
            Assert.NotNull(result.Cache);
            Assert.Equal(prompt.Length, result.Cache!.Length);
            var ids = PrefillReference.Decode(parallel.LastRankModel, result.Cache, result.Logits, NewTokens);
            Assert.True(expectedIds.SequenceEqual(ids), $"{what}: continuation {string.Join(' ', ids)} != {string.Join(' ', expectedIds)}");
            Assert.Equal(ranks, result.Timeline.Ranks);
        }
    }
}
