using System.Runtime.InteropServices;
using Runahead.Formats;
using Runahead.Formats.Gguf;
using Runahead.Formats.Synthetic;
using Runahead.Models;

namespace Runahead.Tests.Formats;

public class SyntheticModelTests
{
    [Theory]
    [InlineData(ModelArchitecture.Llama, TensorType.F32)]
    [InlineData(ModelArchitecture.Llama, TensorType.F16)]
    [InlineData(ModelArchitecture.Falcon, TensorType.BF16)]
    [InlineData(ModelArchitecture.Falcon, TensorType.Q8_0)]
    public void TinySynthLoadsWithTheShapesConfig(ModelArchitecture arch, TensorType type)
    {
        using var dir = new TempDir();
        var config = ModelShapes.Get("tiny", arch);
        string path = dir.File("t.gguf");
        SyntheticModel.Write(config, type, path, seed: 7);
        using var s = (GgufWeightSource)WeightSources.Open(path);
        Assert.Equal(config, s.Config);
        foreach (var t in s.Tensors)
        {
            var values = new float[t.ElementCount];
            Runahead.Numerics.DType.ToFloat32(s.GetTensorBytes(t), t.Type, values);
            if (t.Shape.Length == 1)
            {
                Assert.Equal(TensorType.F32, t.Type);
                Assert.All(values, v => Assert.Equal(t.Name.EndsWith(".bias", StringComparison.Ordinal) ? 0f : 1f, v));
                continue;
            }
            Assert.Equal(type, t.Type);
            double sum = 0, sq = 0;
            foreach (var v in values) { sum += v; sq += (double)v * v; }
            double mean = sum / values.Length, std = Math.Sqrt(sq / values.Length - mean * mean);
            Assert.InRange(mean, -0.002, 0.002);
            Assert.InRange(std, 0.018, 0.022);
        }
    }

    [Fact]
    public void SameSeedSameFileOtherSeedOtherWeights()
    {
        using var dir = new TempDir();
        var config = ModelShapes.Get("tiny");
        SyntheticModel.Write(config, TensorType.F16, dir.File("a.gguf"), seed: 1);
        SyntheticModel.Write(config, TensorType.F16, dir.File("b.gguf"), seed: 1);
        SyntheticModel.Write(config, TensorType.F16, dir.File("c.gguf"), seed: 2);
        Assert.Equal(File.ReadAllBytes(dir.File("a.gguf")), File.ReadAllBytes(dir.File("b.gguf")));
        using var a = WeightSources.Open(dir.File("a.gguf"));
        using var c = WeightSources.Open(dir.File("c.gguf"));
        Assert.True(a.TryGetTensor("blk.1.ffn_up.weight", out var ta));
        Assert.True(c.TryGetTensor("blk.1.ffn_up.weight", out var tc));
        Assert.False(a.GetTensorBytes(ta).SequenceEqual(c.GetTensorBytes(tc)));
        // Different tensors of one model must not repeat each other's stream.
        Assert.True(a.TryGetTensor("blk.1.ffn_gate.weight", out var tg));
        Assert.False(a.GetTensorBytes(ta).SequenceEqual(a.GetTensorBytes(tg)));
    }

    [Fact]
    public void SyntheticVocabularyIsSentencePieceWithByteTokens()
    {
        using var dir = new TempDir();
        SyntheticModel.Write(ModelShapes.Get("tiny"), TensorType.F32, dir.File("v.gguf"), seed: 0);
        using var f = GgufFile.Open(dir.File("v.gguf"));
        Assert.Equal("llama", f.GetString("tokenizer.ggml.model"));
        var tokens = f.GetArray<string>("tokenizer.ggml.tokens")!;
        var types = f.GetArray<long>("tokenizer.ggml.token_type")!;
        var scores = f.GetArray<double>("tokenizer.ggml.scores")!;
        Assert.Equal(512, tokens.Length);
        Assert.Equal(512, scores.Length);
        Assert.Equal(["<unk>", "<s>", "</s>", "<0x00>"], tokens[..4]);
        Assert.Equal("<0xFF>", tokens[258]);
        Assert.All(types[3..259], t => Assert.Equal(6L, t));
        Assert.Contains("\u2581the", tokens);
        Assert.Equal(tokens.Length, tokens.Distinct().Count());
        for (int i = 260; i < tokens.Length; i++) Assert.True(scores[i] < scores[i - 1]);
        Assert.Equal(1, f.GetInt("tokenizer.ggml.bos_token_id", -1));
        Assert.True(f.GetBool("tokenizer.ggml.add_bos_token", false));
    }

    [Theory]
    [InlineData("smollm-135m", 576, 30, 9, 3, 1536, 49152)]
    [InlineData("tinyllama-1.1b", 2048, 22, 32, 4, 5632, 32000)]
    [InlineData("llama2-7b", 4096, 32, 32, 32, 11008, 32000)]
    [InlineData("falcon-7b", 4544, 32, 71, 1, 18176, 65024)]
    [InlineData("tiny", 64, 2, 4, 2, 128, 512)]
    public void ShapesHaveTheRealModelsDimensions(string name, int dim, int layers, int heads, int kv, int ffn, int vocab)
    {
        var c = ModelShapes.Get(name);
        Assert.Equal((dim, layers, heads, kv, ffn, vocab), (c.Dim, c.Layers, c.Heads, c.KvHeads, c.FfnDim, c.VocabSize));
        c.Validate(name);
        if (name == "falcon-7b")
        {
            Assert.Equal(ModelArchitecture.Falcon, c.Architecture);
            Assert.Equal(64, c.HeadDim);
            Assert.True(c.ParallelAttention);
            Assert.Equal(RopeStyle.NeoX, c.Rope);
        }
        Assert.Throws<RunaheadException>(() => ModelShapes.Get("gpt-17"));
    }

    [Theory]
    [InlineData(512)]
    [InlineData(65024)]
    public void SynthVocabularyIsReachableBySentencePieceMerges(int size)
    {
        var (tokens, _, types) = SyntheticVocabulary.Build(size);
        Assert.Equal(size, tokens.Length);
        var set = new HashSet<string>(tokens);
        Assert.Equal(tokens.Length, set.Count);
        // Every piece is its prefix plus one character, so the SPM merge loop can build it from characters.
        for (int i = 259; i < size; i++)
        {
            Assert.Equal(GgufTokenizerMetadata.Normal, types[i]);
            if (tokens[i].Length > 1) Assert.Contains(tokens[i][..^1], set);
        }
        Assert.Contains("\u2581the", set);
        Assert.Contains("e", set);
    }
}
