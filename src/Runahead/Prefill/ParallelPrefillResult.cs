using Runahead.Diagnostics;
using Runahead.Generation;
using Runahead.Models;

namespace Runahead.Prefill;

/// <summary>
/// The outcome of one parallel prefill as the coordinator sees it: the last position's logits, the cache to decode
/// with (null when it stays in the last rank's worker process), and the per-rank timeline of the TTFT window.
/// </summary>
public sealed class ParallelPrefillResult
{
    public ParallelPrefillResult(PrefillStrategyKind strategy, Partition partition, float[] logits, KvCache? cache, Timeline timeline)
    {
        Strategy = strategy;
        Partition = partition;
        Logits = logits;
        Cache = cache;
        Timeline = timeline;
    }

    public PrefillStrategyKind Strategy { get; }
    public Partition Partition { get; }
    public float[] Logits { get; }
    public KvCache? Cache { get; }
    public Timeline Timeline { get; }
    public double TtftMs => RankRecorder.TicksToMs(Timeline.EndTicks - Timeline.StartTicks);
    public IReadOnlyList<RankTimings> RankTimings => Timeline.AllTotals();

    /// <summary>The generation layer's view (needs the cache in this process); <see cref="PrefillResult.Details"/> is this object.</summary>
    public PrefillResult ToPrefillResult()
    {
        var cache = Cache ?? throw new InvalidOperationException("the KV cache stayed in the last rank's process");
        var timings = new List<RankTiming>(Timeline.Ranks);
        foreach (var t in RankTimings)
            timings.Add(new RankTiming(t.Rank, TimeSpan.FromMilliseconds(t.ComputeMs), TimeSpan.FromMilliseconds(t.WaitKvMs + t.SendMs),
                TimeSpan.FromMilliseconds(t.TotalMs)));
        return new PrefillResult(Logits, cache) { RankTimings = timings, Details = this };
    }
}
