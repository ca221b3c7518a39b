using System.Buffers.Binary;

namespace Runahead.Distributed;

/// <summary>Kinds of frames between the coordinator and a worker over the worker's stdin/stdout pipes.</summary>
internal enum ControlKind : byte
{
    Launch = 1,     // coordinator -> worker: RankLaunchSettings
    Job = 2,        // coordinator -> worker: request bytes
    Shutdown = 3,   // coordinator -> worker
    Ready = 10,     // worker -> coordinator: double seconds spent in InitializeAsync
    Emit = 11,      // worker -> coordinator: streamed message of a job
    Reply = 12,     // worker -> coordinator: the job's reply
    Error = 13,     // worker -> coordinator: int failed rank + UTF-8 message
}

internal readonly record struct ControlFrame(ControlKind Kind, int JobId, byte[] Payload);

/// <summary>
/// Length-prefixed frames on a pipe: [kind:1][job:4][length:4][payload]. Pipes, not sockets: nothing listens on a port,
/// and a dead coordinator closes the worker's stdin, which the worker sees as end of stream.
/// </summary>
internal sealed class ControlChannel(Stream input, Stream output)
{
    private const int MaxPayload = 1 << 30;
    private readonly SemaphoreSlim _writeLock = new(1, 1);

    /// <summary>The next frame, or null at end of stream.</summary>
    public async Task<ControlFrame?> ReadAsync(CancellationToken ct)
    {
        var header = new byte[9];
        if (!await ReadExactlyOrEndAsync(header, ct).ConfigureAwait(false)) return null;
        int length = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(5));
        if (length < 0 || length > MaxPayload) throw new InvalidDataException($"control frame of {length} bytes");
        var payload = new byte[length];
        if (length > 0 && !await ReadExactlyOrEndAsync(payload, ct).ConfigureAwait(false))
            throw new EndOfStreamException("control pipe closed inside a frame");
        return new ControlFrame((ControlKind)header[0], BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(1)), payload);
    }

    public async ValueTask WriteAsync(ControlKind kind, int jobId, ReadOnlyMemory<byte> payload, CancellationToken ct)
    {
        var header = new byte[9];
        header[0] = (byte)kind;
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(1), jobId);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(5), payload.Length);
        await _writeLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            await output.WriteAsync(header, ct).ConfigureAwait(false);
            if (!payload.IsEmpty) await output.WriteAsync(payload, ct).ConfigureAwait(false);
            await output.FlushAsync(ct).ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    public static byte[] ErrorPayload(int failedRank, string message)
    {
        var text = System.Text.Encoding.UTF8.GetBytes(message);
        var payload = new byte[4 + text.Length];
        BinaryPrimitives.WriteInt32LittleEndian(payload, failedRank);
        text.CopyTo(payload, 4);
        return payload;
    }

    public static (int FailedRank, string Message) ParseError(byte[] payload) => payload.Length < 4
        ? (-1, "malformed error report")
        : (BinaryPrimitives.ReadInt32LittleEndian(payload), System.Text.Encoding.UTF8.GetString(payload, 4, payload.Length - 4));

    private async Task<bool> ReadExactlyOrEndAsync(byte[] buffer, CancellationToken ct)
    {
        int read = 0;
        while (read < buffer.Length)
        {
            int n = await input.ReadAsync(buffer.AsMemory(read), ct).ConfigureAwait(false);
            if (n == 0)
            {
                if (read == 0) return false;
                throw new EndOfStreamException("control pipe closed inside a frame");
            }
            read += n;
        }
        return true;
    }
}
