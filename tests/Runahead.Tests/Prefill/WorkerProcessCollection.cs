namespace Runahead.Tests.Prefill;

/// <summary>
/// Tests that start worker processes over shared memory run alone (not beside other test classes): their transient
/// /dev/shm segments carry this test process's id, which the distributed tests' leftover-segment checks look for.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class WorkerProcessCollection
{
    public const string Name = "Prefill worker processes";
}
