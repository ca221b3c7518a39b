using Runahead.Formats;
using Runahead.Formats.Synthetic;
using Runahead.Models;
using Runahead.Tests.Prefill;

namespace Runahead.Tests.Models;

/// <summary>Q/K/V and gate/up as product groups change nothing in the forward pass: logits equal bit for bit.</summary>
public sealed class GroupedProjectionsTests : IDisposable
{
    private readonly DirectoryInfo _folder = Directory.CreateTempSubdirectory("runahead-grouped-");

    public void Dispose() => _folder.Delete(recursive: true);

    [Theory]
    [InlineData(TensorType.F32, false)]
    [InlineData(TensorType.F16, false)]
    [InlineData(TensorType.BF16, false)]
    [InlineData(TensorType.BF16, true)]
    [InlineData(TensorType.Q8_0, false)]
    public void GroupedEqualsSeparate(TensorType type, bool sharedWeights)
    {
        var path = Path.Combine(_folder.FullName, $"tiny-{type}.gguf");
        SyntheticModel.Write(ModelShapes.Get("tiny"), type, path, seed: 21);
        var options = new ModelLoadOptions
        {
            Threads = 2, SharedWeights = sharedWeights, SharedWeightsFolder = Path.Combine(_folder.FullName, "packed"),
        };
        using var grouped = Model.Load(path, options with { GroupProjections = true });
        using var separate = Model.Load(path, options with { GroupProjections = false });
        Assert.All(grouped.Layers, l => Assert.True(l.GroupedQkv && l.GroupedGateUp));
        Assert.All(separate.Layers, l => Assert.False(l.GroupedQkv || l.GroupedGateUp));

        // 45 tokens: the blocked (prefill) path; then decode steps on the small-M path.
        var prompt = PrefillReference.Prompt(45, grouped.Config.VocabSize);
        var (expectedLogits, expectedIds) = PrefillReference.Single(separate, prompt, 4);
        var (logits, ids) = PrefillReference.Single(grouped, prompt, 4);
        Assert.Equal(expectedLogits, logits);
        Assert.Equal(expectedIds, ids);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void FalconQkvWrittenApartEqualsTheCopiedSplit(bool biases)
    {
        // Head size 32 and one KV head: Q [64] and K, V [32] start on panel boundaries, so the fused weight writes them apart.
        var config = RandomWeightSource.FalconConfig(newDecoder: false) with { Dim = 64, Heads = 2, HeadDim = 32, KvHeads = 1 };
        using var split = Model.Load(new RandomWeightSource(config, fusedQkv: true, biases: biases), new ModelLoadOptions { Threads = 2, GroupProjections = true });
        using var copied = Model.Load(new RandomWeightSource(config, fusedQkv: true, biases: biases),
            new ModelLoadOptions { Threads = 2, GroupProjections = false });
        Assert.All(split.Layers, l => Assert.True(l.SplitQkv));
        Assert.All(copied.Layers, l => Assert.False(l.SplitQkv));
        var prompt = PrefillReference.Prompt(30, config.VocabSize);
        var (expectedLogits, expectedIds) = PrefillReference.Single(copied, prompt, 3);
        var (logits, ids) = PrefillReference.Single(split, prompt, 3);
        Assert.Equal(expectedLogits, logits);
        Assert.Equal(expectedIds, ids);
    }
}
