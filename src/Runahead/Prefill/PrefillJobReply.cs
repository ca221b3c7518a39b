using Runahead.Diagnostics;

namespace Runahead.Prefill;

/// <summary>
/// What a rank hands back after a <see cref="PrefillJob"/>: its timeline; the last rank also the prefill's logits
/// (when asked) and the ids it generated. Generated tokens are also streamed one by one while decoding (see
/// <see cref="EncodeToken"/>), so the client does not wait for the reply to show text.
/// </summary>
public sealed record PrefillJobReply(RankRecorder Recorder, float[]? Logits, int[] Generated)
{
    public byte[] Encode()
    {
        var timeline = Recorder.Serialize();
        int logits = Logits?.Length ?? 0;
        var bytes = new byte[4 + timeline.Length + 1 + 4 + 4 * logits + 4 + 4 * Generated.Length];
        var w = new PrefillJob.SpanWriter(bytes);
        w.Bytes(timeline);
        w.Byte(Logits != null ? (byte)1 : (byte)0);
        w.Floats(Logits ?? []);
        w.Ints(Generated);
        return bytes;
    }

    public static PrefillJobReply Decode(ReadOnlySpan<byte> bytes)
    {
        var r = new PrefillJob.SpanReader(bytes);
        var recorder = RankRecorder.Deserialize(r.Bytes(1 << 28));
        bool hasLogits = r.Byte() != 0;
        var logits = r.Floats(1 << 24);
        var generated = r.Ints(1 << 24);
        if (!r.AtEnd) throw new InvalidDataException("prefill reply: trailing bytes");
        return new PrefillJobReply(recorder, hasLogits ? logits : null, generated);
    }

    /// <summary>A streamed token: its id.</summary>
    public static byte[] EncodeToken(int id) => BitConverter.GetBytes(id);

    public static int DecodeToken(ReadOnlySpan<byte> message)
    {
        if (message.Length != 4) throw new InvalidDataException($"streamed token: {message.Length} bytes, expected 4");
        return BitConverter.ToInt32(message);
    }
}
