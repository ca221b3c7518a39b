namespace Runahead.Planning;

/// <summary>What a partition search minimises: a cost (usually TTFT in seconds) of chunk sizes.</summary>
public interface IPartitionObjective
{
    double Evaluate(ReadOnlySpan<int> chunks);
}

/// <summary>TTFT of a strategy on the simulator.</summary>
public sealed class SimulatedTtft(Simulator simulator, PrefillStrategy strategy = PrefillStrategy.Kvr) : IPartitionObjective
{
    public double Evaluate(ReadOnlySpan<int> chunks) => simulator.Ttft(strategy, chunks);
}
