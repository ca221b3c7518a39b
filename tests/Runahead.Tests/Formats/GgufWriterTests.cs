using System.Runtime.InteropServices;
using Runahead.Formats;
using Runahead.Formats.Gguf;
using Runahead.Models;

namespace Runahead.Tests.Formats;

public class GgufWriterTests
{
    [Fact]
    public void MetadataOfEveryTypeRoundTrips()
    {
        using var dir = new TempDir();
        var w = new GgufWriter();
        w.AddUInt8("u8", 200);
        w.AddInt8("i8", -100);
        w.AddUInt16("u16", 60000);
        w.AddInt16("i16", -30000);
        w.AddUInt32("u32", 4_000_000_000);
        w.AddInt32("i32", -2_000_000_000);
        w.AddUInt64("u64", ulong.MaxValue);
        w.AddInt64("i64", long.MinValue);
        w.AddFloat32("f32", 1.5f);
        w.AddFloat64("f64", Math.PI);
        w.AddBool("b", true);
        w.AddString("s", "h\u00e9llo \u2581 \U0001F600");
        w.AddStringArray("sa", ["a", "", "\u2581b"]);
        w.AddFloat32Array("fa", [0.25f, -1f]);
        w.AddInt32Array("ia", [1, -2, 3]);
        w.AddValue("ba", GgufValueType.Array, GgufValueType.Bool, new[] { true, false });
        w.AddValue("u16a", GgufValueType.Array, GgufValueType.UInt16, new long[] { 1, 65535 });
        w.AddTensor("t", TensorType.F32, [2, 3], MemoryMarshal.AsBytes(new float[] { 1, 2, 3, 4, 5, 6 }.AsSpan()).ToArray());
        string path = dir.File("all.gguf");
        w.Write(path);

        using var f = GgufFile.Open(path);
        Assert.Equal(3u, f.Version);
        Assert.Equal(200L, f.Metadata["u8"]);
        Assert.Equal(-100L, f.Metadata["i8"]);
        Assert.Equal(60000L, f.Metadata["u16"]);
        Assert.Equal(-30000L, f.Metadata["i16"]);
        Assert.Equal(4_000_000_000L, f.Metadata["u32"]);
        Assert.Equal(-2_000_000_000L, f.Metadata["i32"]);
        Assert.Equal(ulong.MaxValue, f.Metadata["u64"]);
        Assert.Equal(long.MinValue, f.Metadata["i64"]);
        Assert.Equal(1.5, f.Metadata["f32"]);
        Assert.Equal(Math.PI, f.Metadata["f64"]);
        Assert.Equal(true, f.Metadata["b"]);
        Assert.Equal("h\u00e9llo \u2581 \U0001F600", f.Metadata["s"]);
        Assert.Equal(new[] { "a", "", "\u2581b" }, f.Metadata["sa"]);
        Assert.Equal(new[] { 0.25, -1 }, f.Metadata["fa"]);
        Assert.Equal(new long[] { 1, -2, 3 }, f.Metadata["ia"]);
        Assert.Equal(new[] { true, false }, f.Metadata["ba"]);
        Assert.Equal(new long[] { 1, 65535 }, f.Metadata["u16a"]);
        Assert.Equal((GgufValueType.Array, GgufValueType.UInt16), f.MetadataTypes["u16a"]);
        Assert.Equal((GgufValueType.Int8, GgufValueType.Int8), f.MetadataTypes["i8"]);
        Assert.True(f.TryGetTensor("t", out var t));
        Assert.Equal([2L, 3], t.Shape);
        Assert.Equal(0, t.DataOffset % 32);
        Assert.Equal(new float[] { 1, 2, 3, 4, 5, 6 }, MemoryMarshal.Cast<byte, float>(f.GetBytes(t)).ToArray());
    }

    [Fact]
    public void EveryTensorStartsOnTheAlignment()
    {
        using var dir = new TempDir();
        var w = new GgufWriter();
        for (int i = 0; i < 5; i++)
            w.AddTensor($"t{i}", TensorType.F16, [i * 3 + 1], new byte[(i * 3 + 1) * 2]);
        string path = dir.File("a.gguf");
        w.Write(path);
        using var f = GgufFile.Open(path);
        Assert.Equal(5, f.Tensors.Count);
        Assert.All(f.Tensors, t => Assert.Equal(0, t.DataOffset % 32));
        Assert.Equal(0, f.DataStart % 32);
    }

    [Fact]
    public void FailedWriteLeavesNoFileAndKeepsTheOldOne()
    {
        using var dir = new TempDir();
        string path = dir.File("m.gguf");
        File.WriteAllText(path, "old");
        var w = new GgufWriter();
        w.AddTensor("short", TensorType.F32, [4], s => s.Write(new byte[8])); // 8 of 16 bytes
        Assert.Throws<InvalidOperationException>(() => w.Write(path));
        Assert.Equal("old", File.ReadAllText(path));
        Assert.Single(Directory.GetFiles(dir.Path));

        var boom = new GgufWriter();
        boom.AddTensor("x", TensorType.F32, [1], _ => throw new IOException("disk full"));
        Assert.Throws<RunaheadException>(() => boom.Write(path));
        Assert.Equal("old", File.ReadAllText(path));
        Assert.Single(Directory.GetFiles(dir.Path));
    }

    private static void AssertSameTensorsExceptQk(IWeightSource original, IWeightSource converted, bool unpermuteQk)
    {
        var c = original.Config;
        Assert.Equal(original.Tensors.Count, converted.Tensors.Count);
        foreach (var t in original.Tensors)
        {
            Assert.True(converted.TryGetTensor(t.Name, out var g), t.Name);
            Assert.Equal(t.Shape, g.Shape);
            Assert.Equal(t.Type, g.Type);
            var expected = original.GetTensorBytes(t).ToArray();
            bool q = t.Name.EndsWith("attn_q.weight", StringComparison.Ordinal), k = t.Name.EndsWith("attn_k.weight", StringComparison.Ordinal);
            if (unpermuteQk && (q || k))
            {
                var f = WeightSourceTests.UnpermuteRotateHalf(MemoryMarshal.Cast<byte, float>(expected).ToArray(), q ? c.Heads : c.KvHeads, c.Dim);
                expected = MemoryMarshal.AsBytes(f.AsSpan()).ToArray();
            }
            Assert.True(expected.AsSpan().SequenceEqual(converted.GetTensorBytes(g)), t.Name);
        }
    }

    [SkippableTheory]
    [InlineData("hf/tiny-llama-gqa")]
    [InlineData("hf/stories260K")]
    [InlineData("hf/tiny-falcon-7b-style")]
    [InlineData("hf/tiny-falcon-new-arch")]
    public void HuggingFaceCheckpointsRoundTripThroughGguf(string fixture)
    {
        using var dir = new TempDir();
        using var hf = WeightSources.Open(Fixtures.Path(fixture));
        string path = dir.File("out.gguf");
        GgufModelWriter.Convert(hf, path);
        using var gguf = WeightSources.Open(path);
        bool llama = hf.Config.Architecture == ModelArchitecture.Llama;
        // A Hugging Face Llama is rotate-half; its GGUF form is interleaved with q/k rows permuted as llama.cpp does.
        Assert.Equal(llama ? hf.Config with { Rope = RopeStyle.Interleaved } : hf.Config, gguf.Config);
        AssertSameTensorsExceptQk(hf, gguf, unpermuteQk: llama);
    }

    [SkippableFact]
    public void HfStories260KAsGgufIsBitIdenticalToLlamaCppsConversion()
    {
        using var dir = new TempDir();
        using var hf = WeightSources.Open(Fixtures.Path("hf/stories260K"));
        using var reference = WeightSources.Open(Fixtures.Path("gguf/stories260K.gguf"));
        string path = dir.File("s.gguf");
        GgufModelWriter.Convert(hf, path);
        using var ours = WeightSources.Open(path);
        foreach (var t in ours.Tensors)
        {
            Assert.True(reference.TryGetTensor(t.Name, out var r), t.Name);
            Assert.True(ours.GetTensorBytes(t).SequenceEqual(reference.GetTensorBytes(r)), t.Name);
        }
    }

    [SkippableFact]
    public void Llama2cWithTokenizerRoundTripsAndMatchesLlamaCppsVocabulary()
    {
        using var dir = new TempDir();
        using var l2c = WeightSources.Open(Fixtures.Path("llama2c/stories260K.bin"));
        var vocab = GgufModelWriter.FindTokenizer(l2c, Fixtures.Path("llama2c/tok512.bin"));
        Assert.NotNull(vocab);
        string path = dir.File("s.gguf");
        GgufModelWriter.Convert(l2c, path, vocab);
        using var ours = (GgufWeightSource)WeightSources.Open(path);
        Assert.Equal(l2c.Config, ours.Config);
        AssertSameTensorsExceptQk(l2c, ours, unpermuteQk: false);

        using var reference = GgufFile.Open(Fixtures.Path("gguf/stories260K.gguf"));
        foreach (var key in new[] { "tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type" })
        {
            Assert.Equal(reference.MetadataTypes[key], ours.File.MetadataTypes[key]);
            Assert.Equal((Array)reference.Metadata[key], (Array)ours.File.Metadata[key]);
        }
        Assert.Equal("llama", ours.File.GetString("tokenizer.ggml.model"));
        Assert.Equal(1, ours.File.GetInt("tokenizer.ggml.bos_token_id", -1));
        Assert.Equal(0, ours.File.GetInt("tokenizer.ggml.unknown_token_id", -1));
    }

    [SkippableFact]
    public void GgufToGgufCopiesTheTokenizerKeysWithTheirTypes()
    {
        using var dir = new TempDir();
        string src = Fixtures.Path("gguf/llama-2-tiny-random.gguf");
        using var source = (GgufWeightSource)WeightSources.Open(src);
        string path = dir.File("copy.gguf");
        GgufModelWriter.Convert(source, path, GgufModelWriter.FindTokenizer(source));
        using var copy = (GgufWeightSource)WeightSources.Open(path);
        Assert.Equal(source.Config, copy.Config);
        AssertSameTensorsExceptQk(source, copy, unpermuteQk: false);
        foreach (var (key, value) in source.File.Metadata)
        {
            if (!key.StartsWith("tokenizer.", StringComparison.Ordinal)) continue;
            Assert.Equal(source.File.MetadataTypes[key], copy.File.MetadataTypes[key]);
            Assert.Equal(value, copy.File.Metadata[key]);
        }
    }

    [SkippableTheory]
    [InlineData(TensorType.F16, 1e-3)]
    [InlineData(TensorType.BF16, 8e-3)]
    [InlineData(TensorType.Q8_0, 1e-2)]
    public void ConversionToSmallerTypesKeepsValuesClose(TensorType type, double relTolerance)
    {
        using var dir = new TempDir();
        using var hf = WeightSources.Open(Fixtures.Path("hf/tiny-falcon-new-arch"));
        string path = dir.File("q.gguf");
        GgufModelWriter.Convert(hf, path, matrixType: type);
        using var g = WeightSources.Open(path);
        Assert.True(g.TryGetTensor("blk.0.attn_qkv.weight", out var qkv));
        Assert.Equal(type, qkv.Type);
        Assert.True(g.TryGetTensor("blk.0.attn_norm.weight", out var norm));
        Assert.Equal(TensorType.F32, norm.Type);
        Assert.True(hf.TryGetTensor("blk.0.attn_qkv.weight", out var orig));
        var expected = MemoryMarshal.Cast<byte, float>(hf.GetTensorBytes(orig));
        var actual = new float[expected.Length];
        Runahead.Numerics.DType.ToFloat32(g.GetTensorBytes(qkv), type, actual);
        float maxAbs = 0;
        foreach (var v in expected) maxAbs = Math.Max(maxAbs, Math.Abs(v));
        for (int i = 0; i < actual.Length; i++) Assert.True(Math.Abs(actual[i] - expected[i]) <= relTolerance * maxAbs, $"element {i}");
    }
}

public class FalconGgufNormNamesTests
{
    [SkippableFact]
    public void NewArchNormsAreStoredUnderLlamaCppsNames()
    {
        // llama.cpp maps ln_attn to attn_norm_2 and ln_mlp to attn_norm (and feeds attention from attn_norm_2);
        // our canonical names are the other way round, so the file must hold them swapped.
        string dir = Fixtures.Path("hf/tiny-falcon-new-arch");
        using var tmp = new TempDir();
        using var hf = WeightSources.Open(dir);
        string path = tmp.File("f.gguf");
        GgufModelWriter.Convert(hf, path);
        using var raw = Runahead.Formats.Safetensors.SafetensorsFile.Open(Path.Combine(dir, "model.safetensors"));
        using var file = GgufFile.Open(path);
        foreach (var (hfName, ggufName) in new[] { ("ln_attn.weight", "attn_norm_2.weight"), ("ln_attn.bias", "attn_norm_2.bias"), ("ln_mlp.weight", "attn_norm.weight"), ("ln_mlp.bias", "attn_norm.bias") })
        {
            Assert.True(raw.TryGetTensor("transformer.h.2." + hfName, out var r));
            Assert.True(file.TryGetTensor("blk.2." + ggufName, out var g));
            Assert.True(raw.GetBytes(r).SequenceEqual(file.GetBytes(g)), hfName);
        }
        using var back = WeightSources.Open(path);
        Assert.True(back.TryGetTensor("blk.2.attn_norm.weight", out var attnNorm));
        Assert.True(raw.TryGetTensor("transformer.h.2.ln_attn.weight", out var lnAttn));
        Assert.True(raw.GetBytes(lnAttn).SequenceEqual(back.GetTensorBytes(attnNorm)));
    }

    [Theory]
    [InlineData("blk.3.attn_norm.weight", "blk.3.attn_norm_2.weight")]
    [InlineData("blk.10.attn_norm_2.bias", "blk.10.attn_norm.bias")]
    [InlineData("blk.0.attn_qkv.weight", "blk.0.attn_qkv.weight")]
    [InlineData("output_norm.weight", "output_norm.weight")]
    public void SwapTradesOnlyTheTwoNorms(string a, string b)
    {
        Assert.Equal(b, FalconNormNames.Swap(a));
        Assert.Equal(a, FalconNormNames.Swap(b));
    }
}
