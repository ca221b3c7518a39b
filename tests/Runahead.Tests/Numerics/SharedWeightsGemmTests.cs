using Runahead.Formats;
using Runahead.Models;
using Runahead.Numerics;

namespace Runahead.Tests.Numerics;

/// <summary>Weights run from a mapped packed-weight cache exactly as from their private panels.</summary>
public sealed class SharedWeightsGemmTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("runahead-sharedgemm-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Theory]
    [InlineData(TensorType.F32)]
    [InlineData(TensorType.F16)]
    [InlineData(TensorType.BF16)]
    [InlineData(TensorType.Q8_0)]
    public void MappedPanelsGiveBitIdenticalProducts(TensorType type)
    {
        // 70 outputs: a partial last panel; 96 inputs: whole Q8_0 blocks.
        const int outF = 70, inF = 96;
        var stored = StoredWeight(type, outF, inF, seed: 3);
        var privateWeight = LinearWeight.FromStored(stored, type, outF, inF);
        var path = Path.Combine(_folder, $"w-{type}.rapanels");
        var temp = path + ".tmp";
        var writer = new PackedWeightWriter(temp, "key");
        // A second weight first, so the tested one starts at a non-zero aligned offset.
        writer.Append("other", LinearWeight.FromStored(StoredWeight(type, 33, inF, seed: 4), type, 33, inF));
        var mapped = writer.Append("w", LinearWeight.FromStored(stored, type, outF, inF));
        writer.Finish();
        File.Move(temp, path);
        writer.Mapping.Bind(path);
        using var mapping = writer.Mapping;

        Assert.True(mapped.IsMapped);
        Assert.False(privateWeight.IsMapped);
        Assert.Equal(privateWeight.MemoryBytes, mapped.MemoryBytes);
        using var pool = new ComputePool(2);
        var rng = new Random(5);
        foreach (int tokens in new[] { 1, 3, 40 })
        {
            var x = new float[tokens * inF];
            for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
            var expected = new float[tokens * outF];
            var actual = new float[tokens * outF];
            privateWeight.Forward(x, tokens, expected, pool);
            mapped.Forward(x, tokens, actual, pool);
            Assert.Equal(BitConverter.SingleToInt32Bits(expected[0]), BitConverter.SingleToInt32Bits(actual[0]));
            Assert.True(expected.AsSpan().SequenceEqual(actual), $"{type}, {tokens} tokens: mapped product differs");
        }

        // The file read back through the validating table gives the same weight again.
        using var reopened = MappedPanels.Open(path);
        var table = PackedWeightTable.Read(reopened, "key", out var reason);
        Assert.True(table is not null, reason);
        var again = table!.Get("w", type, outF, inF);
        var x1 = new float[inF];
        x1.AsSpan().Fill(0.25f);
        var y1 = new float[outF];
        var y2 = new float[outF];
        privateWeight.Forward(x1, 1, y1, pool);
        again.Forward(x1, 1, y2, pool);
        Assert.True(y1.AsSpan().SequenceEqual(y2));
    }

    [Fact]
    public void PanelsStartOnAlignedOffsetsOfThePageAlignedMapping()
    {
        var path = Path.Combine(_folder, "aligned.rapanels");
        var writer = new PackedWeightWriter(path + ".tmp", "k");
        for (int i = 0; i < 3; i++) writer.Append($"w{i}", LinearWeight.FromFloat32(new float[5 * 7], 5, 7));
        writer.Finish();
        File.Move(path + ".tmp", path);
        using var mapping = MappedPanels.Open(path);
        var table = PackedWeightTable.Read(mapping, "k", out var reason);
        Assert.True(table is not null, reason);
        Assert.Equal(3, table!.Count);
        Assert.Throws<ArgumentOutOfRangeException>(() => LinearWeight.FromMapped(mapping, 100, PanelType.F32, 5, 7, TensorType.F32));
    }

    [Fact]
    public void AWeightOverADisposedMappingThrowsInsteadOfReadingUnmappedMemory()
    {
        var path = Path.Combine(_folder, "disposed.rapanels");
        var writer = new PackedWeightWriter(path + ".tmp", "k");
        var w = writer.Append("w", LinearWeight.FromFloat32(new float[32 * 8], 32, 8));
        using (var unboundPool = new ComputePool(1))
            Assert.Throws<InvalidOperationException>(() => w.Forward(new float[8], 1, new float[32], unboundPool));
        writer.Finish();
        File.Move(path + ".tmp", path);
        writer.Mapping.Bind(path);
        using var pool = new ComputePool(1);
        w.Forward(new float[8], 1, new float[32], pool);
        writer.Mapping.Dispose();
        Assert.Throws<ObjectDisposedException>(() => w.Forward(new float[8], 1, new float[32], pool));
    }

    [Fact]
    public void PanelHashSeesEveryByteAndEveryLength()
    {
        var data = new byte[1000];
        new Random(1).NextBytes(data);
        ulong h = PanelHash.Of(data);
        Assert.Equal(h, PanelHash.Of(data.ToArray()));
        for (int i = 0; i < data.Length; i += 37)
        {
            data[i] ^= 1;
            Assert.NotEqual(h, PanelHash.Of(data));
            data[i] ^= 1;
        }
        Assert.NotEqual(PanelHash.Of(data.AsSpan(0, 999)), PanelHash.Of(data.AsSpan(0, 998)));
        Assert.NotEqual(PanelHash.Of(new byte[8]), PanelHash.Of(new byte[16]));
    }

    private static byte[] StoredWeight(TensorType type, int outF, int inF, int seed) => TestData.Stored(type, outF, inF, seed);
}
