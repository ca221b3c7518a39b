using System.Runtime.InteropServices;
using Runahead.Formats;
using Runahead.Numerics;

namespace Runahead.Tests.Formats;

public class HalfPrecisionSafetensorsTests
{
    [SkippableTheory]
    [InlineData("F16", TensorType.F16)]
    [InlineData("BF16", TensorType.BF16)]
    public void HalfPrecisionCheckpointLoadsWithItsType(string dtype, TensorType type)
    {
        using var dir = new TempDir();
        File.Copy(Fixtures.Path("hf/tiny-falcon-new-arch/config.json"), dir.File("config.json"));
        var tensors = SafetensorsTestFiles.ReadAll(Fixtures.Path("hf/tiny-falcon-new-arch/model.safetensors"));
        var converted = tensors.ConvertAll(t =>
        {
            var f = MemoryMarshal.Cast<byte, float>(t.Data);
            var bytes = new byte[f.Length * 2];
            TensorEncoding.FromFloat32(f, type, bytes);
            return t with { DType = dtype, Data = bytes };
        });
        File.WriteAllBytes(dir.File("model.safetensors"), SafetensorsTestFiles.Build(converted));

        using var half = WeightSources.Open(dir.Path);
        using var full = WeightSources.Open(Fixtures.Path("hf/tiny-falcon-new-arch"));
        Assert.Equal(full.Config, half.Config);
        Assert.All(half.Tensors, t => Assert.Equal(type, t.Type));
        // The regrouped QKV must move whole 2-byte rows too.
        Assert.True(half.TryGetTensor("blk.3.attn_qkv.weight", out var qkv));
        Assert.True(full.TryGetTensor("blk.3.attn_qkv.weight", out var qkvFull));
        var values = new float[qkv.ElementCount];
        DType.ToFloat32(half.GetTensorBytes(qkv), type, values);
        var expected = MemoryMarshal.Cast<byte, float>(full.GetTensorBytes(qkvFull));
        double tolerance = type == TensorType.F16 ? 1e-3 : 1e-2;
        for (int i = 0; i < values.Length; i++)
            Assert.True(Math.Abs(values[i] - expected[i]) <= tolerance * Math.Max(1, Math.Abs(expected[i])), $"element {i}");
    }
}

public class FalconTiedEmbeddingsTests
{
    [SkippableFact]
    public void FalconWithoutLmHeadIsTiedEvenWhenConfigSaysOtherwise()
    {
        using var dir = new TempDir();
        foreach (var f in new[] { "config.json", "model.safetensors" })
            File.Copy(Fixtures.Path("hf/tiny-falcon-7b-style/" + f), dir.File(f));
        var node = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(dir.File("config.json")))!.AsObject();
        node["tie_word_embeddings"] = false;
        File.WriteAllText(dir.File("config.json"), node.ToJsonString());
        using var s = WeightSources.Open(dir.Path);
        Assert.True(s.Config.TiedEmbeddings);
        Assert.False(s.TryGetTensor("output.weight", out _));
    }
}
