using Runahead.Formats;
using Runahead.Formats.Gguf;
using Runahead.Formats.Synthetic;
using Runahead.Models;
using Runahead.Numerics;

namespace Runahead.Tests.Perf;

/// <summary>
/// Releasing mapped weight pages (after packing, and after each embedding row is read) must never change what the
/// model reads: a released page of a file mapping is read again from the file.
/// </summary>
public sealed unsafe class MappedPagesTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("runahead-perf-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void ReleasedPagesOfAMappedFileReadBackUnchanged()
    {
        int page = Environment.SystemPageSize;
        var bytes = new byte[5 * page + 123];
        new Random(5).NextBytes(bytes);
        string path = Path.Combine(_dir, "pages.bin");
        File.WriteAllBytes(path, bytes);
        using var file = MappedFile.Open(path);
        Assert.True(file.Span(0, bytes.Length).SequenceEqual(bytes));

        bool released = MappedPages.Release(file.Base + 100, 4L * page);
        Assert.Equal(OperatingSystem.IsLinux(), released);
        Assert.True(file.Span(0, bytes.Length).SequenceEqual(bytes));

        MappedPages.ReleaseAround(file.Base + 2 * page + 7, 10, file.Base, bytes.Length);
        Assert.True(file.Span(0, bytes.Length).SequenceEqual(bytes));
    }

    [Fact]
    public void RangesWithoutAWholePageAreLeftAlone()
    {
        int page = Environment.SystemPageSize;
        var buffer = GC.AllocateArray<byte>(3 * page, pinned: true);
        buffer.AsSpan().Fill(0x5A);
        fixed (byte* p = buffer)
        {
            // Starts inside a page and ends before the next page boundary: no whole page inside, nothing released.
            byte* inside = (byte*)(((long)p + page) / page * page) + 1;
            Assert.False(MappedPages.Release(inside, page - 2));
            Assert.False(MappedPages.Release(inside, 0));
            Assert.False(MappedPages.Release(null, page));
        }
        Assert.All(buffer, b => Assert.Equal(0x5A, b));
    }

    [Fact]
    public void GgufModelReadsTheSameEmbeddingsAndLogitsAfterReleasingPages()
    {
        var config = ModelShapes.Get("tiny", ModelArchitecture.Llama);
        string path = Path.Combine(_dir, "tiny.gguf");
        SyntheticModel.Write(config, TensorType.F32, path, seed: 3);
        int[] ids = [1, 5, 9, 5, config.VocabSize - 1, 0, 7, 1];

        // The reference reads a separate mapping that nothing releases.
        using var reference = (GgufWeightSource)WeightSources.Open(path);
        Assert.True(reference.TryGetTensor("token_embd.weight", out var table));
        var expected = new float[ids.Length * config.Dim];
        int rowBytes = config.Dim * sizeof(float);
        for (int t = 0; t < ids.Length; t++)
            DType.ToFloat32(reference.GetTensorBytes(table).Slice(ids[t] * rowBytes, rowBytes), TensorType.F32, expected.AsSpan(t * config.Dim, config.Dim));

        using var model = Model.Load(path, new ModelLoadOptions { Threads = 2 });
        for (int pass = 0; pass < 2; pass++)
        {
            var hidden = new float[ids.Length * config.Dim];
            model.Embed(ids, hidden);
            Assert.Equal(expected, hidden);
        }

        var first = new float[config.VocabSize];
        var second = new float[config.VocabSize];
        model.Forward(ids, new KvCache(model.Config, ids.Length), first, model.CreateWorkspace(4));
        model.Forward(ids, new KvCache(model.Config, ids.Length), second, model.CreateWorkspace(4));
        Assert.Equal(first, second);
        Assert.All(first, v => Assert.True(float.IsFinite(v)));
    }
}
