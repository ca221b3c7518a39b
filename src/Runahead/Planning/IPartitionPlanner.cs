namespace Runahead.Planning;

/// <summary>Chooses chunk sizes for a prompt of <c>tokens</c> tokens on <c>ranks</c> ranks.</summary>
public interface IPartitionPlanner
{
    string Name { get; }
    int[] Plan(int tokens, int ranks);
}

/// <summary>KVR-E: even chunks.</summary>
public sealed class EvenPartitionPlanner : IPartitionPlanner
{
    public string Name => "even";
    public int[] Plan(int tokens, int ranks) => Partition.Even(tokens, ranks);
}

/// <summary>Chunks proportional to given weights (one per rank).</summary>
public sealed class ExplicitPartitionPlanner(double[] weights) : IPartitionPlanner
{
    public string Name => "explicit";

    public int[] Plan(int tokens, int ranks)
    {
        if (ranks != weights.Length)
            throw new RunaheadException($"--partition: {weights.Length} chunk weights given for {ranks} ranks");
        return Partition.FromWeights(weights, tokens);
    }
}

/// <summary>KVR-S: searches the simulator for each request (seconds, not the paper's hours).</summary>
public sealed class SearchedPartitionPlanner(Simulator simulator, PartitionSearchOptions? options = null) : IPartitionPlanner
{
    public string Name => "searched";

    public int[] Plan(int tokens, int ranks) =>
        PartitionSearch.Search(new SimulatedTtft(simulator), tokens, ranks, options).Chunks;
}

/// <summary>KVR-P: interpolates a table of KVR-S results.</summary>
public sealed class PredictedPartitionPlanner(PartitionTable table, double bandwidthBytesPerSecond) : IPartitionPlanner
{
    public string Name => "predicted";
    public int[] Plan(int tokens, int ranks) => table.Predict(tokens, ranks, bandwidthBytesPerSecond);
}
