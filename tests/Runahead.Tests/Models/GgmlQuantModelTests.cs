using Runahead.Formats;
using Runahead.Formats.Gguf;
using Runahead.Formats.Synthetic;
using Runahead.Models;
using Runahead.Tests.Formats;

namespace Runahead.Tests.Models;

/// <summary>
/// Whole models whose matrices (embedding and LM head included) are stored in a GGML block-quantized type give the
/// same logits, bit for bit, as the same model with those weights dequantised and stored as F32: dequantising at load
/// is the only thing the quantized types change.
/// </summary>
public sealed class GgmlQuantModelTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("runahead-ggmlq-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>Rows of 256 and 512 so every k-quant fits; one layer keeps it fast.</summary>
    private static ModelConfig Config() => ModelShapes.Get("tiny") with { Dim = 256, HeadDim = 64, FfnDim = 512, Layers = 1 };

    /// <summary>The largest |level x sub-scale| of each type, so random blocks give weights of at most about 0.1.</summary>
    private static float HalfScale(TensorType t) => 0.1f / t switch
    {
        TensorType.Q8_0 => 127, TensorType.Q4_0 => 8, TensorType.Q4_1 => 15, TensorType.Q5_0 => 16, TensorType.Q5_1 => 31,
        TensorType.Q2_K => 45, TensorType.Q3_K => 256, TensorType.Q4_K => 945, TensorType.Q5_K => 1953, TensorType.IQ4_NL => 127, _ => 4096,
    };

    /// <summary>Writes the model twice: matrices as random blocks of <paramref name="type"/>, and as their F32 values.</summary>
    private (string Quantized, string F32) WritePair(TensorType type, int seed)
    {
        var config = Config();
        var rng = new Random(seed);
        var wq = new GgufWriter();
        var wf = new GgufWriter();
        foreach (var w in new[] { wq, wf })
        {
            GgufModelWriter.AddModelMetadata(w, config, "quant-test");
            GgufTokenizerMetadata.Synthetic(config.VocabSize).ApplyTo(w);
        }
        foreach (var e in ModelTensors.Expected(config))
        {
            if (!e.Required) continue;
            if (e.Shape.Length == 1)
            {
                var ones = new float[e.Shape[0]];
                Array.Fill(ones, 1f);
                var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(ones.AsSpan()).ToArray();
                wq.AddTensor(e.Name, TensorType.F32, e.Shape, bytes);
                wf.AddTensor(e.Name, TensorType.F32, e.Shape, bytes);
                continue;
            }
            int elements = (int)(e.Shape[0] * e.Shape[1]);
            var stored = GgmlQuantReference.RandomBlocks(type, elements / TensorTypeInfo.BlockSize(type), rng, HalfScale(type));
            var floats = GgmlQuantReference.Dequantize(stored, type, elements);
            wq.AddTensor(e.Name, type, e.Shape, stored);
            wf.AddTensor(e.Name, TensorType.F32, e.Shape, System.Runtime.InteropServices.MemoryMarshal.AsBytes(floats.AsSpan()).ToArray());
        }
        var q = Path.Combine(_dir, $"{type}.gguf");
        var f = Path.Combine(_dir, $"{type}-f32.gguf");
        wq.Write(q);
        wf.Write(f);
        return (q, f);
    }

    private static float[] Logits(string path, int[] tokens)
    {
        using var model = Model.Load(path, new ModelLoadOptions { Threads = 2 });
        int vocab = model.Config.VocabSize;
        var logits = new float[tokens.Length * vocab];
        model.Forward(tokens, new KvCache(model.Config, tokens.Length), logits, model.CreateWorkspace(16), allLogits: true);
        return logits;
    }

    public static TheoryData<TensorType> AllTypes() => GgmlQuantTests.AllTypes();

    [Theory]
    [MemberData(nameof(AllTypes))]
    public void LogitsEqualTheDequantisedF32Model(TensorType type)
    {
        var (quantized, f32) = WritePair(type, 40 + (int)type);
        int[] tokens = [1, 17, 300, 5, 511, 42];
        var expected = Logits(f32, tokens);
        var actual = Logits(quantized, tokens);
        Assert.All(actual, v => Assert.True(float.IsFinite(v)));
        Assert.Equal(expected, actual);
    }

    [Theory]
    [InlineData(TensorType.Q4_0)]
    [InlineData(TensorType.Q4_1)]
    [InlineData(TensorType.Q5_0)]
    [InlineData(TensorType.Q5_1)]
    public void SyntheticLegacyQuantModelConvertsToF32WithTheSameLogits(TensorType type)
    {
        var config = ModelShapes.Get("tiny");
        var q = Path.Combine(_dir, $"synth-{type}.gguf");
        var f = Path.Combine(_dir, $"synth-{type}-f32.gguf");
        SyntheticModel.Write(config, type, q, seed: 3);
        using (var gguf = GgufFile.Open(q))
            Assert.Contains(gguf.Tensors, t => t.Type == type && t.Name == "blk.0.ffn_down.weight");
        using (var source = WeightSources.Open(q)) GgufModelWriter.Convert(source, f, matrixType: TensorType.F32);
        int[] tokens = [1, 2, 3, 100, 200];
        Assert.Equal(Logits(f, tokens), Logits(q, tokens));
    }

    [Theory]
    [InlineData(TensorType.Q4_K)]
    [InlineData(TensorType.Q5_0)]
    public void TruncatedQuantizedFileGivesOneLine(TensorType type)
    {
        var (quantized, _) = WritePair(type, 9);
        var data = File.ReadAllBytes(quantized);
        var cut = Path.Combine(_dir, "cut.gguf");
        File.WriteAllBytes(cut, data.AsSpan(0, data.Length - TensorTypeInfo.BlockBytes(type) - 1).ToArray());
        var ex = Assert.ThrowsAny<RunaheadException>(() => Model.Load(cut, new ModelLoadOptions { Threads = 1 }).Dispose());
        Assert.IsType<InvalidModelFileException>(ex);
        Assert.DoesNotContain('\n', ex.Message);
        Assert.Contains("cut.gguf", ex.Message);
        Assert.Contains("past the end", ex.Message);
    }

    [Fact]
    public void KQuantRowsMustBeWholeSuperBlocks()
    {
        var w = new GgufWriter();
        // 512 elements are whole Q4_K super-blocks, but rows of 64 are not.
        Assert.Throws<ArgumentException>(() => w.AddTensor("x", TensorType.Q4_K, [8, 64], new byte[2 * 144]));
    }

    [Fact]
    public void UnsupportedGgmlTypeNamesFileTensorAndType()
    {
        var (quantized, _) = WritePair(TensorType.Q4_0, 11);
        var data = File.ReadAllBytes(quantized);
        int at = TypeFieldOf(data, "blk.0.attn_q.weight");
        BitConverter.TryWriteBytes(data.AsSpan(at), 16u); // IQ2_XXS
        var bad = Path.Combine(_dir, "iq2.gguf");
        File.WriteAllBytes(bad, data);
        var ex = Assert.Throws<InvalidModelFileException>(() => Model.Load(bad, new ModelLoadOptions { Threads = 1 }).Dispose());
        Assert.DoesNotContain('\n', ex.Message);
        Assert.Contains("iq2.gguf", ex.Message);
        Assert.Contains("'blk.0.attn_q.weight' has GGML type 16, which is not supported", ex.Message);
        Assert.Contains("Q4_K", ex.Message);
        Assert.Contains("IQ4_NL", ex.Message);
    }

    /// <summary>The ggml type field of a tensor's info: after its name, dimension count and dimensions.</summary>
    private static int TypeFieldOf(byte[] data, string name)
    {
        var needle = System.Text.Encoding.UTF8.GetBytes(name);
        int at = data.AsSpan().IndexOf(needle);
        Assert.True(at > 0);
        at += needle.Length;
        uint dims = BitConverter.ToUInt32(data, at);
        return at + 4 + 8 * (int)dims;
    }
}
