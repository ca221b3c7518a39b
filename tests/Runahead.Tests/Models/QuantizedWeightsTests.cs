using Runahead.Formats;
using Runahead.Formats.Gguf;
using Runahead.Models;

namespace Runahead.Tests.Models;

/// <summary>
/// stories260K with its matrices (embedding included) stored as F16, BF16 or Q8_0: the forward pass reads every
/// stored type, and the logits stay close to the F32 model's (the error is the weights' rounding).
/// </summary>
public sealed class QuantizedWeightsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("runahead-quant-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [SkippableTheory]
    [InlineData(TensorType.F16, 0.02f)]
    // BF16 weights carry 8 significant bits (relative error 2^-9); where the vdpbf16ps kernel runs (Bf16Dot), every
    // prefill GEMM also rounds its activations to bf16 (another 2^-9 per product), and attention rounds Q, K, P and V
    // (FlashAttentionBf16). Measured max |diff| on these logits: 0.08-0.10 widening, 0.10-0.12 with the kernel for the
    // GEMMs only, 0.25 with BF16 attention too; 0.3 covers all.
    [InlineData(TensorType.BF16, 0.3f)]
    [InlineData(TensorType.Q8_0, 0.35f)]
    public void LogitsStayCloseToF32(TensorType type, float tolerance)
    {
        var (tokens, expected) = ReferenceData.StoriesLogits();
        var path = Path.Combine(_dir, $"stories-{type}.gguf");
        using (var source = WeightSources.Open(Fixtures.Path("llama2c/stories260K.bin"))) GgufModelWriter.Convert(source, path, matrixType: type);

        using var model = Model.Load(path, new ModelLoadOptions { Threads = 2 });
        int vocab = model.Config.VocabSize;
        var logits = new float[tokens.Length * vocab];
        model.Forward(tokens, new KvCache(model.Config, tokens.Length), logits, model.CreateWorkspace(64), allLogits: true);
        int sameArgMax = 0;
        for (int p = 0; p < tokens.Length; p++)
        {
            var row = logits.AsSpan(p * vocab, vocab);
            ReferenceData.AssertClose(expected[p], row, tolerance, $"{type} position {p}");
            if (Runahead.Generation.Sampler.ArgMax(row) == Runahead.Generation.Sampler.ArgMax(expected[p])) sameArgMax++;
        }
        Assert.True(sameArgMax >= tokens.Length - 2, $"{type}: greedy choice differs at {tokens.Length - sameArgMax} positions");
    }
}
