using System.Runtime.InteropServices;

namespace Runahead.Distributed;

/// <summary>
/// A received message. <see cref="Data"/> / <see cref="Bytes"/> may point straight into a shared-memory segment (the
/// sender wrote it once, nobody copies it again); <see cref="Dispose"/> gives that space back, after which the spans
/// must not be used.
/// </summary>
public sealed class ReceivedTensor : IDisposable
{
    private IMessageLease? _lease;

    internal ReceivedTensor(int source, int tag, IMessageLease lease)
    {
        Source = source;
        Tag = tag;
        _lease = lease;
    }

    public int Source { get; }

    public int Tag { get; }

    public ReadOnlySpan<byte> Bytes => (_lease ?? throw new ObjectDisposedException(nameof(ReceivedTensor))).Bytes;

    /// <summary>The payload as floats (a float message's length is always a multiple of 4 bytes).</summary>
    public ReadOnlySpan<float> Data => MemoryMarshal.Cast<byte, float>(Bytes);

    public int ByteLength => Bytes.Length;

    /// <summary>True when the payload is read where the sender wrote it (shared segment), not from a copy.</summary>
    internal bool IsInPlace => _lease?.InPlace ?? false;

    public void Dispose()
    {
        var lease = Interlocked.Exchange(ref _lease, null);
        lease?.Release();
    }
}

/// <summary>Where a received payload lives and how to give it back (a pooled array, a ring-buffer region).</summary>
internal interface IMessageLease
{
    ReadOnlySpan<byte> Bytes { get; }

    bool InPlace { get; }

    void Release();
}
