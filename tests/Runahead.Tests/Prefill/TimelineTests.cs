using System.Diagnostics;
using System.Text.Json;
using Runahead.Diagnostics;

namespace Runahead.Tests.Prefill;

public class TimelineTests
{
    private static readonly long Ms = Stopwatch.Frequency / 1000;

    [Fact]
    public void Gaps_become_idle_and_every_rank_adds_up_to_the_window()
    {
        var r0 = new RankRecorder(0, 2);
        r0.Add(new TimelineSpan(0, 0, SpanKind.Compute, 0, 2 * Ms));
        r0.Add(new TimelineSpan(0, 0, SpanKind.Send, 2 * Ms, 3 * Ms));
        var r1 = new RankRecorder(1, 2);
        r1.Add(new TimelineSpan(1, 0, SpanKind.Compute, 0, 1 * Ms));
        r1.Add(new TimelineSpan(1, 0, SpanKind.WaitKv, 1 * Ms, 3 * Ms));
        r1.Add(new TimelineSpan(1, 0, SpanKind.Compute, 3 * Ms, 6 * Ms));
        var t = new Timeline("kvr", 0, 6 * Ms, new[] { r0, r1 });

        var t0 = t.Totals(0);
        Assert.Equal(2, t0.ComputeMs, 6);
        Assert.Equal(1, t0.SendMs, 6);
        Assert.Equal(3, t0.IdleMs, 6);
        Assert.Equal(6, t0.TotalMs, 6);
        var t1 = t.Totals(1);
        Assert.Equal(4, t1.ComputeMs, 6);
        Assert.Equal(2, t1.WaitKvMs, 6);
        Assert.Equal(0, t1.IdleMs, 6);
    }

    [Fact]
    public void Recorder_round_trips_through_bytes_and_rejects_garbage()
    {
        var r = new RankRecorder(3, 1);
        long start = RankRecorder.Now();
        start = r.Mark(SpanKind.Compute, 0, start);
        r.Mark(SpanKind.WaitKv, 1, start);
        var back = RankRecorder.Deserialize(r.Serialize());
        Assert.Equal(3, back.Rank);
        Assert.Equal(r.Spans, back.Spans);
        Assert.Throws<InvalidDataException>(() => RankRecorder.Deserialize(new byte[] { 1, 0, 0, 0, 9, 0, 0, 0, 1 }));
    }

    [Fact]
    public void Chrome_trace_names_every_rank_and_layer()
    {
        var recorders = new List<RankRecorder>();
        for (int rank = 0; rank < 2; rank++)
        {
            var r = new RankRecorder(rank, 3);
            for (int layer = 0; layer < 3; layer++)
                r.Add(new TimelineSpan(rank, layer, SpanKind.Compute, layer * Ms, (layer + 1) * Ms));
            recorders.Add(r);
        }
        var t = new Timeline("kvr P=2", 0, 3 * Ms, recorders);
        using var stream = new MemoryStream();
        Timeline.WriteChromeTrace(stream, new[] { t, t });
        using var doc = JsonDocument.Parse(stream.ToArray());
        var events = doc.RootElement.GetProperty("traceEvents").EnumerateArray().ToList();
        var names = events.Where(e => e.GetProperty("ph").GetString() == "M" && e.GetProperty("name").GetString() == "process_name")
            .Select(e => e.GetProperty("args").GetProperty("name").GetString()).ToList();
        Assert.Equal(4, names.Count);
        Assert.Contains("kvr P=2 rank 1", names);
        var spans = events.Where(e => e.GetProperty("ph").GetString() == "X").ToList();
        Assert.Equal(12, spans.Count);
        Assert.Contains(spans, e => e.GetProperty("name").GetString() == "compute L2" && e.GetProperty("pid").GetInt32() == 3);
        Assert.All(spans, e => Assert.True(e.GetProperty("dur").GetDouble() > 0));
    }

    [Fact]
    public void Transfers_are_a_lane_of_their_own_outside_the_totals()
    {
        // Rank 0 computes for 4 ms while its sender hands layers 0 and 1 over in the background, then waits 1 ms for it.
        var r0 = new RankRecorder(0, 2);
        r0.Add(new TimelineSpan(0, 0, SpanKind.Compute, 0, 2 * Ms));
        r0.Add(new TimelineSpan(0, 1, SpanKind.Compute, 2 * Ms, 4 * Ms));
        r0.Add(new TimelineSpan(0, -1, SpanKind.Send, 4 * Ms, 5 * Ms));
        r0.Add(new TimelineSpan(0, 0, SpanKind.Transfer, 1 * Ms, 3 * Ms));
        r0.Add(new TimelineSpan(0, 1, SpanKind.Transfer, 3 * Ms, 5 * Ms));
        var back = RankRecorder.Deserialize(r0.Serialize());
        Assert.Equal(r0.Spans, back.Spans);
        var t = new Timeline("kvr", 0, 6 * Ms, new[] { back });

        var totals = t.Totals(0);
        Assert.Equal(4, totals.ComputeMs, 6);
        Assert.Equal(1, totals.SendMs, 6);
        Assert.Equal(1, totals.IdleMs, 6);
        Assert.Equal(4, back.Totals().ComputeMs, 6);
        Assert.Equal(2, t.Transfers(0).Count);
        Assert.DoesNotContain(t.Spans(0), s => s.Kind == SpanKind.Transfer);

        using var stream = new MemoryStream();
        Timeline.WriteChromeTrace(stream, new[] { t });
        using var doc = JsonDocument.Parse(stream.ToArray());
        var events = doc.RootElement.GetProperty("traceEvents").EnumerateArray().ToList();
        Assert.Contains(events, e => e.GetProperty("name").GetString() == "thread_name" && e.GetProperty("tid").GetInt32() == 1);
        var lane = events.Where(e => e.GetProperty("ph").GetString() == "X" && e.GetProperty("tid").GetInt32() == 1).ToList();
        Assert.Equal(["transfer L0", "transfer L1"], lane.Select(e => e.GetProperty("name").GetString()));
    }
}
