using System.Diagnostics;
using Runahead.Distributed;

namespace Runahead.Tests.Distributed;

/// <summary>A start that fails leaves no segment behind (checked on /dev/shm, hence alone in the serial collection).</summary>
[Collection(TimingCollection.Name)]
public class StartupFailureTests
{
    private static readonly TimeSpan FailureBound = TimeSpan.FromSeconds(10);

    [Theory]
    [InlineData(RankTransport.InProcess)]
    [InlineData(RankTransport.SharedMemory)]
    public async Task ARankFailingToStartFailsTheStartAndCleansUp(RankTransport transport)
    {
        var before = Directory.GetFiles("/dev/shm", $"{SharedMemorySegment.NamePrefix}{Environment.ProcessId}-*");
        var sw = Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<RankFailedException>(() => RankPool.StartAsync(new RankPoolOptions
        {
            WorldSize = 3,
            ProgramType = typeof(FailingInitProgram),
            Transport = transport,
        }));
        Assert.True(sw.Elapsed < FailureBound + TimeSpan.FromSeconds(5), $"took {sw.Elapsed}");
        Assert.Contains("cannot load on this rank", e.Message);
        Assert.Equal(1, e.FailedRank);
        // This class runs alone, so any new segment of this process would be the failed start's.
        var after = Directory.GetFiles("/dev/shm", $"{SharedMemorySegment.NamePrefix}{Environment.ProcessId}-*");
        Assert.Empty(after.Except(before));
    }
}
