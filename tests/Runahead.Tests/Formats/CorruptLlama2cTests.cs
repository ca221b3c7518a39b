using Runahead.Formats;

namespace Runahead.Tests.Formats;

public class CorruptLlama2cTests
{
    [SkippableFact]
    public void HostileHeadersAndTruncationsAreRejected()
    {
        var data = File.ReadAllBytes(Fixtures.Path("llama2c/stories260K.bin"));
        using var dir = new TempDir();
        string path = dir.File("m.bin");
        var h = new MutationHarness();
        Func<string, IWeightSource> open = WeightSources.Open;
        string[] fields = ["dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"];
        for (int f = 0; f < 7; f++)
        {
            int original = BitConverter.ToInt32(data, f * 4);
            foreach (int v in new[] { 0, -1, 1, 3, original - 1, original + 1, original * 2, -original, int.MaxValue, int.MinValue, 1 << 20, 0x616b3432 })
                h.CheckFile($"{fields[f]} = {v}", path, MutationHarness.WithU32(data, f * 4, (uint)v), open);
        }
        // Every tensor boundary (the shared classifier means the file ends after the RoPE tables).
        using (var real = WeightSources.Open(Fixtures.Path("llama2c/stories260K.bin")))
        {
            long offset = 28;
            foreach (var t in real.Tensors)
            {
                foreach (long cut in new[] { offset - 1, offset, offset + 1 })
                    h.CheckFile($"truncated at {cut} ({t.Name})", path, MutationHarness.Truncate(data, (int)cut), open);
                offset += t.ByteSize;
            }
        }
        var rng = new Random(5);
        for (int i = 0; i < 40; i++)
        {
            int cut = rng.Next(0, data.Length);
            h.CheckFile($"truncated at {cut}", path, MutationHarness.Truncate(data, cut), open);
        }
        var longer = new byte[data.Length + 4];
        data.CopyTo(longer, 0);
        h.CheckFile("4 bytes appended", path, longer, open);
        h.AssertNoFailures(minimumRejected: 150);
    }

    [SkippableFact]
    public void TruncationMessageNamesTheSizes()
    {
        var data = File.ReadAllBytes(Fixtures.Path("llama2c/stories260K.bin"));
        using var dir = new TempDir();
        string path = dir.File("cut.bin");
        File.WriteAllBytes(path, data.AsSpan(0, 1000).ToArray());
        var ex = Assert.Throws<InvalidModelFileException>(() => WeightSources.Open(path));
        Assert.Equal($"{path}: file is truncated: the header implies 1056540 bytes but the file has 1000", ex.Message);
    }

    [SkippableFact]
    public void UnsharedClassifierReadsTheExtraMatrix()
    {
        // Flip the sign of vocab_size and append a classifier: llama2.c's layout for an unshared output.
        var data = File.ReadAllBytes(Fixtures.Path("llama2c/stories260K.bin"));
        using var dir = new TempDir();
        string path = dir.File("unshared.bin");
        var bytes = new byte[data.Length + 512 * 64 * 4];
        data.CopyTo(bytes, 0);
        BitConverter.GetBytes(-512).CopyTo(bytes, 20);
        for (int i = data.Length; i < bytes.Length; i++) bytes[i] = (byte)(i * 7);
        File.WriteAllBytes(path, bytes);
        using var s = WeightSources.Open(path);
        Assert.False(s.Config.TiedEmbeddings);
        Assert.True(s.TryGetTensor("output.weight", out var o));
        Assert.True(s.GetTensorBytes(o).SequenceEqual(bytes.AsSpan(data.Length)));
    }
}
