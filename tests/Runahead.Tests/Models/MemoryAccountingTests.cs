using Runahead.Diagnostics;
using Runahead.Formats;
using Runahead.Formats.Gguf;
using Runahead.Formats.Synthetic;
using Runahead.Models;

namespace Runahead.Tests.Models;

/// <summary>
/// The figures `bench prefill` reports against peak memory (workspace, KV cache) must be what is really allocated,
/// and a loaded GGUF model must not keep the file pages its weights were packed from. Allocation counts per thread
/// and the kernel's page tables are exact, so these are deterministic (no RSS thresholds of the whole process).
/// </summary>
public sealed class MemoryAccountingTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("runahead-memory-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    public static TheoryData<ModelArchitecture, bool> Shapes => new()
    {
        { ModelArchitecture.Llama, false },
        { ModelArchitecture.Falcon, false },
        { ModelArchitecture.Falcon, true },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void WorkspaceBytesAreWhatItAllocates(ModelArchitecture architecture, bool parallelAttention)
    {
        var config = ModelShapes.Get("tiny", architecture) with { ParallelAttention = parallelAttention };
        bool fused = architecture == ModelArchitecture.Falcon, gated = architecture == ModelArchitecture.Llama;
        foreach (int tokens in new[] { 1, 7, 64, 333 })
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            var ws = new ForwardWorkspace(config, tokens, fused, gated);
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            // Object and array headers are the only difference.
            Assert.InRange(allocated - ws.Bytes, 0, 512);

            // Shared storage: four arrays of [tokens, width] (the products add the attention projection and the MLP
            // output to the hidden rows, so Falcon's parallel attention needs no fifth).
            int wideA = Math.Max(config.QDim, Math.Max(fused ? config.QDim + 2 * config.KvDim : 0, gated ? config.FfnDim : 0));
            int wideB = Math.Max(config.QDim, config.FfnDim);
            long expected = 4L * tokens * (2 * config.Dim + wideA + wideB);
            Assert.Equal(expected, ws.Bytes);
            GC.KeepAlive(ws);
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(100)]
    [InlineData(512)]
    public void KvCacheBytesAreWhatItAllocates(int capacity)
    {
        var config = ModelShapes.Get("tiny");
        long before = GC.GetAllocatedBytesForCurrentThread();
        var cache = new KvCache(config, capacity);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(2L * config.Layers * capacity * config.KvDim * sizeof(float), cache.Bytes);
        Assert.InRange(allocated - cache.Bytes, 0, 1024);
        GC.KeepAlive(cache);
    }

    [SkippableFact]
    public void LoadedGgufModelKeepsNoWeightPagesOfTheFileResident()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "reads /proc/self/smaps");
        // About 40 MiB of F32 tensors: every matrix is read once to be packed, so without releasing the pages the
        // mapping would be resident in full.
        var config = ModelShapes.Get("tiny") with { Dim = 512, Heads = 8, KvHeads = 4, HeadDim = 64, FfnDim = 1536, Layers = 3, VocabSize = 4096 };
        string path = Path.Combine(_dir, "model.gguf");
        SyntheticModel.Write(config, TensorType.F32, path, seed: 21);
        using var model = Model.Load(path, new ModelLoadOptions { Threads = 1 });
        long tensorBytes = model.SourceTensorBytes;
        Assert.True(tensorBytes > 32L << 20, $"{tensorBytes} bytes of tensors");

        // Load ends by giving back every page of the file (header, norm vectors and what their reads mapped): at most
        // the partial last page stays.
        Assert.InRange(ProcessMemory.Read(path).MappedFileRssBytes, 0, 1L << 20);

        // Embedding a prompt reads rows of the mapped table and gives their pages back too (each read may map a large
        // page-cache folio of up to 2 MiB around the row, so a few MiB may stay).
        var ids = new int[64];
        for (int i = 0; i < ids.Length; i++) ids[i] = i * 61 % config.VocabSize;
        model.Embed(ids, new float[ids.Length * config.Dim]);
        Assert.InRange(ProcessMemory.Read(path).MappedFileRssBytes, 0, tensorBytes / 4);
    }

    [Fact]
    public void LargeGgufMetadataArraysAreDecodedOnAccessNotHeld()
    {
        var tokens = new string[GgufFile.LazyArrayLength + 5];
        for (int i = 0; i < tokens.Length; i++) tokens[i] = "t" + i;
        var w = new GgufWriter();
        w.AddStringArray("tokenizer.ggml.tokens", tokens);
        w.AddStringArray("small", ["a", "b"]);
        string path = Path.Combine(_dir, "vocab.gguf");
        w.Write(path);

        var file = GgufFile.Open(path);
        var first = file.GetArray<string>("tokenizer.ggml.tokens");
        var second = (string[])file.Metadata["tokenizer.ggml.tokens"];
        Assert.Equal(tokens, first);
        Assert.Equal(tokens, second);
        // A new array each time: the file holds only where the array is.
        Assert.NotSame(first, second);
        Assert.Same(file.Metadata["small"], file.Metadata["small"]);
        Assert.Equal(["tokenizer.ggml.tokens", "small"], file.Metadata.Keys);
        Assert.Equal(tokens, (string[])file.Metadata.First(kv => kv.Key == "tokenizer.ggml.tokens").Value);

        file.Dispose();
        Assert.Throws<ObjectDisposedException>(() => file.Metadata["tokenizer.ggml.tokens"]);
        Assert.Equal(["a", "b"], (string[])file.Metadata["small"]);
    }

    [Fact]
    public void SmapsAndStatusAreParsedPerMapping()
    {
        string[] smaps =
        [
            "55d0a0000000-55d0a0001000 r--p 00000000 fd:01 123 /opt/my model.gguf",
            "Size:                  4 kB",
            "Rss:                   8 kB",
            "7f0000000000-7f0000100000 rw-p 00000000 00:00 0 ",
            "Rss:                1024 kB",
            "7f0000100000-7f0000200000 r-xp 00000000 fd:01 77 /usr/lib/libc.so.6",
            "Rss:                  12 kB",
            "AnonHugePages:         0 kB",
            "7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0                          [stack]",
            "Rss:                  16 kB",
            "7f0000300000-7f0000400000 r--s 00000000 00:01 9 /memfd:doublemapper (deleted)",
            "Rss:                 100 kB",
            "VmFlags: rd mr mw me sd",
        ];
        var (mapped, other, stack) = ProcessMemory.ParseSmaps(smaps, "/opt/my model.gguf");
        Assert.Equal(8 * 1024, mapped);
        Assert.Equal((12 + 100) * 1024, other);
        Assert.Equal(16 * 1024, stack);

        var status = ProcessMemory.ParseStatus(["Name:\trunahead", "VmHWM:\t  600 kB", "RssAnon:\t 3 kB", "Threads:\t12"]);
        Assert.Equal(600 * 1024, status["VmHWM"]);
        Assert.Equal(3 * 1024, status["RssAnon"]);
        Assert.Equal(12, status["Threads"]);
        Assert.False(status.ContainsKey("Name"));

        // smaps_rollup: the same field format under a mapping-style header line, which must not become a field.
        var rollup = ProcessMemory.ParseStatus(["56121b1b1000-7ffc3a0fc000 ---p 00000000 00:00 0      [rollup]", "Rss:   1784 kB", "Pss:  372 kB", "Shared_Clean:  1596 kB"]);
        Assert.Equal(3, rollup.Count);
        Assert.Equal(1784 * 1024, rollup["Rss"]);
        Assert.Equal(372 * 1024, rollup["Pss"]);
        Assert.Equal(1596 * 1024, rollup["Shared_Clean"]);
        if (OperatingSystem.IsLinux()) Assert.True(ProcessMemory.ReadSmapsRollup()["Rss"] > 0);
    }
}
