using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Runahead.Formats;

namespace Runahead.Tests.Formats;

/// <summary>Hugging Face checkpoints with broken weights, headers, config.json or shard index.</summary>
public class CorruptSafetensorsTests
{
    /// <summary>A copy of a fixture folder in a temp dir, to mutate.</summary>
    private static TempDir CopyFolder(string fixture)
    {
        var dir = new TempDir();
        foreach (var f in Directory.GetFiles(Fixtures.Path(fixture)))
            if (!f.EndsWith("reference.json", StringComparison.Ordinal)) File.Copy(f, Path.Combine(dir.Path, Path.GetFileName(f)));
        return dir;
    }

    [SkippableFact]
    public void TruncatedAndBitFlippedWeightsFileIsRejectedOrHarmless()
    {
        using var dir = CopyFolder("hf/stories260K");
        string file = dir.File("model.safetensors");
        var data = File.ReadAllBytes(file);
        int headerEnd = 8 + (int)BitConverter.ToUInt64(data, 0);
        var h = new MutationHarness();
        var rng = new Random(3);
        Func<string, IWeightSource> open = _ => WeightSources.Open(dir.Path);
        var cuts = new List<int> { 0, 1, 7, 8, 9, 10, headerEnd - 1, headerEnd, headerEnd + 1, data.Length - 1 };
        foreach (var t in SafetensorsTestFiles.ReadAll(Fixtures.Path("hf/stories260K/model.safetensors")).Take(10)) cuts.Add(headerEnd + 4);
        for (int i = 0; i < 20; i++) cuts.Add(rng.Next(0, headerEnd));
        for (int i = 0; i < 20; i++) cuts.Add(rng.Next(headerEnd, data.Length));
        foreach (int cut in cuts) h.CheckFile($"truncated at {cut}", file, MutationHarness.Truncate(data, cut), open);
        for (int i = 0; i < 200; i++)
        {
            int pos = rng.Next(0, headerEnd);
            var copy = (byte[])data.Clone();
            copy[pos] = (byte)rng.Next(256);
            h.CheckFile($"byte {pos} = {copy[pos]}", file, copy, open);
        }
        foreach (ulong len in new ulong[] { 0, 1, 2, (ulong)data.Length, (ulong)data.Length - 8, 1UL << 40, ulong.MaxValue, (ulong)headerEnd - 9 })
            h.CheckFile($"header length {len}", file, MutationHarness.WithU64(data, 0, len), open);
        h.AssertNoFailures(minimumRejected: 100);
    }

    [SkippableFact]
    public void HostileHeaderEntriesAreRejectedNamingTheTensor()
    {
        using var dir = CopyFolder("hf/stories260K");
        string file = dir.File("model.safetensors");
        var tensors = SafetensorsTestFiles.ReadAll(file);
        var header = JsonNode.Parse(SafetensorsTestFiles.Header(tensors))!.AsObject();
        const string victim = "model.layers.2.self_attn.k_proj.weight";
        var h = new MutationHarness();
        var mutations = new (string what, Action<JsonObject> mutate)[]
        {
            ("dtype I64", e => e["dtype"] = "I64"),
            ("dtype F64", e => e["dtype"] = "F64"),
            ("dtype number", e => e["dtype"] = 3),
            ("dtype missing", e => e.Remove("dtype")),
            ("shape negative", e => e["shape"] = new JsonArray(-32, 64)),
            ("shape huge", e => e["shape"] = new JsonArray(1L << 40, 1L << 40)),
            ("shape float", e => e["shape"] = new JsonArray(32.5, 64)),
            ("shape string", e => e["shape"] = "32x64"),
            ("shape wrong", e => e["shape"] = new JsonArray(64, 32)),
            ("shape 3d", e => e["shape"] = new JsonArray(2, 16, 64)),
            ("shape missing", e => e.Remove("shape")),
            ("offsets reversed", e => e["data_offsets"] = new JsonArray(e["data_offsets"]![1]!.GetValue<long>(), e["data_offsets"]![0]!.GetValue<long>())),
            ("offsets past end", e => e["data_offsets"] = new JsonArray(1L << 40, (1L << 40) + 8192)),
            ("offsets negative", e => e["data_offsets"] = new JsonArray(-8192, 0)),
            ("offsets short", e => e["data_offsets"] = new JsonArray(0)),
            ("offsets size mismatch", e => e["data_offsets"] = new JsonArray(0, 4)),
            ("offsets missing", e => e.Remove("data_offsets")),
            ("entry not object", e => e.Clear()),
        };
        foreach (var (what, mutate) in mutations)
        {
            var copy = JsonNode.Parse(header.ToJsonString())!.AsObject();
            mutate(copy[victim]!.AsObject());
            h.CheckFile(what, file, SafetensorsTestFiles.Build(copy.ToJsonString(), tensors), _ => WeightSources.Open(dir.Path));
        }
        h.AssertNoFailures(minimumRejected: mutations.Length - 1); // "offsets missing"-style mutations all reject; the list has none harmless
        var removed = JsonNode.Parse(header.ToJsonString())!.AsObject();
        removed.Remove(victim);
        File.WriteAllBytes(file, SafetensorsTestFiles.Build(removed.ToJsonString(), tensors));
        var ex = Assert.Throws<InvalidModelFileException>(() => WeightSources.Open(dir.Path));
        Assert.Contains("'blk.2.attn_k.weight' (model.layers.2.self_attn.k_proj.weight) is missing", ex.Message);

        var wrong = JsonNode.Parse(header.ToJsonString())!.AsObject();
        wrong[victim]!["dtype"] = "I8";
        File.WriteAllBytes(file, SafetensorsTestFiles.Build(wrong.ToJsonString(), tensors));
        ex = Assert.Throws<InvalidModelFileException>(() => WeightSources.Open(dir.Path));
        Assert.Contains(victim, ex.Message);
        Assert.Contains("I8", ex.Message);
    }

    [SkippableFact]
    public void BadJsonInTheHeaderIsRejected()
    {
        using var dir = CopyFolder("hf/stories260K");
        string file = dir.File("model.safetensors");
        var tensors = SafetensorsTestFiles.ReadAll(file);
        string header = SafetensorsTestFiles.Header(tensors);
        var h = new MutationHarness();
        var rng = new Random(4);
        for (int i = 0; i < 40; i++)
        {
            // Cut the JSON text at a random point but keep the declared length consistent: always invalid JSON.
            int cut = rng.Next(0, header.Length - 1);
            h.CheckFile($"header cut at {cut}", file, SafetensorsTestFiles.Build(header[..cut], tensors), _ => WeightSources.Open(dir.Path));
        }
        foreach (var bad in new[] { "[]", "null", "\"x\"", "{\"a\":", "{\"a\": 1}", "{\"__metadata__\": 5}", "\u00ff\u00fe" })
            h.CheckFile($"header {bad}", file, SafetensorsTestFiles.Build(bad, tensors), _ => WeightSources.Open(dir.Path));
        var invalidUtf8 = SafetensorsTestFiles.Build(header, tensors);
        invalidUtf8[10] = 0xFF;
        h.CheckFile("invalid UTF-8", file, invalidUtf8, _ => WeightSources.Open(dir.Path));
        var deep = new StringBuilder();
        for (int i = 0; i < 10000; i++) deep.Append("{\"a\":");
        h.CheckFile("deeply nested", file, SafetensorsTestFiles.Build(deep.ToString(), tensors), _ => WeightSources.Open(dir.Path));
        h.AssertNoFailures(minimumRejected: 45);
    }

    public static IEnumerable<object[]> ConfigMutations() =>
    [
        ["not json", "{ hidden_size: 64 "],
        ["empty", ""],
        ["array", "[1, 2]"],
        ["hidden_size zero", null!, "hidden_size", "0"],
        ["hidden_size negative", null!, "hidden_size", "-64"],
        ["hidden_size huge", null!, "hidden_size", "1000000000000"],
        ["hidden_size string", null!, "hidden_size", "\"64\""],
        ["hidden_size mismatched", null!, "hidden_size", "128"],
        ["heads zero", null!, "num_attention_heads", "0"],
        ["heads not dividing kv", null!, "num_key_value_heads", "3"],
        ["kv heads over heads", null!, "num_key_value_heads", "16"],
        ["layers huge", null!, "num_hidden_layers", "100000"],
        ["layers too many for the file", null!, "num_hidden_layers", "6"],
        ["vocab mismatched", null!, "vocab_size", "1000"],
        ["vocab negative", null!, "vocab_size", "-1"],
        ["eps zero", null!, "rms_norm_eps", "0"],
        ["theta negative", null!, "rope_theta", "-5"],
        ["ffn wrong", null!, "intermediate_size", "100"],
        ["architecture unknown", null!, "architectures", "[\"GPT2LMHeadModel\"]"],
        ["tie as string", null!, "tie_word_embeddings", "\"yes\""],
        ["untied without lm_head", null!, "tie_word_embeddings", "false"],
        ["rope scaling", null!, "rope_scaling", "{\"type\": \"linear\", \"factor\": 2}"],
        ["hidden_size missing", null!, "hidden_size", null!],
    ];

    [SkippableTheory]
    [MemberData(nameof(ConfigMutations))]
    public void BadConfigJsonIsRejectedWithOneLine(string what, string? wholeText, string? key = null, string? json = null)
    {
        using var dir = CopyFolder("hf/stories260K");
        string config = dir.File("config.json");
        if (wholeText != null) File.WriteAllText(config, wholeText);
        else
        {
            var node = JsonNode.Parse(File.ReadAllText(config))!.AsObject();
            if (json == null) node.Remove(key!);
            else node[key!] = JsonNode.Parse(json);
            File.WriteAllText(config, node.ToJsonString());
        }
        var ex = Assert.Throws<InvalidModelFileException>(() => WeightSources.Open(dir.Path));
        Assert.DoesNotContain('\n', ex.Message);
        Assert.StartsWith(dir.Path, ex.Message);
        _ = what;
    }

    [SkippableFact]
    public void TruncatedConfigJsonIsRejectedOrHarmless()
    {
        using var dir = CopyFolder("hf/tiny-falcon-new-arch");
        string config = dir.File("config.json");
        var text = File.ReadAllBytes(config);
        var h = new MutationHarness();
        for (int cut = 0; cut < text.Length; cut += 7)
            h.CheckFile($"config cut at {cut}", config, MutationHarness.Truncate(text, cut), _ => WeightSources.Open(dir.Path));
        h.AssertNoFailures(minimumRejected: text.Length / 7);
    }

    [SkippableFact]
    public void FolderWithoutConfigOrWeightsIsRejected()
    {
        using var dir = CopyFolder("hf/stories260K");
        File.Delete(dir.File("model.safetensors"));
        var ex = Assert.Throws<InvalidModelFileException>(() => WeightSources.Open(dir.Path));
        Assert.Contains("no model.safetensors", ex.Message);
        File.Delete(dir.File("config.json"));
        ex = Assert.Throws<InvalidModelFileException>(() => WeightSources.Open(dir.Path));
        Assert.Contains("without config.json", ex.Message);
    }
}
