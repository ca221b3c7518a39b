using Runahead.Prefill;

namespace Runahead.Tests.Prefill;

public class PartitionTests
{
    [Theory]
    [InlineData(9, 3, new[] { 3, 3, 3 })]
    [InlineData(10, 4, new[] { 3, 3, 2, 2 })]
    [InlineData(5, 5, new[] { 1, 1, 1, 1, 1 })]
    [InlineData(7, 1, new[] { 7 })]
    public void Even_split_differs_by_at_most_one_and_front_loads_the_remainder(int tokens, int ranks, int[] expected)
    {
        var p = Partition.Even(tokens, ranks);
        Assert.Equal(expected, p.Chunks);
        Assert.Equal(tokens, p.Tokens);
        for (int r = 0; r < ranks; r++) Assert.Equal(p.Start(r) + p.Chunk(r), p.End(r));
        Assert.Equal(0, p.Start(0));
        Assert.Equal(tokens, p.End(ranks - 1));
    }

    [Fact]
    public void Explicit_list_is_parsed_and_resolved()
    {
        var p = PartitionSpec.Parse("4, 3,2").Resolve(9, 3);
        Assert.Equal(new[] { 4, 3, 2 }, p.Chunks);
        Assert.Equal(4, p.Start(1));
        Assert.Equal(7, p.End(1));
        Assert.Equal("4,3,2", p.ToString());
    }

    [Theory]
    [InlineData("4,3", 9, 3, "2 chunk sizes given for 3 ranks")]
    [InlineData("4,3,3", 9, 3, "sum to 10 but the prompt has 9 tokens")]
    [InlineData("9,0,0", 9, 3, "chunk 1 has 0 tokens")]
    [InlineData("4,x,2", 9, 3, "'x' is not a count")]
    [InlineData("4,-1,6", 9, 3, "'-1' is not a count")]
    [InlineData("even", 2, 3, "fewer than the 3 ranks")]
    [InlineData("even", 5, 0, "need at least 1")]
    public void Bad_partitions_give_a_clear_error(string text, int tokens, int ranks, string expected)
    {
        var e = Assert.Throws<RunaheadException>(() => PartitionSpec.Parse(text).Resolve(tokens, ranks));
        Assert.Contains(expected, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Theory]
    [InlineData("searched")]
    [InlineData("predicted")]
    public void Planned_partitions_without_a_table_point_to_calibrate(string word)
    {
        var spec = PartitionSpec.Parse(word);
        var e = Assert.Throws<RunaheadException>(() => spec.Resolve(100, 4));
        Assert.Contains("no partition table for this model/host", e.Message);
        Assert.Contains("runahead calibrate", e.Message);
        // One rank has only one possible split.
        Assert.Equal(new[] { 100 }, spec.Resolve(100, 1).Chunks);
    }

    [Fact]
    public void Planned_partitions_use_the_planner_and_validate_its_answer()
    {
        var spec = PartitionSpec.Parse("predicted");
        Assert.Equal(new[] { 50, 30, 20 }, spec.Resolve(100, 3, (_, _, _) => new[] { 50, 30, 20 }).Chunks);
        var e = Assert.Throws<RunaheadException>(() => spec.Resolve(100, 3, (_, _, _) => new[] { 50, 30, 30 }));
        Assert.Contains("planner", e.Message);
    }
}
