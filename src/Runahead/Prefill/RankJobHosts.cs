using Runahead.Distributed;

namespace Runahead.Prefill;

/// <summary>Builds the ranks a parallel prefill runs on, for a transport.</summary>
public static class RankJobHosts
{
    /// <summary>
    /// Starts <paramref name="ranks"/> ranks that each load <paramref name="modelPath"/> with
    /// <paramref name="threadsPerRank"/> compute threads (model load happens here, outside any TTFT);
    /// <paramref name="contextLength"/> overrides the file's context length (as generate's --ctx-size);
    /// <paramref name="workerExecutable"/> is the `runahead` binary worker processes run (null: found beside this assembly);
    /// <paramref name="sharedMemoryRingBytes"/> is the ring of each shared-memory link (0: automatic, see
    /// <see cref="RankPoolOptions.EffectiveRingBytes"/>; other transports ignore it).
    /// </summary>
    public static async Task<IRankJobHost> CreateAsync(RankTransport transport, string modelPath, int ranks, int threadsPerRank, LinkShaper? links,
        TextWriter? workerLog, CancellationToken ct, int? contextLength = null, string? workerExecutable = null, long sharedMemoryRingBytes = 0)
    {
        if (sharedMemoryRingBytes != 0) RankPoolOptions.ValidateRingBytes(sharedMemoryRingBytes, ranks);
        if (ranks < 1) throw new RunaheadException($"--ranks: {ranks} must be at least 1");
        if (threadsPerRank < 1) throw new RunaheadException($"--threads-per-rank: {threadsPerRank} must be at least 1");
        if (!File.Exists(modelPath) && !Directory.Exists(modelPath))
            throw new RunaheadException($"--model {modelPath}: no such file or folder");
        if (transport == RankTransport.InProcess) return InProcessRankJobHost.Load(modelPath, ranks, threadsPerRank, links, contextLength);
        return await RankPoolJobHost.StartAsync(transport, modelPath, ranks, threadsPerRank, links, workerLog, ct, contextLength, workerExecutable,
                sharedMemoryRingBytes)
            .ConfigureAwait(false);
    }
}
