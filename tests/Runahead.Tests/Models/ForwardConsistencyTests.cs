using Runahead.Models;
using Runahead.Numerics;

namespace Runahead.Tests.Models;

/// <summary>
/// The forward pass gives the same logits however the tokens are grouped: all at once, one by one through the KV
/// cache, in arbitrary chunks, or driven layer by layer by hand with a prefix exported from one cache and imported
/// into another (the way the parallel prefill strategies drive it).
/// </summary>
public class ForwardConsistencyTests
{
    public static TheoryData<string> Kinds => new() { "llama", "llama-bias", "falcon-7b", "falcon-new", "falcon-seq" };

    private static int[] Ids(int n, int vocab)
    {
        var rng = new Random(7);
        var ids = new int[n];
        for (int i = 0; i < n; i++) ids[i] = rng.Next(vocab);
        return ids;
    }

    private static float[] AllLogits(Model model, int[] ids, int maxTokens)
    {
        var ws = model.CreateWorkspace(maxTokens);
        var cache = new KvCache(model.Config, ids.Length);
        var logits = new float[ids.Length * model.Config.VocabSize];
        model.Forward(ids, cache, logits, ws, allLogits: true);
        Assert.Equal(ids.Length, cache.Length);
        return logits;
    }

    private static void AssertClose(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, float tol)
    {
        Assert.Equal(expected.Length, actual.Length);
        float worst = 0; int at = -1;
        for (int i = 0; i < expected.Length; i++)
        {
            float d = MathF.Abs(expected[i] - actual[i]);
            if (!(d <= worst)) { worst = d; at = i; }
        }
        Assert.True(worst <= tol, $"max |diff| {worst} at {at} exceeds {tol}");
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void BatchedPrefillEqualsTokenByToken(string kind)
    {
        using var model = Model.Load(RandomWeightSource.Create(kind), new ModelLoadOptions { Threads = 2 });
        int vocab = model.Config.VocabSize;
        var ids = Ids(23, vocab);
        var batched = AllLogits(model, ids, 64);

        var ws = model.CreateWorkspace(1);
        var cache = new KvCache(model.Config, ids.Length);
        var stepped = new float[ids.Length * vocab];
        for (int t = 0; t < ids.Length; t++)
            model.Forward(ids.AsSpan(t, 1), cache, stepped.AsSpan(t * vocab, vocab), ws);
        AssertClose(batched, stepped, 1e-5f);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void ArbitraryChunksThroughTheCacheEqualOneBatch(string kind)
    {
        using var model = Model.Load(RandomWeightSource.Create(kind), new ModelLoadOptions { Threads = 1 });
        int vocab = model.Config.VocabSize;
        var ids = Ids(29, vocab);
        var batched = AllLogits(model, ids, 64);

        // Workspace chunking inside one call...
        AssertClose(batched, AllLogits(model, ids, 4), 1e-5f);

        // ...and uneven calls through the cache.
        var ws = model.CreateWorkspace(16);
        var cache = new KvCache(model.Config, 40);
        var chunked = new float[ids.Length * vocab];
        int done = 0;
        foreach (int size in new[] { 5, 1, 11, 3, 9 })
        {
            model.Forward(ids.AsSpan(done, size), cache, chunked.AsSpan(done * vocab, size * vocab), ws, allLogits: true);
            done += size;
        }
        Assert.Equal(ids.Length, done);
        AssertClose(batched, chunked, 1e-5f);

        // Last-token logits equal the last row of all logits.
        var last = new float[vocab];
        model.Forward(ids, new KvCache(model.Config, ids.Length), last, ws);
        AssertClose(batched.AsSpan((ids.Length - 1) * vocab), last, 1e-5f);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void LayersDrivenByHandWithImportedPrefixEqualForward(string kind)
    {
        using var model = Model.Load(RandomWeightSource.Create(kind), new ModelLoadOptions { Threads = 2 });
        var c = model.Config;
        int vocab = c.VocabSize, dim = c.Dim, kvDim = c.KvDim;
        var ids = Ids(20, vocab);
        var expected = AllLogits(model, ids, 64);

        // "Rank 0" runs the first 12 tokens through its own cache, "rank 1" gets that prefix as exported rows and
        // runs the last 8 tokens layer by layer with ComputeQkv / Finish.
        const int split = 12;
        var ws0 = model.CreateWorkspace(split);
        var cache0 = new KvCache(c, split);
        model.Forward(ids.AsSpan(0, split), cache0, new float[vocab], ws0);

        int own = ids.Length - split;
        var ws = model.CreateWorkspace(own);
        var hidden = new float[own * dim];
        model.Embed(ids.AsSpan(split), hidden);
        var q = new float[own * c.QDim];
        var keys = new float[ids.Length * kvDim];
        var values = new float[ids.Length * kvDim];
        var cache1 = new KvCache(c, ids.Length);
        foreach (var layer in model.Layers)
        {
            cache0.ExportRange(layer.Index, 0, split, keys.AsSpan(0, split * kvDim), values.AsSpan(0, split * kvDim));
            layer.ComputeQkv(hidden, own, split, q, keys.AsSpan(split * kvDim), values.AsSpan(split * kvDim), ws);
            layer.Finish(hidden, own, q, keys, values, split, ids.Length, ws);
            cache1.ImportRange(layer.Index, 0, keys, values);
        }
        cache1.SetLength(ids.Length);
        var logits = new float[own * vocab];
        model.Logits(hidden, own, logits, ws);
        AssertClose(expected.AsSpan(split * vocab), logits, 1e-5f);

        // The imported cache continues decoding exactly like one filled by Forward.
        var next = new float[vocab];
        var reference = new float[vocab];
        var cacheRef = new KvCache(c, ids.Length + 1);
        model.Forward(ids, cacheRef, new float[vocab], ws0);
        model.Forward([3], cacheRef, reference, ws0);
        cache1.EnsureCapacity(ids.Length + 1);
        model.Forward([3], cache1, next, ws0);
        AssertClose(reference, next, 1e-5f);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void DenseThenMaskEqualsPrefixCausal(string kind)
    {
        // TSP computes a chunk's queries against all C keys and masks; the result must not change.
        using var model = Model.Load(RandomWeightSource.Create(kind), new ModelLoadOptions { Threads = 1 });
        var c = model.Config;
        var ids = Ids(10, c.VocabSize);
        var ws = model.CreateWorkspace(10);
        var cache = new KvCache(c, 10);
        model.Forward(ids, cache, new float[c.VocabSize], ws);

        var h1 = new float[4 * c.Dim];
        model.Embed(ids.AsSpan(3, 4), h1);
        var h2 = (float[])h1.Clone();
        var layer = model.Layers[0];
        var q = new float[4 * c.QDim];
        layer.ComputeQkv(h1, 4, 3, q, new float[4 * c.KvDim], new float[4 * c.KvDim], ws);
        var keys = cache.Keys(0, 0, 10).ToArray();
        var values = cache.Values(0, 0, 10).ToArray();
        layer.Finish(h1, 4, q, keys.AsSpan(0, 7 * c.KvDim), values.AsSpan(0, 7 * c.KvDim), 3, 7, ws);
        layer.Finish(h2, 4, q, keys, values, 3, 10, ws, AttentionMask.DenseThenMask);
        AssertClose(h1, h2, 1e-5f);
    }

    [Fact]
    public void ConcurrentCallersWithTheirOwnWorkspacesGetTheSerialResults()
    {
        // In-process ranks share one model and pool; each brings its own workspace and cache.
        using var model = Model.Load(RandomWeightSource.Create("falcon-new"), new ModelLoadOptions { Threads = 2 });
        int vocab = model.Config.VocabSize;
        var prompts = Enumerable.Range(0, 4).Select(i => Ids(12 + 5 * i, vocab).Select(x => (x + i) % vocab).ToArray()).ToArray();
        var serial = prompts.Select(p => AllLogits(model, p, 8)).ToArray();
        var parallel = new float[prompts.Length][];
        Parallel.For(0, prompts.Length, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i =>
        {
            for (int repeat = 0; repeat < 3; repeat++) parallel[i] = AllLogits(model, prompts[i], 8);
        });
        for (int i = 0; i < prompts.Length; i++) AssertClose(serial[i], parallel[i], 1e-5f);
    }
}
