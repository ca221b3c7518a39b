using Runahead.Diagnostics;
using Runahead.Distributed;
using Runahead.Generation;
using Runahead.Models;

namespace Runahead.Prefill;

/// <summary>
/// Runs a parallel prefill with every rank a task of this process (an <see cref="InProcessGroup"/>): each rank has
/// its own <see cref="Model"/> instance (own compute pool and workspace, shared weights where the loader maps them).
/// For tests of the strategies and for quick experiments; real runs use worker processes.
/// </summary>
public sealed class InProcessParallelPrefill : IPrefillStrategy, IDisposable
{
    private readonly InProcessGroup _group;
    private readonly RankPrefill[] _ranks;
    private readonly Model[] _models;
    private readonly bool _ownsModels;

    /// <param name="models">One model per rank (the ranks run concurrently, so they must not share a compute pool).</param>
    public InProcessParallelPrefill(PrefillStrategyKind strategy, IReadOnlyList<Model> models, PartitionSpec partition,
        LinkShaper? links = null, TimeSpan? receiveTimeout = null, bool ownsModels = false)
    {
        ArgumentNullException.ThrowIfNull(models);
        if (models.Count < 1) throw new ArgumentException("need at least one rank", nameof(models));
        if (strategy == PrefillStrategyKind.Single && models.Count != 1)
            throw new RunaheadException($"--strategy single runs on one rank, not {models.Count}");
        Strategy = strategy;
        PartitionSpec = partition;
        _models = models.ToArray();
        _ownsModels = ownsModels;
        _group = new InProcessGroup(models.Count, links, receiveTimeout);
        _ranks = new RankPrefill[models.Count];
        for (int r = 0; r < _ranks.Length; r++) _ranks[r] = RankPrefill.Create(strategy, _models[r], _group[r]);
    }

    public PrefillStrategyKind Strategy { get; }
    public PartitionSpec PartitionSpec { get; }
    public int Ranks => _ranks.Length;

    /// <summary>The last rank's model: the one that decodes after the prefill.</summary>
    public Model LastRankModel => _models[^1];

    /// <summary>Answers --partition searched/predicted; null: those give the "run calibrate" error.</summary>
    public Func<PartitionKind, int, int, int[]?>? Planner { get; init; }

    /// <summary>Cache rows reserved beyond the prompt for decoding (capped by the context length).</summary>
    public int ReserveTokens { get; init; }

    async Task<PrefillResult> IPrefillStrategy.PrefillAsync(ReadOnlyMemory<int> promptIds, CancellationToken ct)
    {
        if (promptIds.Length == 0) throw new RunaheadException("the prompt is empty: at least one token is needed");
        int capacity = (int)Math.Min(LastRankModel.Config.ContextLength, (long)promptIds.Length + ReserveTokens);
        var result = await PrefillAsync(promptIds, Math.Max(capacity, promptIds.Length), ct).ConfigureAwait(false);
        return result.ToPrefillResult();
    }

    public async Task<ParallelPrefillResult> PrefillAsync(ReadOnlyMemory<int> promptIds, int cacheCapacity, CancellationToken ct)
    {
        var partition = PartitionSpec.Resolve(promptIds.Length, Ranks, Planner);
        var outputs = new RankPrefillOutput?[Ranks];
        long start = RankRecorder.Now();
        await _group.RunAsync(async (comm, token) =>
        {
            outputs[comm.Rank] = await _ranks[comm.Rank].RunAsync(promptIds, partition, cacheCapacity, token).ConfigureAwait(false);
        }, ct).ConfigureAwait(false);
        long end = RankRecorder.Now();
        var last = outputs[^1]!;
        var recorders = new RankRecorder[Ranks];
        for (int r = 0; r < Ranks; r++) recorders[r] = outputs[r]!.Recorder;
        var timeline = new Timeline($"{Strategy.Name()} P={Ranks} C={promptIds.Length}", start, end, recorders);
        return new ParallelPrefillResult(Strategy, partition, last.Logits!, last.Cache, timeline);
    }

    public void Dispose()
    {
        _group.Dispose();
        if (_ownsModels)
            foreach (var m in _models) m.Dispose();
    }
}
