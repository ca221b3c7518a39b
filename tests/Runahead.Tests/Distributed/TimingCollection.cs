namespace Runahead.Tests.Distributed;

/// <summary>
/// Pacing-accuracy tests run alone (after the parallel ones): on a 2-core machine, tests running beside them would
/// delay the receiving thread and measure the scheduler rather than the pacing.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TimingCollection
{
    public const string Name = "Distributed timing";
}
