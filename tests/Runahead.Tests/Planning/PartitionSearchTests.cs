using System.Diagnostics;
using Runahead.Planning;
using Xunit.Abstractions;

namespace Runahead.Tests.Planning;

public class PartitionSearchTests(ITestOutputHelper output)
{
    /// <summary>Sum of (c_i - target_i)^2: convex, minimised exactly at the target.</summary>
    private sealed class Quadratic(int[] target) : IPartitionObjective
    {
        public double Evaluate(ReadOnlySpan<int> chunks)
        {
            double s = 0;
            for (int i = 0; i < chunks.Length; i++) s += (double)(chunks[i] - target[i]) * (chunks[i] - target[i]);
            return s;
        }
    }

    /// <summary>Makespan max_i w_i * c_i: minimised where the weighted loads are equal (c_i proportional to 1/w_i).</summary>
    private sealed class Makespan(double[] weights) : IPartitionObjective
    {
        public double Evaluate(ReadOnlySpan<int> chunks)
        {
            double m = 0;
            for (int i = 0; i < chunks.Length; i++) m = Math.Max(m, weights[i] * chunks[i]);
            return m;
        }
    }

    [Theory]
    [InlineData(new[] { 7, 2 })]
    [InlineData(new[] { 500, 300, 137, 63 })]
    [InlineData(new[] { 4000, 3000, 2500, 2000, 1800, 1500, 1300, 284 })]
    [InlineData(new[] { 1, 1, 1, 9997 })]
    public void FindsTheMinimiserOfAConvexCost(int[] target)
    {
        int tokens = target.Sum();
        var r = PartitionSearch.Search(new Quadratic(target), tokens, target.Length);
        Assert.Equal(target, r.Chunks);
        Assert.Equal(0, r.Cost);
    }

    [Fact]
    public void BalancesAWeightedMakespan()
    {
        // Weights 1, 2, 4: optimum 4/2/1 shares of 7000 -> 4000/2000/1000, makespan 4000.
        var r = PartitionSearch.Search(new Makespan([1, 2, 4]), 7000, 3);
        Assert.Equal(4000, r.Cost, 6);
        Assert.Equal([4000, 2000, 1000], r.Chunks);
    }

    [Fact]
    public void OneRankGetsEverything()
    {
        var r = PartitionSearch.Search(new Quadratic([10]), 10, 1);
        Assert.Equal([10], r.Chunks);
    }

    [Fact]
    public void RejectsMoreRanksThanTokens() =>
        Assert.Throws<RunaheadException>(() => PartitionSearch.Search(new Quadratic([1, 1, 1]), 2, 3));

    [Fact]
    public void SearchedIsNeverWorseThanEven()
    {
        var sim = new Simulator(PlanningData.Mixed(), LinkTopology.Uniform(1e10, 5e-6));
        foreach (int p in new[] { 2, 4, 8 })
        {
            var r = PartitionSearch.Search(new SimulatedTtft(sim), 8192, p);
            Assert.True(r.Cost <= sim.Ttft(PrefillStrategy.Kvr, Partition.Even(8192, p)) + 1e-15);
            Assert.Equal(r.Cost, sim.Ttft(PrefillStrategy.Kvr, r.Chunks), 12);
        }
    }

    [SkippableFact]
    public void EightRanksBySixteenKTokensFinishesInUnderAMinute()
    {
        var sim = new Simulator(PlanningData.H200("llama2-7b"), LinkTopology.Uniform(300e9, 5e-6));
        var clock = Stopwatch.StartNew();
        var r = PartitionSearch.Search(new SimulatedTtft(sim), 16384, 8);
        clock.Stop();
        output.WriteLine($"KVR-S 8 x 16k: {clock.Elapsed.TotalSeconds:0.000} s, {r.Evaluations} evaluations, {Partition.Format(r.Chunks)}, {r.Cost * 1e3:0.000} ms");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), $"took {clock.Elapsed}");
        Assert.True(r.Chunks[0] > r.Chunks[^1], "KVR-S should front-load");
    }

    private sealed class Recorder(double[] measured) : ICandidateMeasurer
    {
        public List<int[]> Seen { get; } = [];

        public double Measure(ReadOnlySpan<int> chunks, CancellationToken cancellationToken)
        {
            Seen.Add(chunks.ToArray());
            return measured[Seen.Count - 1];
        }
    }

    [Fact]
    public void RemeasuresTheBestCandidatesAndKeepsTheFastestMeasured()
    {
        var sim = new Simulator(PlanningData.Mixed(), LinkTopology.Uniform(1e10, 5e-6));
        // Lie that the second candidate is fastest on the real ranks.
        var measurer = new Recorder([3.0, 1.0, 2.0, 5.0]);
        var r = PartitionSearch.Search(new SimulatedTtft(sim), 4096, 3,
            new PartitionSearchOptions { Measurer = measurer, Remeasure = 3, Refine = 6 });
        Assert.InRange(measurer.Seen.Count, 1, 3);
        if (measurer.Seen.Count >= 2)
        {
            Assert.Equal(measurer.Seen[1], r.Chunks);
            Assert.Equal(1.0, r.MeasuredSeconds);
        }
    }

    [Fact]
    public void HonoursCancellation()
    {
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        var sim = new Simulator(PlanningData.Mixed(), LinkTopology.Uniform(1e10, 5e-6));
        Assert.ThrowsAny<OperationCanceledException>(() =>
            PartitionSearch.Search(new SimulatedTtft(sim), 16384, 8, new PartitionSearchOptions { CancellationToken = cts.Token }));
    }
}
