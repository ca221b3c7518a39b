using Runahead.Distributed;

namespace Runahead.Prefill;

/// <summary>Ranks as the worker processes (or MPI ranks) of a <see cref="RankPool"/> running <see cref="PrefillRankProgram"/>.</summary>
public sealed class RankPoolJobHost : IRankJobHost
{
    private readonly RankPool _pool;

    private RankPoolJobHost(RankPool pool) => _pool = pool;

    public static async Task<RankPoolJobHost> StartAsync(RankTransport transport, string modelPath, int ranks, int threadsPerRank,
        LinkShaper? links, TextWriter? workerLog, CancellationToken ct, int? contextLength = null, string? workerExecutable = null,
        long sharedMemoryRingBytes = 0)
    {
        var pool = await RankPool.StartAsync(new RankPoolOptions
        {
            WorldSize = ranks,
            ProgramType = typeof(PrefillRankProgram),
            Transport = transport,
            ModelPath = Path.GetFullPath(modelPath),
            ThreadsPerRank = threadsPerRank,
            Links = links,
            WorkerLog = workerLog,
            WorkerExecutable = workerExecutable,
            ProgramArguments = PrefillRankProgram.Arguments(contextLength),
            RingBytes = sharedMemoryRingBytes,
        }, ct).ConfigureAwait(false);
        return new RankPoolJobHost(pool);
    }

    public int Ranks => _pool.WorldSize;

    public bool IsClient => _pool.IsClient;

    /// <summary>Process start and model load of every worker (reported apart from TTFT).</summary>
    public TimeSpan StartupTime => _pool.StartupTime;

    public async Task<IReadOnlyList<byte[]>> RunJobAsync(ReadOnlyMemory<byte> request, Action<int, ReadOnlyMemory<byte>> onEmit, CancellationToken ct)
    {
        var result = await _pool.RunJobAsync(request, onEmit, ct).ConfigureAwait(false);
        return result.Replies;
    }

    public void Dispose() => _pool.Dispose();
}
