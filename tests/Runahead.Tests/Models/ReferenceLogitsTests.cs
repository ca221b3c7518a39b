using Runahead.Generation;
using Runahead.Models;

namespace Runahead.Tests.Models;

/// <summary>
/// The forward pass against real reference outputs: stories260K (three file formats) against llama2.c's run.c,
/// and tiny random Llama / Falcon checkpoints against transformers.
/// </summary>
public class ReferenceLogitsTests
{
    public static TheoryData<string> StoriesFormats => new() { "llama2c/stories260K.bin", "gguf/stories260K.gguf", "hf/stories260K" };
    public static TheoryData<string> HfModels => new() { "hf/tiny-llama-gqa", "hf/tiny-falcon-7b-style", "hf/tiny-falcon-new-arch" };

    [SkippableTheory]
    [MemberData(nameof(StoriesFormats))]
    public void StoriesLogitsAtAllPositionsMatchRunC(string file)
    {
        var (tokens, expected) = ReferenceData.StoriesLogits();
        Assert.Equal(64, tokens.Length);
        using var model = Model.Load(Fixtures.Path(file), new ModelLoadOptions { Threads = 2 });
        int vocab = model.Config.VocabSize;
        var logits = new float[tokens.Length * vocab];
        model.Forward(tokens, new KvCache(model.Config, tokens.Length), logits, model.CreateWorkspace(64), allLogits: true);
        for (int p = 0; p < tokens.Length; p++)
            ReferenceData.AssertClose(expected[p], logits.AsSpan(p * vocab, vocab), 1e-4f, $"{file} position {p}");

        // run.c computes one token at a time; so does decode.
        var ws = model.CreateWorkspace(1);
        var cache = new KvCache(model.Config, tokens.Length);
        var step = new float[vocab];
        for (int p = 0; p < tokens.Length; p++)
        {
            model.Forward(tokens.AsSpan(p, 1), cache, step, ws);
            ReferenceData.AssertClose(expected[p], step, 1e-4f, $"{file} token-by-token position {p}");
        }
    }

    [SkippableTheory]
    [MemberData(nameof(StoriesFormats))]
    public async Task StoriesGreedyIdsMatchRunC(string file)
    {
        var (prompt, generated) = ReferenceData.StoriesIds();
        using var model = Model.Load(Fixtures.Path(file), new ModelLoadOptions { Threads = 2 });
        var generator = new Generator(model);
        var ids = new List<int>();
        // run.c -n 64 counts positions including the prompt: 64 - 5 prompt tokens + ... = 60 generated ids.
        await foreach (var t in generator.GenerateAsync(prompt, new GenerationOptions { MaxNewTokens = 64 - prompt.Length + 1, Sampling = SamplingOptions.Greedy }))
            ids.Add(t.Id);
        Assert.Equal(generated, ids);
    }

    [SkippableTheory]
    [MemberData(nameof(HfModels))]
    public void HfLogitsAtAllPositionsMatchTransformers(string folder)
    {
        var path = Fixtures.Path(folder);
        var reference = ReferenceData.Hf(path);
        using var model = Model.Load(path, new ModelLoadOptions { Threads = 2 });
        int vocab = model.Config.VocabSize, n = reference.PromptIds.Length;
        var logits = new float[n * vocab];
        model.Forward(reference.PromptIds, new KvCache(model.Config, n), logits, model.CreateWorkspace(64), allLogits: true);
        for (int p = 0; p < n; p++)
            ReferenceData.AssertClose(reference.Logits[p], logits.AsSpan(p * vocab, vocab), 1e-4f, $"{folder} position {p}");
    }

    [SkippableTheory]
    [MemberData(nameof(HfModels))]
    public async Task HfGreedyContinuationMatchesTransformers(string folder)
    {
        var path = Fixtures.Path(folder);
        var reference = ReferenceData.Hf(path);
        using var model = Model.Load(path, new ModelLoadOptions { Threads = 2 });
        var generator = new Generator(model);
        var ids = new List<int>();
        var options = new GenerationOptions { MaxNewTokens = reference.GreedyNext.Length, Sampling = SamplingOptions.Greedy, StopIds = [] };
        await foreach (var t in generator.GenerateAsync(reference.PromptIds, options))
            ids.Add(t.Id);
        Assert.Equal(reference.GreedyNext, ids);
    }
}
