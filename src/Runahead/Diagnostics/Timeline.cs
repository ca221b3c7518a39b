using System.Diagnostics;
using System.Text.Json;

namespace Runahead.Diagnostics;

/// <summary>
/// The spans of every rank of one prefill, between the moment the prompt ids were handed to the ranks
/// (<see cref="StartTicks"/>) and the moment the first token was known (<see cref="EndTicks"/>). Gaps in a rank's
/// record inside that window become <see cref="SpanKind.Idle"/> spans, so every rank's time adds up to the TTFT.
/// </summary>
public sealed class Timeline
{
    private readonly List<TimelineSpan>[] _ranks;
    private readonly List<TimelineSpan>[] _transfers;

    public Timeline(string label, long startTicks, long endTicks, IReadOnlyList<RankRecorder> recorders)
    {
        Label = label;
        StartTicks = startTicks;
        EndTicks = Math.Max(endTicks, startTicks);
        _ranks = new List<TimelineSpan>[recorders.Count];
        _transfers = new List<TimelineSpan>[recorders.Count];
        for (int r = 0; r < recorders.Count; r++)
        {
            _ranks[r] = WithIdle(recorders[r], r);
            _transfers[r] = Background(recorders[r], r);
        }
    }

    public string Label { get; }
    public long StartTicks { get; }
    public long EndTicks { get; }
    public int Ranks => _ranks.Length;
    public IReadOnlyList<TimelineSpan> Spans(int rank) => _ranks[rank];

    /// <summary>The rank's background transfers (<see cref="SpanKind.Transfer"/>): overlapping its own spans, not in its totals.</summary>
    public IReadOnlyList<TimelineSpan> Transfers(int rank) => _transfers[rank];

    public RankTimings Totals(int rank)
    {
        var recorder = new RankRecorder(rank, 0);
        foreach (var s in _ranks[rank]) recorder.Add(s);
        return recorder.Totals() with { TotalMs = RankRecorder.TicksToMs(EndTicks - StartTicks) };
    }

    public IReadOnlyList<RankTimings> AllTotals()
    {
        var all = new RankTimings[_ranks.Length];
        for (int r = 0; r < all.Length; r++) all[r] = Totals(r);
        return all;
    }

    private List<TimelineSpan> WithIdle(RankRecorder recorder, int rank)
    {
        var sorted = Clipped(recorder, rank, transfers: false);
        var result = new List<TimelineSpan>(sorted.Count * 2 + 2);
        long cursor = StartTicks;
        foreach (var s in sorted)
        {
            if (s.StartTicks > cursor) result.Add(new TimelineSpan(rank, -1, SpanKind.Idle, cursor, s.StartTicks));
            var clipped = s.StartTicks < cursor ? s with { StartTicks = cursor } : s;
            if (clipped.EndTicks > clipped.StartTicks) result.Add(clipped);
            cursor = Math.Max(cursor, s.EndTicks);
        }
        if (EndTicks > cursor) result.Add(new TimelineSpan(rank, -1, SpanKind.Idle, cursor, EndTicks));
        return result;
    }

    private List<TimelineSpan> Background(RankRecorder recorder, int rank) => Clipped(recorder, rank, transfers: true);

    /// <summary>
    /// The recorder's spans of one lane (its own work, or with <paramref name="transfers"/> its background transfers),
    /// clipped to the window and sorted by start. A worker's clock reads are taken after it saw the job, never before
    /// the hand-off, hence the clip.
    /// </summary>
    private List<TimelineSpan> Clipped(RankRecorder recorder, int rank, bool transfers)
    {
        var spans = new List<TimelineSpan>(recorder.Spans.Count + 4);
        foreach (var s in recorder.Spans)
        {
            if ((s.Kind == SpanKind.Transfer) != transfers) continue;
            long start = Math.Clamp(s.StartTicks, StartTicks, EndTicks), end = Math.Clamp(s.EndTicks, StartTicks, EndTicks);
            if (end > start) spans.Add(s with { Rank = rank, StartTicks = start, EndTicks = end });
        }
        spans.Sort(static (a, b) => a.StartTicks.CompareTo(b.StartTicks));
        return spans;
    }

    /// <summary>
    /// Writes timelines as one Chrome trace-event JSON document (opens in Perfetto / chrome://tracing): each
    /// timeline's rank r is a process named "LABEL rank r", its spans complete events ("ph":"X") named by kind and
    /// layer, background transfers on a second thread ("tid":1) of the rank; timelines are laid one after another on
    /// the time axis.
    /// </summary>
    public static void WriteChromeTrace(Stream output, IReadOnlyList<Timeline> timelines)
    {
        using var json = new Utf8JsonWriter(output, new JsonWriterOptions { Indented = false });
        json.WriteStartObject();
        json.WriteString("displayTimeUnit", "ms");
        json.WriteStartArray("traceEvents");
        double offsetUs = 0;
        int pidBase = 0;
        foreach (var t in timelines)
        {
            for (int r = 0; r < t.Ranks; r++)
            {
                int pid = pidBase + r;
                json.WriteStartObject();
                json.WriteString("name", "process_name");
                json.WriteString("ph", "M");
                json.WriteNumber("pid", pid);
                json.WriteNumber("tid", 0);
                json.WriteStartObject("args");
                json.WriteString("name", $"{t.Label} rank {r}");
                json.WriteEndObject();
                json.WriteEndObject();

                json.WriteStartObject();
                json.WriteString("name", "process_sort_index");
                json.WriteString("ph", "M");
                json.WriteNumber("pid", pid);
                json.WriteStartObject("args");
                json.WriteNumber("sort_index", pid);
                json.WriteEndObject();
                json.WriteEndObject();

                if (t._transfers[r].Count > 0)
                {
                    json.WriteStartObject();
                    json.WriteString("name", "thread_name");
                    json.WriteString("ph", "M");
                    json.WriteNumber("pid", pid);
                    json.WriteNumber("tid", 1);
                    json.WriteStartObject("args");
                    json.WriteString("name", "hand-off sender");
                    json.WriteEndObject();
                    json.WriteEndObject();
                }

                foreach (var s in t._ranks[r]) WriteSpan(json, s, pid, 0, r, offsetUs, t.StartTicks);
                foreach (var s in t._transfers[r]) WriteSpan(json, s, pid, 1, r, offsetUs, t.StartTicks);
            }
            pidBase += t.Ranks;
            // A small gap keeps consecutive runs visually apart.
            offsetUs += TicksToUs(t.EndTicks - t.StartTicks) * 1.05 + 10;
        }
        json.WriteEndArray();
        json.WriteEndObject();
    }

    private static void WriteSpan(Utf8JsonWriter json, in TimelineSpan s, int pid, int tid, int rank, double offsetUs, long startTicks)
    {
        json.WriteStartObject();
        json.WriteString("name", SpanName(s));
        json.WriteString("cat", KindName(s.Kind));
        json.WriteString("ph", "X");
        json.WriteNumber("pid", pid);
        json.WriteNumber("tid", tid);
        json.WriteNumber("ts", Math.Round(offsetUs + TicksToUs(s.StartTicks - startTicks), 3));
        json.WriteNumber("dur", Math.Round(TicksToUs(s.DurationTicks), 3));
        json.WriteStartObject("args");
        json.WriteNumber("rank", rank);
        json.WriteNumber("layer", s.Layer);
        json.WriteEndObject();
        json.WriteEndObject();
    }

    public static void WriteChromeTrace(string path, IReadOnlyList<Timeline> timelines)
    {
        try
        {
            using var file = File.Create(path);
            WriteChromeTrace(file, timelines);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new RunaheadException($"--trace {path}: cannot write the trace file ({e.Message})");
        }
    }

    public static string KindName(SpanKind kind) => kind switch
    {
        SpanKind.Compute => "compute",
        SpanKind.WaitKv => "wait-kv",
        SpanKind.Send => "send",
        SpanKind.Transfer => "transfer",
        _ => "idle",
    };

    private static string SpanName(in TimelineSpan s) =>
        s.Layer >= 0 ? $"{KindName(s.Kind)} L{s.Layer}" : KindName(s.Kind);

    private static double TicksToUs(long ticks) => ticks * 1e6 / Stopwatch.Frequency;
}
