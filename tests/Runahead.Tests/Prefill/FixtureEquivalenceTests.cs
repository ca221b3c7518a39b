using System.Text.Json;
using Runahead.Models;
using Runahead.Prefill;

namespace Runahead.Tests.Prefill;

/// <summary>
/// The equivalence matrix on the real fixtures (in-process transport): stories260K (pretrained, GQA) and the tiny
/// Hugging Face Llama-GQA / Falcon-7B-style (MQA, parallel attention) / Falcon new-architecture models.
/// </summary>
public class FixtureEquivalenceTests
{
    public static TheoryData<string, string, int> Matrix()
    {
        var data = new TheoryData<string, string, int>();
        foreach (var model in new[] { "llama2c/stories260K.bin", "hf/tiny-llama-gqa", "hf/tiny-falcon-7b-style", "hf/tiny-falcon-new-arch" })
            foreach (var s in new[] { "tsp", "tsp-causal", "kvr" })
                for (int p = 1; p <= 4; p++) data.Add(model, s, p);
        return data;
    }

    [SkippableTheory]
    [MemberData(nameof(Matrix))]
    public async Task Fixture_model_matches_single(string fixture, string strategy, int ranks)
    {
        var path = Fixtures.Path(fixture);
        await InProcessEquivalenceTests.CheckAllPartitions(() => Load(path), strategy, ranks, promptTokens: 48);
    }

    [SkippableTheory]
    [InlineData("hf/tiny-llama-gqa", "kvr", 3)]
    [InlineData("hf/tiny-falcon-7b-style", "tsp", 4)]
    [InlineData("hf/tiny-falcon-new-arch", "kvr", 2)]
    public async Task Parallel_prefill_reproduces_the_transformers_greedy_continuation(string fixture, string strategy, int ranks)
    {
        var path = Fixtures.Path(fixture);
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(path, "reference.json")));
        var prompt = json.RootElement.GetProperty("prompt_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var expected = json.RootElement.GetProperty("greedy_next_24").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var models = Enumerable.Range(0, ranks).Select(_ => Load(path)).ToArray();
        using var parallel = new InProcessParallelPrefill(PrefillStrategyNames.Parse(strategy), models, PartitionSpec.Even, ownsModels: true);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var result = await parallel.PrefillAsync(prompt, prompt.Length + expected.Length, timeout.Token);
        var ids = PrefillReference.Decode(parallel.LastRankModel, result.Cache!, result.Logits, expected.Length);
        Assert.Equal(expected, ids);
    }

    private static Model Load(string path) => Model.Load(path, new ModelLoadOptions { Threads = 1, MaxChunkTokens = 16 });
}
