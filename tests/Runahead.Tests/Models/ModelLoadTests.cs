using Runahead.Models;

namespace Runahead.Tests.Models;

public class ModelLoadTests
{
    [Fact]
    public void MissingTensorIsAOneLineErrorNamingTheFileAndTensor()
    {
        var src = RandomWeightSource.Create("llama");
        src.Remove("blk.1.ffn_gate.weight");
        var e = Assert.Throws<InvalidModelFileException>(() => Model.Load(src));
        Assert.Contains("random-test-model", e.Message);
        Assert.Contains("blk.1.ffn_gate.weight", e.Message);
    }

    [Fact]
    public void WrongShapeIsRejected()
    {
        var src = RandomWeightSource.Create("falcon-7b");
        src.Reshape("blk.0.attn_qkv.weight", 8, 8);
        var e = Assert.Throws<InvalidModelFileException>(() => Model.Load(src));
        Assert.Contains("blk.0.attn_qkv.weight", e.Message);
        Assert.Contains("[8, 8]", e.Message);
    }

    [Fact]
    public void TokenOutsideVocabularyAndContextOverflowAreClearErrors()
    {
        using var model = Model.Load(RandomWeightSource.Create("llama"), new ModelLoadOptions { Threads = 1 });
        var ws = model.CreateWorkspace(8);
        var logits = new float[model.Config.VocabSize];
        var e = Assert.Throws<RunaheadException>(() => model.Forward([1, 999], new KvCache(model.Config, 4), logits, ws));
        Assert.Contains("999", e.Message);
        var cache = new KvCache(model.Config, 4);
        var e2 = Assert.Throws<RunaheadException>(() => model.Forward([1, 2, 3, 4, 5], cache, logits, ws));
        Assert.Contains("capacity", e2.Message);
    }

    [Fact]
    public void ContextLengthOverrideApplies()
    {
        using var model = Model.Load(RandomWeightSource.Create("llama"), new ModelLoadOptions { ContextLength = 200 });
        Assert.Equal(200, model.Config.ContextLength);
        Assert.True(model.WeightBytes > 0);
    }

    [Fact]
    public void KvCacheLargerThanMemoryIsAClearError()
    {
        var config = RandomWeightSource.LlamaConfig with { Layers = 4000, KvHeads = 4, Heads = 4, HeadDim = 512 };
        var e = Assert.Throws<RunaheadException>(() => new KvCache(config, 500_000));
        Assert.Contains("GiB", e.Message);
    }

    [Fact]
    public void KvCacheRangesRoundTripAndBoundsAreChecked()
    {
        var config = RandomWeightSource.LlamaConfig;
        var cache = new KvCache(config, 6);
        var k = new float[2 * config.KvDim];
        var v = new float[2 * config.KvDim];
        for (int i = 0; i < k.Length; i++) { k[i] = i; v[i] = -i; }
        cache.ImportRange(1, 3, k, v);
        var k2 = new float[k.Length];
        var v2 = new float[v.Length];
        cache.ExportRange(1, 3, 2, k2, v2);
        Assert.Equal(k, k2);
        Assert.Equal(v, v2);
        Assert.Throws<ArgumentOutOfRangeException>(() => cache.Keys(0, 5, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => cache.SetLength(7));
        cache.SetLength(5);
        cache.EnsureCapacity(10);
        Assert.Equal(10, cache.Capacity);
        cache.ExportRange(1, 3, 2, k2, v2);
        Assert.Equal(k, k2);
    }
}
