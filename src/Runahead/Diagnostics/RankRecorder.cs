using System.Buffers.Binary;
using System.Diagnostics;

namespace Runahead.Diagnostics;

/// <summary>
/// Collects the spans of one rank during one prefill. Cheap enough to leave on: a span is a struct appended to a
/// list whose capacity is reserved up front (a handful of spans per layer).
/// </summary>
public sealed class RankRecorder
{
    private readonly List<TimelineSpan> _spans;

    public RankRecorder(int rank, int layers)
    {
        Rank = rank;
        _spans = new List<TimelineSpan>(layers * 4 + 8);
    }

    public int Rank { get; }
    public IReadOnlyList<TimelineSpan> Spans => _spans;

    public static long Now() => Stopwatch.GetTimestamp();

    /// <summary>Records [start, now) and returns now, so consecutive spans chain without gaps.</summary>
    public long Mark(SpanKind kind, int layer, long start)
    {
        long now = Stopwatch.GetTimestamp();
        _spans.Add(new TimelineSpan(Rank, layer, kind, start, now));
        return now;
    }

    public void Add(TimelineSpan span) => _spans.Add(span);

    public RankTimings Totals()
    {
        long compute = 0, wait = 0, send = 0, idle = 0;
        long first = long.MaxValue, last = long.MinValue;
        foreach (var s in _spans)
        {
            // Background lanes overlap the rank's own time: they are shown, not summed.
            if (s.Kind == SpanKind.Transfer) continue;
            switch (s.Kind)
            {
                case SpanKind.Compute: compute += s.DurationTicks; break;
                case SpanKind.WaitKv: wait += s.DurationTicks; break;
                case SpanKind.Send: send += s.DurationTicks; break;
                default: idle += s.DurationTicks; break;
            }
            first = Math.Min(first, s.StartTicks);
            last = Math.Max(last, s.EndTicks);
        }
        double total = _spans.Count == 0 ? 0 : TicksToMs(last - first);
        return new RankTimings(Rank, TicksToMs(compute), TicksToMs(wait), TicksToMs(send), TicksToMs(idle), total);
    }

    public static double TicksToMs(long ticks) => ticks * 1000.0 / Stopwatch.Frequency;

    private const int SpanBytes = 4 + 1 + 8 + 8;

    /// <summary>Compact form for the trip from a worker process back to the coordinator.</summary>
    public byte[] Serialize()
    {
        var bytes = new byte[8 + _spans.Count * SpanBytes];
        BinaryPrimitives.WriteInt32LittleEndian(bytes, Rank);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(4), _spans.Count);
        int o = 8;
        foreach (var s in _spans)
        {
            BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(o), s.Layer);
            bytes[o + 4] = (byte)s.Kind;
            BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(o + 5), s.StartTicks);
            BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(o + 13), s.EndTicks);
            o += SpanBytes;
        }
        return bytes;
    }

    public static RankRecorder Deserialize(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length < 8) throw new InvalidDataException("rank timeline: truncated header");
        int rank = BinaryPrimitives.ReadInt32LittleEndian(bytes);
        int count = BinaryPrimitives.ReadInt32LittleEndian(bytes[4..]);
        if (count < 0 || (long)count * SpanBytes != bytes.Length - 8)
            throw new InvalidDataException($"rank timeline: {count} spans do not fit {bytes.Length} bytes");
        var recorder = new RankRecorder(rank, 0);
        int o = 8;
        for (int i = 0; i < count; i++)
        {
            int layer = BinaryPrimitives.ReadInt32LittleEndian(bytes[o..]);
            var kind = (SpanKind)bytes[o + 4];
            if (kind > SpanKind.Transfer) throw new InvalidDataException($"rank timeline: unknown span kind {(byte)kind}");
            long start = BinaryPrimitives.ReadInt64LittleEndian(bytes[(o + 5)..]);
            long end = BinaryPrimitives.ReadInt64LittleEndian(bytes[(o + 13)..]);
            recorder._spans.Add(new TimelineSpan(rank, layer, kind, start, end));
            o += SpanBytes;
        }
        return recorder;
    }
}
