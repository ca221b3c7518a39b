using System.Text.Json.Nodes;
using Runahead.Formats;

namespace Runahead.Tests.Formats;

public class ShardedSafetensorsTests
{
    /// <summary>stories260K split into three shards with an index, as transformers saves large checkpoints.</summary>
    private static TempDir ShardedStories(out Dictionary<string, string> weightMap)
    {
        var dir = new TempDir();
        File.Copy(Fixtures.Path("hf/stories260K/config.json"), dir.File("config.json"));
        var tensors = SafetensorsTestFiles.ReadAll(Fixtures.Path("hf/stories260K/model.safetensors"));
        weightMap = new Dictionary<string, string>();
        const int shards = 3;
        for (int s = 0; s < shards; s++)
        {
            var part = tensors.Where((_, i) => i % shards == s).ToList();
            string name = $"model-{s + 1:00000}-of-{shards:00000}.safetensors";
            File.WriteAllBytes(dir.File(name), SafetensorsTestFiles.Build(part));
            foreach (var t in part) weightMap[t.Name] = name;
        }
        WriteIndex(dir, weightMap);
        return dir;
    }

    private static void WriteIndex(TempDir dir, Dictionary<string, string> weightMap)
    {
        var map = new JsonObject();
        foreach (var (k, v) in weightMap) map[k] = v;
        var index = new JsonObject { ["metadata"] = new JsonObject { ["total_size"] = 1 }, ["weight_map"] = map };
        File.WriteAllText(dir.File("model.safetensors.index.json"), index.ToJsonString());
    }

    [SkippableFact]
    public void ShardedCheckpointLoadsTheSameTensorsAsTheSingleFile()
    {
        using var dir = ShardedStories(out _);
        using var sharded = WeightSources.Open(dir.Path);
        using var single = WeightSources.Open(Fixtures.Path("hf/stories260K"));
        Assert.Equal(single.Config, sharded.Config);
        Assert.Equal(single.Tensors.Count, sharded.Tensors.Count);
        foreach (var t in single.Tensors)
        {
            Assert.True(sharded.TryGetTensor(t.Name, out var s), t.Name);
            Assert.Equal(t.Type, s.Type);
            Assert.Equal(t.Shape, s.Shape);
            Assert.True(single.GetTensorBytes(t).SequenceEqual(sharded.GetTensorBytes(s)), t.Name);
        }
        // The index file itself is also accepted as the path.
        using var viaIndex = WeightSources.Open(dir.File("model.safetensors.index.json"));
        Assert.Equal(single.Tensors.Count, viaIndex.Tensors.Count);
    }

    [SkippableFact]
    public void IndexPointingAtAMissingShardNamesTheShard()
    {
        using var dir = ShardedStories(out _);
        File.Delete(dir.File("model-00002-of-00003.safetensors"));
        var ex = Assert.Throws<InvalidModelFileException>(() => WeightSources.Open(dir.Path));
        Assert.Contains("shard 'model-00002-of-00003.safetensors'", ex.Message);
        Assert.Contains("is missing", ex.Message);
    }

    [SkippableFact]
    public void BrokenIndexesAreRejected()
    {
        using var dir = ShardedStories(out var weightMap);
        string index = dir.File("model.safetensors.index.json");
        var h = new MutationHarness();
        var good = File.ReadAllText(index);
        foreach (var text in new[] { "", "{", "[]", "{\"weight_map\": 3}", "{\"weight_map\": {\"x\": 5}}", good[..(good.Length / 2)] })
        {
            File.WriteAllText(index, text);
            h.Check($"index '{text[..Math.Min(20, text.Length)]}'", () => WeightSources.Open(dir.Path));
        }
        var escape = new Dictionary<string, string>(weightMap) { ["model.norm.weight"] = "../../etc/passwd" };
        WriteIndex(dir, escape);
        h.Check("shard outside the folder", () => WeightSources.Open(dir.Path));
        var wrongShard = new Dictionary<string, string>(weightMap);
        wrongShard["model.norm.weight"] = wrongShard["model.norm.weight"] == "model-00001-of-00003.safetensors"
            ? "model-00002-of-00003.safetensors" : "model-00001-of-00003.safetensors";
        WriteIndex(dir, wrongShard);
        h.Check("tensor not in its shard", () => WeightSources.Open(dir.Path));
        var missingTensor = new Dictionary<string, string>(weightMap);
        missingTensor.Remove("model.layers.4.mlp.up_proj.weight");
        WriteIndex(dir, missingTensor);
        h.Check("index omits a tensor", () => WeightSources.Open(dir.Path));
        h.AssertNoFailures(minimumRejected: 9);
        Assert.Equal(0, h.Loaded);
    }
}
