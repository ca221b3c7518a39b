using Runahead.Formats;
using Runahead.Formats.Synthetic;
using Runahead.Models;
using Runahead.Numerics;
using Runahead.Numerics.Jit;
using Runahead.Prefill;
using Runahead.Tests.Prefill;

namespace Runahead.Tests.Models;

/// <summary>
/// A BF16 model whose weights run on the vdpbf16ps kernel also runs attention on it: its prefill stays close to the
/// same model with F32 attention, and the parallel strategies still reproduce single prefill.
/// </summary>
public sealed class Bf16AttentionModelTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("runahead-bf16attn-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    // Head size 64 with GQA 3, as smollm-135m; 2 layers so the test stays fast.
    private static ModelConfig Shape() => ModelShapes.Get("tiny") with { Dim = 192, Heads = 3, KvHeads = 1, HeadDim = 64, FfnDim = 256 };

    private string Write(ModelConfig config, ulong seed)
    {
        var path = Path.Combine(_dir, $"bf16-{seed}.gguf");
        SyntheticModel.Write(config, TensorType.BF16, path, seed);
        return path;
    }

    [SkippableFact]
    public void PrefillStaysCloseToF32Attention()
    {
        Skip.IfNot(Bf16Dot.Enabled, "BF16 weights do not run on the vdpbf16ps kernel here: " + Bf16Dot.Status);
        using var model = Model.Load(Write(Shape(), 21), new ModelLoadOptions { Threads = 2 });
        Assert.All(model.Layers, l => Assert.Equal(AttentionPrecision.Bf16, l.AttentionPrecision));
        var prompt = PrefillReference.Prompt(100, model.Config.VocabSize);
        var bf16 = AllLogits(model, prompt);
        foreach (var layer in model.Layers) layer.AttentionPrecision = AttentionPrecision.F32;
        var f32 = AllLogits(model, prompt);

        // Attention outputs move by ~1e-3 of their size (AttentionBf16Tests); through the output projection and the
        // residual stream that is ~1e-3 of the logits' spread. Both runs round the GEMM activations identically.
        float worst = 0, spread = 0;
        for (int i = 0; i < f32.Length; i++)
        {
            worst = Math.Max(worst, Math.Abs(f32[i] - bf16[i]));
            spread = Math.Max(spread, Math.Abs(f32[i]));
        }
        Assert.True(worst <= 0.01f * spread, $"BF16 attention moved a logit by {worst} (largest |logit| {spread})");
        Assert.True(worst > 0, "BF16 attention gave bit-identical logits: it did not run");
    }

    [Fact]
    public void F32AndWideningModelsKeepF32Attention()
    {
        using var f32 = SynthWeightSource.LoadTiny();
        Assert.All(f32.Layers, l => Assert.Equal(AttentionPrecision.F32, l.AttentionPrecision));
    }

    public static TheoryData<string, int> StrategyAndRanks()
    {
        var data = new TheoryData<string, int>();
        foreach (var s in new[] { "tsp", "tsp-causal", "kvr" })
            foreach (int p in new[] { 2, 3 }) data.Add(s, p);
        return data;
    }

    [SkippableTheory]
    [MemberData(nameof(StrategyAndRanks))]
    public async Task ParallelStrategiesMatchSingle(string strategy, int ranks)
    {
        // Chunks above PackedGemm.SmallM tokens: smaller ones keep F32 activations in their GEMMs (and F32 attention),
        // which single prefill of the whole prompt does not.
        Skip.IfNot(Bf16Dot.Enabled, "BF16 weights do not run on the vdpbf16ps kernel here: " + Bf16Dot.Status);
        string path = Write(Shape(), 22);
        var kind = PrefillStrategyNames.Parse(strategy);
        using var reference = Model.Load(path, new ModelLoadOptions { Threads = 1 });
        var prompt = PrefillReference.Prompt(61, reference.Config.VocabSize);
        var (expectedLogits, expectedIds) = PrefillReference.Single(reference, prompt, 4);
        foreach (var spec in new[] { PartitionSpec.Even, new PartitionSpec(PartitionKind.Explicit, ranks == 2 ? [45, 16] : [30, 21, 10]) })
        {
            var models = new Model[ranks];
            for (int r = 0; r < ranks; r++) models[r] = Model.Load(path, new ModelLoadOptions { Threads = 1 });
            using var parallel = new InProcessParallelPrefill(kind, models, spec, ownsModels: true);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            var result = await parallel.PrefillAsync(prompt, prompt.Length + 4, timeout.Token);
            PrefillReference.AssertClose(expectedLogits, result.Logits, $"{strategy} P={ranks} ({result.Partition})");
            var ids = PrefillReference.Decode(parallel.LastRankModel, result.Cache!, result.Logits, 4);
            Assert.Equal(expectedIds, ids);
        }
    }

    private static float[] AllLogits(Model model, int[] prompt)
    {
        var logits = new float[prompt.Length * model.Config.VocabSize];
        model.Forward(prompt, new KvCache(model.Config, prompt.Length), logits, model.CreateWorkspace(64), allLogits: true);
        return logits;
    }
}
