namespace Runahead.Tests.Distributed;

/// <summary>
/// Tests that run alone (after the parallel ones): pacing accuracy, where tests beside them on a 2-core machine would
/// delay the receiving thread and measure the scheduler, and /dev/shm checks that other tests' segments would confuse.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TimingCollection
{
    public const string Name = "Distributed timing";
}
