using Runahead.Planning;
using Xunit.Abstractions;

namespace Runahead.Tests.Planning;

public class PartitionTableTests(ITestOutputHelper output)
{
    [Fact]
    public void InterpolatesSplitPositionsLinearlyInTokens()
    {
        var table = new PartitionTable
        {
            Model = "m", Calibration = "c",
            Entries =
            [
                new PartitionTableEntry(3, 1e9, 1000, [0.5, 0.8], 1),
                new PartitionTableEntry(3, 1e9, 3000, [0.3, 0.6], 1),
            ],
        };
        // Halfway between split positions (500, 800) of 1000 tokens and (900, 1800) of 3000: (700, 1300) of 2000, not the
        // halfway fractions (0.4, 0.7 -> 800, 1400); a quarter of the way: (600, 1050) of 1500.
        Assert.Equal([700, 600, 700], table.Predict(2000, 3, 1e9));
        Assert.Equal([600, 450, 450], table.Predict(1500, 3, 1e9));
        // Outside the table: the nearest length's fractions.
        Assert.Equal([250, 150, 100], table.Predict(500, 3, 1e9));
        Assert.Equal([1200, 1200, 1600], table.Predict(4000, 3, 1e9));
        Assert.Throws<RunaheadException>(() => table.Predict(2000, 4, 1e9));
    }

    [Fact]
    public void InterpolatesInLogBandwidthBetweenTabledBandwidths()
    {
        var table = new PartitionTable
        {
            Model = "m", Calibration = "c",
            Entries =
            [
                new PartitionTableEntry(2, 1e9, 1000, [0.6], 1),
                new PartitionTableEntry(2, 100e9, 1000, [0.8], 1),
            ],
        };
        Assert.Equal([700, 300], table.Predict(1000, 2, 10e9));
        Assert.Equal([800, 200], table.Predict(1000, 2, 1e12));
    }

    [Fact]
    public void RoundTripsThroughJson()
    {
        var sim = new Simulator(PlanningData.Mixed(), LinkTopology.Uniform(1e10, 5e-6));
        var table = PartitionTable.Build("mixed", "synthetic", _ => sim, [1024, 4096], [2, 4], [1e10]);
        var path = Path.Combine(Path.GetTempPath(), $"runahead-table-{Guid.NewGuid():N}.json");
        try
        {
            table.Save(path);
            var back = PartitionTable.Load(path);
            Assert.Equal(table.Entries.Count, back.Entries.Count);
            Assert.Equal(table.Predict(2048, 4, 1e10), back.Predict(2048, 4, 1e10));
            File.WriteAllText(path, "{\"format\":\"something else\"}");
            Assert.Throws<RunaheadException>(() => PartitionTable.Load(path));
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>
    /// The acceptance point: KVR-P within 2 % of KVR-S on lengths the table does not hold, on the H200 calibration's
    /// fitted (smooth) cost model. On the raw measured grid the landscape is bumpy at small chunks and the gap can be
    /// larger; docs/REPRODUCTION.md reports both.
    /// </summary>
    [SkippableTheory]
    [InlineData("llama2-7b", 300e9)]
    [InlineData("falcon-7b", 300e9)]
    [InlineData("llama2-7b", 10e9)]
    [InlineData("falcon-7b", 10e9)]
    public void PredictedIsWithinTwoPercentOfSearchedOnUntabledLengths(string model, double bandwidth)
    {
        var cost = PlanningData.H200(model, CostSource.Fit);
        var sim = new Simulator(cost, LinkTopology.Uniform(bandwidth, 5e-6));
        var table = PartitionTable.Build(model, "h200", _ => sim, PartitionTable.DefaultTokens, [2, 4, 8], [bandwidth]);
        double worst = 0;
        foreach (int p in new[] { 2, 4, 8 })
        {
            foreach (int c in new[] { 1280, 2560, 5120, 10240, 14336 })
            {
                double searched = PartitionSearch.Search(new SimulatedTtft(sim), c, p).Cost;
                double predicted = sim.Ttft(PrefillStrategy.Kvr, table.Predict(c, p, bandwidth));
                double gap = predicted / searched - 1;
                worst = Math.Max(worst, gap);
                output.WriteLine($"{model} {bandwidth / 1e9} GB/s P={p} C={c}: KVR-S {searched * 1e3:0.000} ms, KVR-P {predicted * 1e3:0.000} ms ({gap:P2})");
                Assert.True(gap < 0.02, $"P={p} C={c}: KVR-P {gap:P2} slower than KVR-S");
            }
        }
        output.WriteLine($"worst gap {worst:P2}");
    }
}

public class RuntimePlannerTests
{
    [SkippableFact]
    public void AnswersTheRuntimesSearchedAndPredictedPartitions()
    {
        var cal = Runahead.Planning.Calibration.Load(PlanningData.H200Path());
        var planner = new RuntimePlanner(cal, ShapeCatalog.Get("falcon-7b"), "falcon-7b", LinkTopology.Uniform(300e9, 5e-6), 300e9);
        var spec = Runahead.Prefill.PartitionSpec.Parse("searched");
        var searched = spec.Resolve(6000, 4, planner.Plan);
        Assert.Equal(6000, searched.Tokens);
        Assert.True(searched.Chunk(0) > searched.Chunk(3));
        var predicted = Runahead.Prefill.PartitionSpec.Parse("predicted").Resolve(6000, 4, planner.Plan);
        Assert.Equal(4, predicted.Ranks);
        Assert.Null(planner.Plan(Runahead.Prefill.PartitionKind.Even, 6000, 4));
    }
}
