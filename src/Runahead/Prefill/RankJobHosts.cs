using Runahead.Distributed;

namespace Runahead.Prefill;

/// <summary>Builds the ranks a parallel prefill runs on, for a transport.</summary>
public static class RankJobHosts
{
    /// <summary>
    /// Starts <paramref name="ranks"/> ranks that each load <paramref name="modelPath"/> with
    /// <paramref name="threadsPerRank"/> compute threads (model load happens here, outside any TTFT).
    /// </summary>
    public static IRankJobHost Create(RankTransport transport, string modelPath, int ranks, int threadsPerRank, LinkShaper? links,
        TextWriter? workerLog = null)
    {
        if (ranks < 1) throw new RunaheadException($"--ranks: {ranks} must be at least 1");
        if (threadsPerRank < 1) throw new RunaheadException($"--threads-per-rank: {threadsPerRank} must be at least 1");
        return transport switch
        {
            RankTransport.InProcess => InProcessRankJobHost.Load(modelPath, ranks, threadsPerRank, links),
            _ => throw new RunaheadException($"--transport {transport}: worker processes are not available in this build yet; use --transport inproc"),
        };
    }
}
