using Runahead.Planning;

namespace Runahead.Tests.Planning;

public class SimulatorTests
{
    private static readonly int[] Ranks = [1, 2, 3, 4, 8];

    [Fact]
    public void OneRankEqualsSingleForEveryStrategy()
    {
        var cost = PlanningData.Mixed();
        var sim = new Simulator(cost, LinkTopology.Uniform(1e9, 5e-6));
        double single = sim.Ttft(PrefillStrategy.Single, [4096]);
        Assert.Equal(cost.Layers * cost.Layer(4096, 0) + cost.HeadSeconds, single, 12);
        foreach (var s in new[] { PrefillStrategy.Kvr, PrefillStrategy.Tsp, PrefillStrategy.TspCausal })
            Assert.Equal(single, sim.Ttft(s, [4096]), 12);
    }

    [Fact]
    public void SingleIgnoresThePartition()
    {
        var sim = new Simulator(PlanningData.Mixed(), LinkTopology.Uniform(1e9, 0));
        Assert.Equal(sim.Ttft(PrefillStrategy.Single, [4096]), sim.Ttft(PrefillStrategy.Single, [1000, 3096]), 12);
    }

    [Theory]
    [InlineData(1024)]
    [InlineData(8192)]
    public void WithInfiniteBandwidthKvrIsNoSlowerThanTsp(int tokens)
    {
        foreach (var cost in new[] { PlanningData.Mixed(), PlanningData.AttentionOnly() })
        {
            var sim = new Simulator(cost, LinkTopology.Uniform(double.PositiveInfinity, 0));
            foreach (int p in Ranks)
            {
                var even = Partition.Even(tokens, p);
                double kvr = sim.Ttft(PrefillStrategy.Kvr, even);
                Assert.True(kvr <= sim.Ttft(PrefillStrategy.Tsp, even) * (1 + 1e-12), $"P={p}");
                Assert.True(kvr <= sim.Ttft(PrefillStrategy.TspCausal, even) * (1 + 1e-12), $"P={p}");
            }
        }
    }

    [Fact]
    public void TtftDoesNotIncreaseWithBandwidth()
    {
        var cost = PlanningData.Mixed();
        double[] bandwidths = [1e8, 3e8, 1e9, 1e10, 3e10, 3e11, double.PositiveInfinity];
        foreach (var strategy in new[] { PrefillStrategy.Kvr, PrefillStrategy.Tsp, PrefillStrategy.TspCausal })
        {
            foreach (int p in Ranks)
            {
                int[] chunks = p == 3 ? [3000, 2000, 1000] : Partition.Even(6000, p);
                double previous = double.PositiveInfinity;
                foreach (double bw in bandwidths)
                {
                    double t = new Simulator(cost, LinkTopology.Uniform(bw, 5e-6)).Ttft(strategy, chunks);
                    Assert.True(t <= previous * (1 + 1e-12), $"{strategy} P={p} at {bw}: {t} > {previous}");
                    previous = t;
                }
            }
        }
    }

    [Fact]
    public void SidecarTrafficNeverHelpsAndUsuallyHurts()
    {
        var cost = PlanningData.Mixed();
        var clean = LinkTopology.Uniform(2e9, 5e-6);
        var chunks = Partition.Even(8192, 4);
        foreach (var strategy in new[] { PrefillStrategy.Kvr, PrefillStrategy.Tsp })
        {
            double baseline = new Simulator(cost, clean).Ttft(strategy, chunks);
            bool slower = false;
            for (int seed = 1; seed <= 5; seed++)
            {
                var noisy = clean.WithBackground(new BackgroundTraffic(0.6, 2e-3, 2e-3, seed), [(0, 1), (1, 2), (2, 3), (3, 0)]);
                double t = new Simulator(cost, noisy).Ttft(strategy, chunks);
                Assert.True(t >= baseline * (1 - 1e-12), $"{strategy} seed {seed}");
                slower |= t > baseline * 1.001;
            }
            Assert.True(slower, $"{strategy}: noise on every link never slowed it down");
        }
    }

    [Fact]
    public void NoisyRunsRepeatExactlyForOneSeed()
    {
        var topo = LinkTopology.Uniform(1e9, 0).WithBackground(new BackgroundTraffic(0.5, 1e-3, 1e-3, 42), [(0, 1), (1, 2)]);
        var chunks = Partition.Even(4096, 3);
        double a = new Simulator(PlanningData.Mixed(), topo).Ttft(PrefillStrategy.Kvr, chunks);
        var sim = new Simulator(PlanningData.Mixed(), topo);
        sim.Ttft(PrefillStrategy.Kvr, Partition.Even(2048, 3));
        Assert.Equal(a, sim.Ttft(PrefillStrategy.Kvr, chunks), 12);
    }

    [Fact]
    public void NineTokensOnThreeRanksPreferFrontLoadedSplits()
    {
        var sim = new Simulator(PlanningData.AttentionOnly(), LinkTopology.Uniform(double.PositiveInfinity, 0));
        double frontLoaded = sim.Ttft(PrefillStrategy.Kvr, [4, 3, 2]);
        Assert.True(frontLoaded < sim.Ttft(PrefillStrategy.Kvr, [3, 3, 3]));
        Assert.True(frontLoaded < sim.Ttft(PrefillStrategy.Kvr, [2, 3, 4]));
        var best = PartitionSearch.Search(new SimulatedTtft(sim), 9, 3);
        Assert.True(best.Chunks[0] > best.Chunks[2], Partition.Format(best.Chunks));
    }

    [Fact]
    public void KvrMatchesTheRecurrenceByHand()
    {
        // Two ranks, two layers, t_qkv = 0 (share 0), t_rest = c*(p + c/2) us, 1 byte per token at 1 token/us.
        var cost = LayerCostModel.FromFits("hand", new CostFit(0, 0, 1e-6), new CostFit(0, 0, 1e-6), 0, 0, 1, 2);
        var sim = new Simulator(cost, LinkTopology.Uniform(1e6, 0));
        // Rank 0: c=2 -> rest 2*(0+1)=2 us per layer: K0 = 0, 2; sends 2 bytes at K0 -> arrives 2, 4 (after the first).
        // Rank 1: c=2, p=2 -> rest 2*(2+1)=6 us: K1(0)=2, F=8; K1(1)=max(8, 4)=8, F=14.
        var r = sim.Run(PrefillStrategy.Kvr, [2, 2]);
        Assert.Equal(14e-6, r.TtftSeconds, 12);
        Assert.Equal(2e-6, r.Total(1, SimSpanKind.Wait), 12);
        Assert.Equal(4e-6, r.Total(0, SimSpanKind.Send), 12);
    }

    [Fact]
    public void TspRingAllGatherTakesPMinusOneSteps()
    {
        // Compute-free: TTFT is the all-gather alone, L x (P-1) steps of C/P tokens.
        var cost = LayerCostModel.FromFits("comm", new CostFit(0, 0, 0), new CostFit(0, 0, 0), 0, 0, 1, 3);
        var sim = new Simulator(cost, LinkTopology.Uniform(1e6, 1e-6));
        double t = sim.Ttft(PrefillStrategy.Tsp, [100, 100, 100, 100]);
        Assert.Equal(3 * 3 * (100e-6 + 1e-6), t, 9);
    }

    [Fact]
    public void TimelineCoversEveryRankAndWritesAChromeTrace()
    {
        var sim = new Simulator(PlanningData.Mixed(), LinkTopology.Uniform(1e10, 5e-6));
        var r = sim.Run(PrefillStrategy.Kvr, [3000, 2000, 1000]);
        for (int rank = 0; rank < 3; rank++) Assert.True(r.Total(rank, SimSpanKind.Rest) > 0);
        Assert.All(r.Timeline, s => Assert.True(s.End >= s.Start && s.End <= r.TtftSeconds + 1e-12));
        using var ms = new MemoryStream();
        ChromeTraceWriter.Write(ms, r.Timeline, "kvr");
        using var doc = System.Text.Json.JsonDocument.Parse(ms.ToArray());
        Assert.True(doc.RootElement.GetProperty("traceEvents").GetArrayLength() > r.Timeline.Count);
    }

    [Fact]
    public void RejectsEmptyChunks()
    {
        var sim = new Simulator(PlanningData.Mixed(), LinkTopology.Uniform(1e9, 0));
        Assert.Throws<RunaheadException>(() => sim.Ttft(PrefillStrategy.Kvr, [10, 0, 5]));
    }
}

public class LinkModelTests
{
    [Fact]
    public void ASixtyFourMebibyteMessageOnAOneGigabytePerSecondLinkTakesSixtyFourMilliseconds()
    {
        // Compute-free, one layer, two ranks: TTFT is rank 0's one send of its chunk's K,V.
        var cost = LayerCostModel.FromFits("comm", new CostFit(0, 0, 0), new CostFit(0, 0, 0), 0, 0, 1 << 20, 1);
        var sim = new Simulator(cost, LinkTopology.Uniform(1e9, 0));
        double t = sim.Ttft(PrefillStrategy.Kvr, [64, 1]);
        Assert.Equal(64.0 * (1 << 20) / 1e9, t, 12);
    }

    [Fact]
    public void BackgroundTrafficStretchesATransferWithinItsBounds()
    {
        var cost = LayerCostModel.FromFits("comm", new CostFit(0, 0, 0), new CostFit(0, 0, 0), 0, 0, 1 << 20, 1);
        double clean = 64.0 * (1 << 20) / 1e9;
        foreach (int seed in new[] { 1, 2, 3 })
        {
            var noisy = LinkTopology.Uniform(1e9, 0).WithBackground(new BackgroundTraffic(0.5, 5e-3, 5e-3, seed), [(0, 1)]);
            double t = new Simulator(cost, noisy).Ttft(PrefillStrategy.Kvr, [64, 1]);
            Assert.InRange(t, clean, clean / 0.5);
        }
    }

    [Fact]
    public void APerLinkMatrixSlowsOnlyTheRanksBehindTheSlowLink()
    {
        var cost = PlanningData.Mixed();
        double fast = 3e11;
        var matrix = new double[4, 4];
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++)
                matrix[i, j] = fast;
        var uniform = new Simulator(cost, LinkTopology.Uniform(fast, 5e-6));
        var chunks = Partition.Even(8192, 4);
        var sameAsUniform = new Simulator(cost, LinkTopology.FromMatrix(matrix, 5e-6));
        Assert.Equal(uniform.Ttft(PrefillStrategy.Kvr, chunks), sameAsUniform.Ttft(PrefillStrategy.Kvr, chunks), 12);
        matrix[2, 3] = 1e8;
        var slow = new Simulator(cost, LinkTopology.FromMatrix(matrix, 5e-6)).Run(PrefillStrategy.Kvr, chunks);
        var clean = uniform.Run(PrefillStrategy.Kvr, chunks);
        Assert.True(slow.TtftSeconds > clean.TtftSeconds);
        Assert.Equal(clean.Total(2, SimSpanKind.Wait), slow.Total(2, SimSpanKind.Wait), 12);
        Assert.True(slow.Total(3, SimSpanKind.Wait) > clean.Total(3, SimSpanKind.Wait));
        Assert.Throws<RunaheadException>(() => new Simulator(cost, LinkTopology.FromMatrix(matrix, 0)).Ttft(PrefillStrategy.Kvr, Partition.Even(100, 5)));
    }

    [Fact]
    public void RejectsImpossibleLinks()
    {
        Assert.Throws<RunaheadException>(() => LinkTopology.Uniform(0, 0));
        Assert.Throws<RunaheadException>(() => LinkTopology.Uniform(1e9, -1));
        Assert.Throws<RunaheadException>(() => LinkTopology.FromMatrix(new double[2, 3], 0));
        Assert.Throws<RunaheadException>(() => LinkTopology.Uniform(1e9, 0).WithBackground(new BackgroundTraffic(1.0, 1e-3, 1e-3, 1), [(0, 1)]));
    }
}
