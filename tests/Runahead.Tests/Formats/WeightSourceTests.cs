using System.Runtime.InteropServices;
using Runahead.Formats;
using Runahead.Models;

namespace Runahead.Tests.Formats;

public class WeightSourceTests
{
    public static IEnumerable<object[]> Stories260KForms() =>
    [
        ["gguf/stories260K.gguf", "gguf"],
        ["hf/stories260K", "safetensors"],
        ["llama2c/stories260K.bin", "llama2c"],
    ];

    [SkippableTheory]
    [MemberData(nameof(Stories260KForms))]
    public void Stories260KConfigIsReadFromEveryFormat(string fixture, string format)
    {
        using var s = WeightSources.Open(Fixtures.Path(fixture));
        Assert.Equal(format, s.FormatName);
        var c = s.Config;
        Assert.Equal(ModelArchitecture.Llama, c.Architecture);
        Assert.Equal((64, 5, 8, 4, 8, 172, 512), (c.Dim, c.Layers, c.Heads, c.KvHeads, c.HeadDim, c.FfnDim, c.VocabSize));
        Assert.Equal(format == "safetensors" ? RopeStyle.NeoX : RopeStyle.Interleaved, c.Rope);
        // llama.cpp's llama2.c converter writes context 128 and an explicit output.weight.
        Assert.Equal(format == "gguf" ? 128 : 512, c.ContextLength);
        Assert.Equal(format != "gguf", c.TiedEmbeddings);
        Assert.Equal(1e-5f, c.NormEps, 1e-9f);
        Assert.Equal(10000f, c.RopeTheta);
        Assert.Equal((1, 2), (c.BosId, c.EosId));
        Assert.All(s.Tensors, t => Assert.Equal(TensorType.F32, t.Type));
    }

    [SkippableFact]
    public void Stories260KFormsHoldBitIdenticalTensors()
    {
        using var gguf = WeightSources.Open(Fixtures.Path("gguf/stories260K.gguf"));
        using var hf = WeightSources.Open(Fixtures.Path("hf/stories260K"));
        using var l2c = WeightSources.Open(Fixtures.Path("llama2c/stories260K.bin"));
        var c = l2c.Config;
        int compared = 0;
        foreach (var t in l2c.Tensors)
        {
            var expected = MemoryMarshal.Cast<byte, float>(l2c.GetTensorBytes(t)).ToArray();
            Assert.True(gguf.TryGetTensor(t.Name, out var g), t.Name);
            Assert.Equal(t.Shape, g.Shape);
            Assert.Equal(expected, MemoryMarshal.Cast<byte, float>(gguf.GetTensorBytes(g)).ToArray());

            Assert.True(hf.TryGetTensor(t.Name, out var h), t.Name);
            Assert.Equal(t.Shape, h.Shape);
            var hfValues = MemoryMarshal.Cast<byte, float>(hf.GetTensorBytes(h)).ToArray();
            if (t.Name.EndsWith("attn_q.weight", StringComparison.Ordinal)) hfValues = UnpermuteRotateHalf(hfValues, c.Heads, c.Dim);
            if (t.Name.EndsWith("attn_k.weight", StringComparison.Ordinal)) hfValues = UnpermuteRotateHalf(hfValues, c.KvHeads, c.Dim);
            Assert.Equal(expected, hfValues);
            compared++;
        }
        Assert.Equal(47, compared);
        // Tied in llama2.c and HF; llama.cpp's converter wrote the classifier out as a copy of the embeddings.
        Assert.True(gguf.TryGetTensor("output.weight", out var output));
        Assert.True(l2c.TryGetTensor("token_embd.weight", out var embd));
        Assert.True(gguf.GetTensorBytes(output).SequenceEqual(l2c.GetTensorBytes(embd)));
    }

    /// <summary>Undoes the Hugging Face converter's q/k row permutation (interleaved pairs to rotate-half halves).</summary>
    internal static float[] UnpermuteRotateHalf(float[] hf, int heads, int cols)
    {
        int rows = hf.Length / cols, headDim = rows / heads, half = headDim / 2;
        var result = new float[hf.Length];
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < half; i++)
                for (int part = 0; part < 2; part++)
                    Array.Copy(hf, (h * headDim + part * half + i) * cols, result, (h * headDim + 2 * i + part) * cols, cols);
        return result;
    }

    [SkippableFact]
    public void TinyLlamaGqaLoads()
    {
        using var s = WeightSources.Open(Fixtures.Path("hf/tiny-llama-gqa"));
        var c = s.Config;
        Assert.Equal((ModelArchitecture.Llama, 128, 4, 8, 2, 16, 352, 1024, 4096), (c.Architecture, c.Dim, c.Layers, c.Heads, c.KvHeads, c.HeadDim, c.FfnDim, c.VocabSize, c.ContextLength));
        Assert.False(c.TiedEmbeddings);
        Assert.Equal(RopeStyle.NeoX, c.Rope);
        Assert.True(s.TryGetTensor("output.weight", out var o));
        Assert.Equal([1024L, 128], o.Shape);
        Assert.True(s.TryGetTensor("blk.3.attn_k.weight", out var k));
        Assert.Equal([32L, 128], k.Shape);
        Assert.Equal(3 + 4 * 9, s.Tensors.Count);
    }

    [SkippableFact]
    public void TinyFalcon7BStyleLoadsAsMultiQuery()
    {
        using var s = WeightSources.Open(Fixtures.Path("hf/tiny-falcon-7b-style"));
        var c = s.Config;
        Assert.Equal((ModelArchitecture.Falcon, 128, 4, 8, 1, 16, 512, 1024), (c.Architecture, c.Dim, c.Layers, c.Heads, c.KvHeads, c.HeadDim, c.FfnDim, c.VocabSize));
        Assert.True(c.ParallelAttention);
        Assert.False(c.FalconNewDecoder);
        Assert.True(c.TiedEmbeddings);
        Assert.Equal(RopeStyle.NeoX, c.Rope);
        Assert.Equal((11, 11), (c.BosId, c.EosId));
        Assert.False(s.TryGetTensor("output.weight", out _));
        Assert.True(s.TryGetTensor("blk.0.attn_norm.bias", out _));
        Assert.True(s.TryGetTensor("output_norm.bias", out _));
        Assert.True(s.TryGetTensor("blk.2.attn_qkv.weight", out var qkv));
        Assert.Equal([160L, 128], qkv.Shape);
    }

    [SkippableFact]
    public void TinyFalconNewArchQkvRowsAreRegroupedToQueriesThenKeysThenValues()
    {
        string dir = Fixtures.Path("hf/tiny-falcon-new-arch");
        using var s = WeightSources.Open(dir);
        var c = s.Config;
        Assert.Equal((8, 2, 16), (c.Heads, c.KvHeads, c.HeadDim));
        Assert.True(c.FalconNewDecoder);
        Assert.True(s.TryGetTensor("blk.1.attn_norm_2.weight", out _));
        Assert.True(s.TryGetTensor("blk.1.attn_qkv.weight", out var qkv));
        var canonical = MemoryMarshal.Cast<byte, float>(s.GetTensorBytes(qkv)).ToArray();

        using var raw = Runahead.Formats.Safetensors.SafetensorsFile.Open(Path.Combine(dir, "model.safetensors"));
        Assert.True(raw.TryGetTensor("transformer.h.1.self_attention.query_key_value.weight", out var rt));
        var stored = MemoryMarshal.Cast<byte, float>(raw.GetBytes(rt)).ToArray();
        int cols = 128, hd = 16, group = 4;
        // transformers' _split_heads: view(kv, group + 2, head_dim): slot < group is a query head, then k, then v.
        float Stored(int kv, int slot, int row, int col) => stored[((kv * (group + 2) + slot) * hd + row) * cols + col];
        float Canon(int head, int row, int col) => canonical[(head * hd + row) * cols + col];
        for (int kv = 0; kv < 2; kv++)
            for (int row = 0; row < hd; row++)
                for (int col = 0; col < cols; col += 7)
                {
                    for (int g = 0; g < group; g++) Assert.Equal(Stored(kv, g, row, col), Canon(kv * group + g, row, col));
                    Assert.Equal(Stored(kv, group, row, col), Canon(8 + kv, row, col));
                    Assert.Equal(Stored(kv, group + 1, row, col), Canon(10 + kv, row, col));
                }
        unsafe
        {
            fixed (float* p = canonical)
                Assert.Equal(new ReadOnlySpan<byte>(p, canonical.Length * 4).ToArray(), new ReadOnlySpan<byte>(s.GetTensorPointer(qkv), canonical.Length * 4).ToArray());
        }
    }

    [SkippableFact]
    public void TinyRandomGgufWithF16WeightsLoads()
    {
        using var s = WeightSources.Open(Fixtures.Path("gguf/llama-2-tiny-random.gguf"));
        Assert.Equal("gguf", s.FormatName);
        Assert.Equal(32000, s.Config.VocabSize);
        Assert.Contains(s.Tensors, t => t.Type == TensorType.F16);
    }
}
