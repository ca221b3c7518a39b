using Runahead.Planning;

namespace Runahead.Tests.Planning;

public class ProcessorSharingTests
{
    private static readonly PrefillStrategy[] Parallel = [PrefillStrategy.Kvr, PrefillStrategy.Tsp, PrefillStrategy.TspCausal];

    private static IEnumerable<int[]> Partitions()
    {
        yield return [512, 512];
        yield return [700, 324];
        yield return [100, 900, 24];
        yield return [256, 256, 256, 256];
        yield return [400, 300, 200, 124];
    }

    [Fact]
    public void WithACorePerRankTheResultIsTheClosedFormExactly()
    {
        var links = LinkTopology.Uniform(1e9, 5e-6);
        var cost = PlanningData.Mixed();
        var plain = new Simulator(cost, links);
        foreach (var chunks in Partitions())
            foreach (var s in Parallel)
                foreach (double cores in new[] { chunks.Length, chunks.Length + 0.5, 64, double.PositiveInfinity })
                {
                    var shared = new Simulator(cost, links, cores);
                    Assert.Equal(plain.Ttft(s, chunks), shared.Ttft(s, chunks));
                    Assert.Equal(plain.Run(s, chunks).Timeline, shared.Run(s, chunks).Timeline);
                }
    }

    [Fact]
    public void TheEventLoopAgreesWithTheClosedFormWhenSharingBarelySlowsAnyone()
    {
        // Just under a core per rank: the event loop runs, and every rate is 1 - 1e-9 / P.
        var links = LinkTopology.Uniform(2e9, 5e-6);
        var cost = PlanningData.Mixed();
        var plain = new Simulator(cost, links);
        foreach (var chunks in Partitions())
            foreach (var s in Parallel)
            {
                var shared = new Simulator(cost, links, chunks.Length - 1e-9);
                double expected = plain.Ttft(s, chunks);
                Assert.Equal(expected, shared.Ttft(s, chunks), expected * 1e-7);
                var a = plain.Run(s, chunks).Timeline;
                var b = shared.Run(s, chunks).Timeline;
                Assert.Equal(a.Count, b.Count);
                for (int k = 0; k < chunks.Length; k++)
                    foreach (var kind in new[] { SimSpanKind.Qkv, SimSpanKind.Rest, SimSpanKind.Send, SimSpanKind.Head })
                        Assert.True(Math.Abs(plain.Run(s, chunks).Total(k, kind) - shared.Run(s, chunks).Total(k, kind)) < 1e-7,
                            $"{s} {string.Join('/', chunks)} rank {k} {kind}: {plain.Run(s, chunks).Total(k, kind)} vs {shared.Run(s, chunks).Total(k, kind)}");
            }
    }

    [Fact]
    public void OneCoreAndTwoRanksInLockStepTakeTheSerialSum()
    {
        // TSP with equal chunks and free links: both ranks compute every span at the same time, so one core
        // runs them one after the other in effect.
        var cost = PlanningData.Mixed(layers: 6);
        var links = LinkTopology.Uniform(double.PositiveInfinity, 0);
        int[] chunks = [1024, 1024];
        double perRank = cost.Qkv(1024) + cost.RestDense(1024, 1024, out _);
        double serial = 2 * cost.Layers * perRank + cost.HeadSeconds;
        Assert.Equal(serial, new Simulator(cost, links, 1).Ttft(PrefillStrategy.Tsp, chunks), serial * 1e-12);
        double parallel = cost.Layers * perRank + cost.HeadSeconds;
        Assert.Equal(parallel, new Simulator(cost, links).Ttft(PrefillStrategy.Tsp, chunks), parallel * 1e-12);
    }

    [Fact]
    public void ARankComputingAloneRunsAtFullSpeed()
    {
        var cost = PlanningData.AttentionOnly(layers: 4, headSeconds: 0.25);
        var links = LinkTopology.Uniform(double.PositiveInfinity, 0);
        // One rank: alone all the time, so one core is as good as any number; half a core takes twice as long.
        double single = new Simulator(cost, links).Ttft(PrefillStrategy.Single, [2048]);
        Assert.Equal(single, new Simulator(cost, links, 1).Ttft(PrefillStrategy.Single, [2048]), single * 1e-12);
        Assert.Equal(2 * single, new Simulator(cost, links, 0.5).Ttft(PrefillStrategy.Single, [2048]), single * 1e-12);

        // KVR on two ranks and one core: the last rank's head runs after rank 0 has finished, alone, at full speed,
        // while the spans both ranks compute at once are stretched.
        var run = new Simulator(cost, links, 1).Run(PrefillStrategy.Kvr, [1024, 1024]);
        var head = run.Timeline.Single(x => x.Kind == SimSpanKind.Head);
        Assert.Equal(0.25, head.Duration, 1e-12);
        double rank0Done = run.Timeline.Where(x => x.Rank == 0 && x.Kind == SimSpanKind.Rest).Max(x => x.End);
        Assert.True(rank0Done <= head.Start);
        // Rank 1's last layer, after rank 0 is done, runs alone at its full-speed cost too.
        var lastRest = run.Timeline.Last(x => x.Rank == 1 && x.Kind == SimSpanKind.Rest);
        if (lastRest.Start >= rank0Done) Assert.Equal(cost.RestCausal(1024, 1024, out _), lastRest.Duration, 1e-12);
        Assert.True(run.TtftSeconds > new Simulator(cost, links).Ttft(PrefillStrategy.Kvr, [1024, 1024]));
    }

    [Fact]
    public void TtftNeverGrowsWithMoreCores()
    {
        var links = LinkTopology.Uniform(1e9, 5e-6);
        foreach (var cost in new[] { PlanningData.Mixed(), PlanningData.AttentionOnly(headSeconds: 1e-3) })
            foreach (var chunks in Partitions())
                foreach (var s in Parallel)
                {
                    double previous = double.PositiveInfinity;
                    foreach (double cores in new[] { 0.25, 0.5, 1, 1.3, 1.5, 2, 2.5, 3, 3.9, 4, 8 })
                    {
                        double t = new Simulator(cost, links, cores).Ttft(s, chunks);
                        Assert.True(t <= previous * (1 + 1e-12), $"{s} {string.Join('/', chunks)}: {cores} cores took {t} s, fewer took {previous} s");
                        previous = t;
                    }
                }
    }

    [Fact]
    public void OneCoreIsNoFasterThanAllTheWorkInSeries()
    {
        var cost = PlanningData.Mixed();
        var links = LinkTopology.Uniform(double.PositiveInfinity, 0);
        int[] chunks = [300, 500, 224];
        var run = new Simulator(cost, links).Run(PrefillStrategy.Kvr, chunks);
        double work = 0;
        foreach (var span in run.Timeline) if (span.Kind is SimSpanKind.Qkv or SimSpanKind.Rest or SimSpanKind.Head) work += span.Duration;
        // Every rank's last span, not TTFT: a rank may finish its last layer after the head.
        double makespan = new Simulator(cost, links, 1).Run(PrefillStrategy.Kvr, chunks).Timeline.Max(x => x.End);
        Assert.True(makespan >= work * (1 - 1e-12), $"{makespan} < {work}");
    }

    [Fact]
    public void NonPositiveCoresAreRejected()
    {
        var e = Assert.Throws<RunaheadException>(() => new Simulator(PlanningData.Mixed(), LinkTopology.Uniform(1e9, 0), 0));
        Assert.Contains("cores", e.Message);
    }
}
