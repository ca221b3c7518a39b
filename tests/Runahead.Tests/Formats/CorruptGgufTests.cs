using Runahead.Formats;
using Runahead.Formats.Gguf;
using Runahead.Formats.Synthetic;
using Runahead.Models;

namespace Runahead.Tests.Formats;

/// <summary>Truncated, corrupted and hostile GGUF files must be rejected with one clear line, never crash or hang.</summary>
public class CorruptGgufTests
{
    private static readonly ModelConfig Small = ModelShapes.Get("tiny") with
    {
        Dim = 8, Layers = 1, Heads = 2, KvHeads = 1, HeadDim = 4, FfnDim = 32, VocabSize = 260, ContextLength = 16,
    };

    private static byte[] SmallGguf(TempDir dir, ModelArchitecture arch, TensorType type)
    {
        string path = dir.File($"small-{arch}-{type}.gguf");
        SyntheticModel.Write(ModelShapes.Get("tiny", arch) is var _ ? Small with
        {
            Architecture = arch,
            Rope = arch == ModelArchitecture.Falcon ? RopeStyle.NeoX : RopeStyle.Interleaved,
            ParallelAttention = arch == ModelArchitecture.Falcon,
        } : Small, type, path, seed: 3);
        return File.ReadAllBytes(path);
    }

    private static ulong[] HostileU64(long fileSize, ulong original) =>
        [0, 1, original + 1, original - 1, (ulong)fileSize, (ulong)fileSize + 1, 1UL << 31, 1UL << 40, long.MaxValue, ulong.MaxValue];

    /// <summary>Every field mutated to hostile values, truncation at every boundary and at random points, byte flips.</summary>
    private static void MutateEverything(MutationHarness h, TempDir dir, byte[] data, string label, int randomTruncations, int flips, int maxFields, Random rng, int maxBoundaries = int.MaxValue)
    {
        string path = dir.File("m.gguf");
        Func<string, IWeightSource> open = WeightSources.Open;
        var layout = new GgufLayout(data);

        var boundaries = layout.Boundaries.Distinct().ToList();
        if (boundaries.Count > maxBoundaries) boundaries = boundaries.OrderBy(_ => rng.Next()).Take(maxBoundaries).ToList();
        foreach (int b in boundaries)
            foreach (int cut in new[] { b - 1, b, b + 1 })
                if (cut > 0 && cut < data.Length)
                    h.CheckFile($"{label} truncated at {cut} (boundary {b})", path, MutationHarness.Truncate(data, cut), open);
        for (int i = 0; i < randomTruncations; i++)
        {
            int cut = rng.Next(0, data.Length);
            h.CheckFile($"{label} truncated at {cut}", path, MutationHarness.Truncate(data, cut), open);
        }

        var fields = layout.Fields.Count <= maxFields ? layout.Fields : layout.Fields.OrderBy(_ => rng.Next()).Take(maxFields).ToList();
        foreach (var f in fields)
        {
            ulong original = f.Size == 8 ? BitConverter.ToUInt64(data, f.Position) : BitConverter.ToUInt32(data, f.Position);
            IEnumerable<ulong> values = f.Kind switch
            {
                GgufLayout.FieldKind.ValueType => [0, 5, 7, 8, 9, 12, 13, 99, uint.MaxValue],
                GgufLayout.FieldKind.TensorType => [1, 2, 8, 12, 14, 16, 30, 31, 1000],
                GgufLayout.FieldKind.DimCount => [0, 1, 3, 5, uint.MaxValue],
                GgufLayout.FieldKind.Offset => [original + 1, original + 32, (ulong)data.Length, ulong.MaxValue, 0],
                _ => HostileU64(data.Length, original),
            };
            foreach (var v in values)
            {
                var mutated = f.Size == 8 ? MutationHarness.WithU64(data, f.Position, v) : MutationHarness.WithU32(data, f.Position, (uint)v);
                h.CheckFile($"{label} {f.What} = {v}", path, mutated, open);
            }
        }

        for (int i = 0; i < flips; i++)
        {
            int pos = rng.Next(0, layout.DataStart);
            var copy = (byte[])data.Clone();
            copy[pos] ^= (byte)(1 << rng.Next(8));
            h.CheckFile($"{label} bit flip at {pos}", path, copy, open);
        }
        h.CheckFile($"{label} bad magic", path, MutationHarness.WithU32(data, 0, 0x46554748), open);
        h.CheckFile($"{label} version 1", path, MutationHarness.WithU32(data, 4, 1), open);
        h.CheckFile($"{label} version 4", path, MutationHarness.WithU32(data, 4, 4), open);
        h.CheckFile($"{label} empty", path, [], open);
    }

    [Theory]
    [InlineData(ModelArchitecture.Llama, TensorType.F32)]
    [InlineData(ModelArchitecture.Llama, TensorType.Q8_0)]
    [InlineData(ModelArchitecture.Llama, TensorType.Q5_1)]
    [InlineData(ModelArchitecture.Falcon, TensorType.F16)]
    public void SmallGgufSurvivesEveryMutation(ModelArchitecture arch, TensorType type)
    {
        using var dir = new TempDir();
        var data = SmallGguf(dir, arch, type);
        var h = new MutationHarness();
        h.Check("original", () => WeightSources.Open(dir.File($"small-{arch}-{type}.gguf")));
        Assert.Equal(1, h.Loaded);
        MutateEverything(h, dir, data, $"small {arch} {type}", randomTruncations: 60, flips: 150, maxFields: 1000, new Random(1));
        h.AssertNoFailures(minimumRejected: 500);
    }

    [SkippableTheory]
    [InlineData("gguf/stories260K.gguf", 40)]
    [InlineData("gguf/llama-2-tiny-random.gguf", 12)]
    public void FixtureGgufSurvivesSampledMutations(string fixture, int samples)
    {
        var data = File.ReadAllBytes(Fixtures.Path(fixture));
        using var dir = new TempDir();
        var h = new MutationHarness();
        // The fixtures are large next to the synthetic files above, so they get a sample of each kind of mutation.
        MutateEverything(h, dir, data, fixture, randomTruncations: samples, flips: samples, maxFields: samples, new Random(2), maxBoundaries: samples);
        h.AssertNoFailures(minimumRejected: samples * 3);
    }

    [Fact]
    public void HostileHeaderCountsAreRejectedBeforeAllocating()
    {
        using var dir = new TempDir();
        var data = SmallGguf(dir, ModelArchitecture.Llama, TensorType.F32);
        var layout = new GgufLayout(data);
        string path = dir.File("h.gguf");
        var tokens = layout.Fields.First(f => f.What == "tokenizer.ggml.tokens array count");
        File.WriteAllBytes(path, MutationHarness.WithU64(data, tokens.Position, 1UL << 40));
        var e = Assert.Throws<InvalidModelFileException>(() => GgufFile.Open(path));
        Assert.Contains("tokenizer.ggml.tokens", e.Message);
        Assert.Contains("h.gguf", e.Message);

        File.WriteAllBytes(path, MutationHarness.WithU64(data, 8, 1UL << 50));
        e = Assert.Throws<InvalidModelFileException>(() => GgufFile.Open(path));
        Assert.Contains("tensor count", e.Message);

        var dim = layout.Fields.First(f => f.What == "token_embd.weight ne[1]");
        File.WriteAllBytes(path, MutationHarness.WithU64(data, dim.Position, 1UL << 30));
        e = Assert.Throws<InvalidModelFileException>(() => GgufFile.Open(path));
        Assert.Contains("token_embd.weight", e.Message);
    }

    [Fact]
    public void MissingTensorAndWrongShapeNameTheTensor()
    {
        using var dir = new TempDir();
        var w = new GgufWriter();
        GgufModelWriter.AddModelMetadata(w, Small, "x");
        foreach (var e in ModelTensors.Expected(Small))
        {
            if (!e.Required || e.Name == "blk.0.ffn_gate.weight") continue;
            var shape = e.Name == "blk.0.attn_k.weight" ? new long[] { 8, 8 } : e.Shape;
            long n = 1;
            foreach (var d in shape) n *= d;
            w.AddTensor(e.Name, TensorType.F32, shape, new byte[n * 4]);
        }
        string path = dir.File("x.gguf");
        w.Write(path);
        var ex = Assert.Throws<InvalidModelFileException>(() => WeightSources.Open(path));
        Assert.Equal($"{path}: tensor 'blk.0.attn_k.weight' has shape [8, 8], expected [4, 8]", ex.Message);

        w.AddTensor("blk.0.ffn_gate.weight", TensorType.F32, [32, 8], new byte[32 * 8 * 4]);
        w.Write(path);
        ex = Assert.Throws<InvalidModelFileException>(() => WeightSources.Open(path));
        Assert.Contains("blk.0.attn_k.weight", ex.Message);

        var noGate = new GgufWriter();
        GgufModelWriter.AddModelMetadata(noGate, Small, "x");
        foreach (var e in ModelTensors.Expected(Small))
        {
            if (!e.Required || e.Name == "blk.0.ffn_gate.weight") continue;
            long n = 1;
            foreach (var d in e.Shape) n *= d;
            noGate.AddTensor(e.Name, TensorType.F32, e.Shape, new byte[n * 4]);
        }
        noGate.Write(path);
        ex = Assert.Throws<InvalidModelFileException>(() => WeightSources.Open(path));
        Assert.Equal($"{path}: tensor 'blk.0.ffn_gate.weight' is missing", ex.Message);
    }

    [Fact]
    public void UnknownArchitectureAndAbsurdDimensionsAreRejected()
    {
        using var dir = new TempDir();
        string path = dir.File("a.gguf");
        var w = new GgufWriter();
        GgufModelWriter.AddModelMetadata(w, Small, "x");
        w.AddString("general.architecture", "gpt2");
        w.Write(path);
        var ex = Assert.Throws<InvalidModelFileException>(() => WeightSources.Open(path));
        Assert.Contains("architecture 'gpt2' is not supported", ex.Message);

        w = new GgufWriter();
        GgufModelWriter.AddModelMetadata(w, Small, "x");
        w.AddUInt32("llama.embedding_length", 1u << 31);
        w.Write(path);
        ex = Assert.Throws<InvalidModelFileException>(() => WeightSources.Open(path));
        Assert.Contains("llama.embedding_length", ex.Message);

        w = new GgufWriter();
        GgufModelWriter.AddModelMetadata(w, Small, "x");
        w.AddString("llama.block_count", "many");
        w.Write(path);
        ex = Assert.Throws<InvalidModelFileException>(() => WeightSources.Open(path));
        Assert.Contains("llama.block_count", ex.Message);
    }
}

public class UnsupportedGgufFeatureTests
{
    private static void WriteTiny(string path, Action<Runahead.Formats.Gguf.GgufWriter> extra)
    {
        var c = ModelShapes.Get("tiny");
        var w = new Runahead.Formats.Gguf.GgufWriter();
        Runahead.Formats.Gguf.GgufModelWriter.AddModelMetadata(w, c, "x");
        foreach (var e in ModelTensors.Expected(c))
        {
            if (!e.Required) continue;
            long n = 1;
            foreach (var d in e.Shape) n *= d;
            w.AddTensor(e.Name, TensorType.F32, e.Shape, new byte[n * 4]);
        }
        extra(w);
        w.Write(path);
    }

    [Theory]
    [InlineData("scaling", "RoPE scaling 'yarn'")]
    [InlineData("freqs", "rope_freqs.weight")]
    [InlineData("experts", "mixture-of-experts")]
    public void FeaturesThatWouldChangeTheOutputAreRefused(string feature, string message)
    {
        using var dir = new TempDir();
        string path = dir.File("u.gguf");
        WriteTiny(path, w =>
        {
            if (feature == "scaling") w.AddString("llama.rope.scaling.type", "yarn");
            if (feature == "freqs") w.AddTensor("rope_freqs.weight", TensorType.F32, [8], new byte[32]);
            if (feature == "experts") w.AddUInt32("llama.expert_count", 8);
        });
        var e = Assert.Throws<InvalidModelFileException>(() => WeightSources.Open(path));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void RopeScalingNoneIsFine()
    {
        using var dir = new TempDir();
        string path = dir.File("ok.gguf");
        WriteTiny(path, w => w.AddString("llama.rope.scaling.type", "none"));
        using var s = WeightSources.Open(path);
        Assert.Equal(ModelShapes.Get("tiny"), s.Config);
    }
}
