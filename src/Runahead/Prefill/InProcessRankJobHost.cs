using Runahead.Distributed;
using Runahead.Models;

namespace Runahead.Prefill;

/// <summary>Ranks as tasks of this process, each with its own model (and compute pool), over an <see cref="InProcessGroup"/>.</summary>
public sealed class InProcessRankJobHost : IRankJobHost
{
    private readonly InProcessGroup _group;
    private readonly RankJobExecutor[] _executors;
    private readonly Model[] _models;

    /// <param name="models">One model per rank, owned (disposed) by this host from now on.</param>
    public InProcessRankJobHost(IReadOnlyList<Model> models, LinkShaper? links = null, TimeSpan? receiveTimeout = null)
    {
        if (models.Count < 1) throw new ArgumentException("need at least one rank", nameof(models));
        _models = models.ToArray();
        _group = new InProcessGroup(_models.Length, links, receiveTimeout);
        _executors = new RankJobExecutor[_models.Length];
        for (int r = 0; r < _models.Length; r++) _executors[r] = new RankJobExecutor(_models[r], _group[r]);
    }

    public static InProcessRankJobHost Load(string modelPath, int ranks, int threadsPerRank, LinkShaper? links = null, int? contextLength = null)
    {
        var models = new List<Model>(ranks);
        try
        {
            for (int r = 0; r < ranks; r++) models.Add(Model.Load(modelPath, new ModelLoadOptions { Threads = threadsPerRank, ContextLength = contextLength }));
            return new InProcessRankJobHost(models, links);
        }
        catch
        {
            foreach (var m in models) m.Dispose();
            throw;
        }
    }

    public int Ranks => _models.Length;

    public bool IsClient => true;

    public async Task<IReadOnlyList<byte[]>> RunJobAsync(ReadOnlyMemory<byte> request, Action<int, ReadOnlyMemory<byte>> onEmit, CancellationToken ct)
    {
        var replies = new byte[Ranks][];
        await _group.RunAsync(async (comm, token) =>
        {
            int rank = comm.Rank;
            replies[rank] = await _executors[rank].RunAsync(request, (message, _) =>
            {
                onEmit(rank, message);
                return ValueTask.CompletedTask;
            }, token).ConfigureAwait(false);
        }, ct).ConfigureAwait(false);
        return replies;
    }

    public void Dispose()
    {
        _group.Dispose();
        foreach (var m in _models) m.Dispose();
    }
}
