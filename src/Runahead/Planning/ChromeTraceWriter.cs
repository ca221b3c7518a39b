using System.Text.Json;

namespace Runahead.Planning;

/// <summary>
/// Writes simulated spans as Chrome trace-event JSON (opens in Perfetto / chrome://tracing): one process per rank,
/// a compute lane and a link lane, times in microseconds. Not Diagnostics.Timeline's writer: that one draws a rank
/// on one lane, while simulated sends overlap the rank's compute and need a lane of their own.
/// </summary>
public static class ChromeTraceWriter
{
    public static void Write(Stream stream, IReadOnlyList<SimSpan> spans, string title)
    {
        using var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = false });
        w.WriteStartObject();
        w.WriteString("displayTimeUnit", "ms");
        w.WriteStartArray("traceEvents");
        var ranks = new SortedSet<int>();
        foreach (var s in spans) ranks.Add(s.Rank);
        foreach (int r in ranks)
        {
            Meta(w, "process_name", r, 0, $"{title} rank {r}");
            Meta(w, "thread_name", r, 0, "compute");
            Meta(w, "thread_name", r, 1, "link to next rank");
        }
        foreach (var s in spans)
        {
            w.WriteStartObject();
            w.WriteString("name", $"{s.Kind} L{s.Layer}");
            w.WriteString("cat", s.Kind.ToString());
            w.WriteString("ph", "X");
            w.WriteNumber("ts", Math.Round(s.Start * 1e6, 3));
            w.WriteNumber("dur", Math.Round(s.Duration * 1e6, 3));
            w.WriteNumber("pid", s.Rank);
            w.WriteNumber("tid", s.Kind == SimSpanKind.Send ? 1 : 0);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }

    public static void Write(string path, IReadOnlyList<SimSpan> spans, string title)
    {
        try
        {
            using var f = File.Create(path);
            Write(f, spans, title);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new RunaheadException($"{path}: cannot write trace ({e.Message})");
        }
    }

    private static void Meta(Utf8JsonWriter w, string kind, int pid, int tid, string name)
    {
        w.WriteStartObject();
        w.WriteString("name", kind);
        w.WriteString("ph", "M");
        w.WriteNumber("pid", pid);
        w.WriteNumber("tid", tid);
        w.WriteStartObject("args");
        w.WriteString("name", name);
        w.WriteEndObject();
        w.WriteEndObject();
    }
}
