using Runahead.Formats;
using Runahead.Formats.Synthetic;
using Runahead.Models;
using Runahead.Prefill;

namespace Runahead.Tests.Models;

/// <summary>Model loads through the packed-weight cache: same outputs, rebuilt when damaged or stale, safe under races.</summary>
public sealed class SharedWeightsTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("runahead-sharedweights-").FullName;
    private readonly string _cache;

    public SharedWeightsTests() => _cache = Path.Combine(_root, "cache");

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private string WriteModel(string name = "tiny", TensorType type = TensorType.F32, bool tied = false, ulong seed = 7, bool larger = false)
    {
        var path = Path.Combine(_root, $"{name}-{type}-{(tied ? "tied" : "untied")}-{seed}{(larger ? "-larger" : "")}.gguf");
        var config = ModelShapes.Get("tiny") with { TiedEmbeddings = tied };
        // About 20 MB of F32 weights: packing and writing take long enough for concurrent loaders to meet at the lock.
        if (larger) config = config with { Dim = 256, HeadDim = 64, FfnDim = 1024, Layers = 4, VocabSize = 2048 };
        SyntheticModel.Write(config, type, path, seed);
        return path;
    }

    private ModelLoadOptions Shared(TimeSpan? lockTimeout = null) => new()
    {
        Threads = 1,
        SharedWeights = true,
        SharedWeightsFolder = _cache,
        SharedWeightsLockTimeout = lockTimeout ?? TimeSpan.FromSeconds(60),
    };

    private static float[] Logits(Model model)
    {
        int[] ids = [1, 5, 9, 200, 17, 3, 44, 101];
        var logits = new float[ids.Length * model.Config.VocabSize];
        model.Forward(ids, new KvCache(model.Config, 16), logits, model.CreateWorkspace(4), allLogits: true);
        return logits;
    }

    private static float[] PrivateLogits(string path)
    {
        using var model = Model.Load(path, new ModelLoadOptions { Threads = 1 });
        Assert.Null(model.SharedWeights);
        return Logits(model);
    }

    [Theory]
    [InlineData(TensorType.F32, false)]
    [InlineData(TensorType.BF16, true)]
    [InlineData(TensorType.Q8_0, false)]
    public void OutputsWithTheCacheEqualOutputsWithout(TensorType type, bool tied)
    {
        var path = WriteModel(type: type, tied: tied);
        var expected = PrivateLogits(path);
        using (var built = Model.Load(path, Shared()))
        {
            Assert.Equal(new SharedWeightsStatus(true, PackedWeightCache.CachePath(path, _cache), true, null), built.SharedWeights);
            Assert.True(built.Layers[0].WeightBytes > 0);
            Assert.True(expected.AsSpan().SequenceEqual(Logits(built)), "the builder's outputs differ");
        }
        using var mapped = Model.Load(path, Shared());
        Assert.True(mapped.SharedWeights is { Mapped: true, BuiltHere: false, Note: null }, mapped.SharedWeights?.ToString());
        Assert.True(expected.AsSpan().SequenceEqual(Logits(mapped)), "a mapping process's outputs differ");
    }

    [Theory]
    [InlineData("flip a panel byte", "corrupt")]
    [InlineData("truncate", "truncated")]
    [InlineData("append", "appended")]
    [InlineData("garbage", "bad magic")]
    [InlineData("empty", "")]
    [InlineData("flip a table byte", "table")]
    [InlineData("flip a header byte", "header")]
    public void ADamagedCacheIsDetectedAndRebuilt(string damage, string reasonPart)
    {
        var path = WriteModel();
        var expected = PrivateLogits(path);
        string cachePath;
        using (var first = Model.Load(path, Shared())) cachePath = first.SharedWeights!.CachePath!;
        var bytes = File.ReadAllBytes(cachePath);
        switch (damage)
        {
            case "flip a panel byte": bytes[PackedWeightCache.PanelAlignment + 100] ^= 0x40; break;
            case "truncate": bytes = bytes[..(bytes.Length - 1000)]; break;
            case "append": bytes = [.. bytes, 1, 2, 3]; break;
            case "garbage": new Random(1).NextBytes(bytes); break;
            case "empty": bytes = []; break;
            case "flip a table byte": bytes[^20] ^= 1; break;
            case "flip a header byte": bytes[20] ^= 1; break;
        }
        File.WriteAllBytes(cachePath, bytes);

        using var model = Model.Load(path, Shared());
        var status = model.SharedWeights!;
        Assert.True(status is { Mapped: true, BuiltHere: true }, status.ToString());
        Assert.NotNull(status.Note);
        Assert.Contains(reasonPart, status.Note);
        Assert.True(expected.AsSpan().SequenceEqual(Logits(model)));
        // The rebuilt file is valid again: the next load maps it.
        using var next = Model.Load(path, Shared());
        Assert.True(next.SharedWeights is { Mapped: true, BuiltHere: false }, next.SharedWeights?.ToString());
    }

    [Fact]
    public void AStaleCacheIsNeverUsed()
    {
        var path = WriteModel(seed: 7);
        string firstCache;
        using (var first = Model.Load(path, Shared())) firstCache = first.SharedWeights!.CachePath!;
        // Same path, new contents (another seed, another time stamp): another key, so another file.
        File.Delete(path);
        SyntheticModel.Write(ModelShapes.Get("tiny"), TensorType.F32, path, seed: 8);
        File.SetLastWriteTimeUtc(path, DateTime.UtcNow.AddMinutes(1));
        var expected = PrivateLogits(path);
        using (var model = Model.Load(path, Shared()))
        {
            Assert.True(model.SharedWeights is { BuiltHere: true }, model.SharedWeights?.ToString());
            Assert.NotEqual(firstCache, model.SharedWeights!.CachePath);
            Assert.True(expected.AsSpan().SequenceEqual(Logits(model)));
        }
        // The superseded cache of the old file (as big as the packed weights) is deleted, with its lock file.
        Assert.False(File.Exists(firstCache));
        Assert.False(File.Exists(firstCache + ".lock"));

        // A valid cache of another model placed under this model's name is rejected by its stored key.
        var other = WriteModel(seed: 9);
        string otherCache;
        using (var o = Model.Load(other, Shared())) otherCache = o.SharedWeights!.CachePath!;
        string thisCache = PackedWeightCache.CachePath(path, _cache)!;
        File.Copy(otherCache, thisCache, overwrite: true);
        using var again = Model.Load(path, Shared());
        Assert.True(again.SharedWeights is { BuiltHere: true }, again.SharedWeights?.ToString());
        Assert.Contains("stale", again.SharedWeights!.Note);
        Assert.True(expected.AsSpan().SequenceEqual(Logits(again)));
    }

    [Fact]
    public void ConcurrentLoadsBuildOnceAndAllMapTheSameValidFile()
    {
        var path = WriteModel(larger: true);
        var expected = PrivateLogits(path);
        const int loaders = 4;
        var models = new Model[loaders];
        using var start = new Barrier(loaders);
        var threads = new Thread[loaders];
        for (int i = 0; i < loaders; i++)
        {
            int index = i;
            threads[i] = new Thread(() =>
            {
                start.SignalAndWait(TimeSpan.FromSeconds(30));
                models[index] = Model.Load(path, Shared());
            });
            threads[i].Start();
        }
        foreach (var t in threads) Assert.True(t.Join(TimeSpan.FromSeconds(60)), "a concurrent load hung");
        try
        {
            int built = 0;
            foreach (var m in models)
            {
                Assert.True(m.SharedWeights is { Mapped: true }, m.SharedWeights?.ToString());
                if (m.SharedWeights!.BuiltHere) built++;
                Assert.True(expected.AsSpan().SequenceEqual(Logits(m)));
            }
            Assert.Equal(1, built);
            Assert.Empty(Directory.GetFiles(_cache, "*.tmp"));
        }
        finally
        {
            foreach (var m in models) m?.Dispose();
        }
    }

    [Fact]
    public void ABuilderHoldingTheLockTooLongMakesOthersPackPrivately()
    {
        var path = WriteModel();
        var expected = PrivateLogits(path);
        Directory.CreateDirectory(_cache);
        var cachePath = PackedWeightCache.CachePath(path, _cache)!;
        using (new FileStream(cachePath + ".lock", FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None))
        {
            using var model = Model.Load(path, Shared(TimeSpan.FromMilliseconds(200)));
            Assert.True(model.SharedWeights is { Mapped: false }, model.SharedWeights?.ToString());
            Assert.Contains("another process held", model.SharedWeights!.Note);
            Assert.True(expected.AsSpan().SequenceEqual(Logits(model)));
        }
        Assert.False(File.Exists(cachePath));
    }

    [Fact]
    public void AnUnusableFolderOrAnInMemorySourceFallsBackToPrivateWeights()
    {
        var path = WriteModel();
        var expected = PrivateLogits(path);
        var notAFolder = Path.Combine(_root, "file");
        File.WriteAllText(notAFolder, "x");
        using (var model = Model.Load(path, Shared() with { SharedWeightsFolder = Path.Combine(notAFolder, "sub") }))
        {
            Assert.True(model.SharedWeights is { Mapped: false }, model.SharedWeights?.ToString());
            Assert.Contains("cache folder", model.SharedWeights!.Note);
            Assert.True(expected.AsSpan().SequenceEqual(Logits(model)));
        }
        using var memory = Model.Load(RandomWeightSource.Create("llama"), Shared());
        Assert.True(memory.SharedWeights is { Mapped: false }, memory.SharedWeights?.ToString());
        Assert.Contains("not a file", memory.SharedWeights!.Note);
    }

    [Fact]
    public void RankWorkersShareWeightsUnlessTheCoordinatorSaysOff()
    {
        Assert.Equal((null, true), PrefillRankProgram.Parse(PrefillRankProgram.Arguments(null)));
        Assert.Equal((128, true), PrefillRankProgram.Parse(PrefillRankProgram.Arguments(128)));
        Assert.Equal((128, false), PrefillRankProgram.Parse(PrefillRankProgram.Arguments(128, sharedWeights: false)));
        Assert.Equal((null, false), PrefillRankProgram.Parse(PrefillRankProgram.Arguments(null, sharedWeights: false)));
        Assert.Throws<RunaheadException>(() => PrefillRankProgram.Parse("context-length=x"));
    }
}
