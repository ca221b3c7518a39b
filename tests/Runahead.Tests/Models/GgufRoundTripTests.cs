using Runahead.Formats;
using Runahead.Formats.Gguf;
using Runahead.Generation;
using Runahead.Models;

namespace Runahead.Tests.Models;

/// <summary>The tiny Hugging Face checkpoints, written as GGUF by our writer, still match transformers.</summary>
public sealed class GgufRoundTripTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("runahead-models-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    public static TheoryData<string> HfModels => ReferenceLogitsTests.HfModels;

    [SkippableTheory]
    [MemberData(nameof(HfModels))]
    public async Task HfModelAfterGgufRoundTripMatchesTransformers(string folder)
    {
        var path = Fixtures.Path(folder);
        var reference = ReferenceData.Hf(path);
        var gguf = Path.Combine(_dir, Path.GetFileName(folder) + ".gguf");
        using (var source = WeightSources.Open(path)) GgufModelWriter.Convert(source, gguf);

        using var model = Model.Load(gguf, new ModelLoadOptions { Threads = 2 });
        Assert.Equal("gguf", model.FormatName);
        int vocab = model.Config.VocabSize, n = reference.PromptIds.Length;
        var logits = new float[n * vocab];
        model.Forward(reference.PromptIds, new KvCache(model.Config, n), logits, model.CreateWorkspace(64), allLogits: true);
        for (int p = 0; p < n; p++)
            ReferenceData.AssertClose(reference.Logits[p], logits.AsSpan(p * vocab, vocab), 1e-4f, $"{folder} as GGUF, position {p}");

        var ids = new List<int>();
        var options = new GenerationOptions { MaxNewTokens = reference.GreedyNext.Length, Sampling = SamplingOptions.Greedy, StopIds = [] };
        await foreach (var t in new Generator(model).GenerateAsync(reference.PromptIds, options)) ids.Add(t.Id);
        Assert.Equal(reference.GreedyNext, ids);
    }
}
