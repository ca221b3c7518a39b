using Runahead.Formats;

namespace Runahead.Tests.Formats;

/// <summary>
/// Opens mutated model files and checks the only outcomes allowed: a one-line <see cref="InvalidModelFileException"/>
/// (or another <see cref="RunaheadException"/> naming the problem), or a clean load whose every tensor can be read.
/// Anything else (another exception type, a multi-line message) is collected as a failure with the mutation's name.
/// </summary>
public sealed class MutationHarness
{
    private readonly List<string> _failures = new();
    public int Rejected { get; private set; }
    public int Loaded { get; private set; }

    public void Check(string mutation, Func<IWeightSource> open)
    {
        try
        {
            using var source = open();
            long sum = 0;
            foreach (var t in source.Tensors)
            {
                var bytes = source.GetTensorBytes(t);
                if (bytes.Length != t.ByteSize) _failures.Add($"{mutation}: tensor '{t.Name}' gave {bytes.Length} bytes, expected {t.ByteSize}");
                if (bytes.Length > 0) sum += bytes[0] + bytes[^1]; // touch both ends of the mapping
            }
            _ = sum;
            Loaded++;
        }
        catch (RunaheadException e)
        {
            Rejected++;
            if (e.Message.Contains('\n') || e.Message.Contains('\r')) _failures.Add($"{mutation}: multi-line message: {e.Message}");
            if (string.IsNullOrWhiteSpace(e.Message)) _failures.Add($"{mutation}: empty message");
        }
        catch (Exception e)
        {
            _failures.Add($"{mutation}: {e.GetType().Name}: {e.Message}");
        }
    }

    /// <summary>Writes <paramref name="bytes"/> to <paramref name="path"/> and opens it with <paramref name="open"/>.</summary>
    public void CheckFile(string mutation, string path, ReadOnlySpan<byte> bytes, Func<string, IWeightSource> open)
    {
        File.WriteAllBytes(path, bytes.ToArray());
        Check(mutation, () => open(path));
    }

    public void AssertNoFailures(int minimumRejected)
    {
        Assert.True(_failures.Count == 0, $"{_failures.Count} bad outcomes:\n" + string.Join("\n", _failures.Take(30)));
        Assert.True(Rejected >= minimumRejected, $"only {Rejected} mutations were rejected ({Loaded} loaded)");
    }

    public static byte[] Truncate(byte[] data, int length) => data.AsSpan(0, length).ToArray();

    public static byte[] With(byte[] data, int offset, ReadOnlySpan<byte> patch)
    {
        var copy = (byte[])data.Clone();
        patch.CopyTo(copy.AsSpan(offset));
        return copy;
    }

    public static byte[] WithU32(byte[] data, int offset, uint v) => With(data, offset, BitConverter.GetBytes(v));
    public static byte[] WithU64(byte[] data, int offset, ulong v) => With(data, offset, BitConverter.GetBytes(v));
}
