using Runahead.Models;
using Runahead.Prefill;

namespace Runahead.Planning;

/// <summary>
/// Measures KV-Runahead partitions on real ranks: the runtime's in-process prefill (one task and one compute pool per
/// rank) of a fixed random prompt, median TTFT of a few runs after a warm-up. For KVR-S's re-measurement of its best
/// simulated candidates. Loads one model per rank on first use for a rank count and keeps them.
/// </summary>
public sealed class InProcessCandidateMeasurer : ICandidateMeasurer, IDisposable
{
    private readonly string _modelPath;
    private readonly int _threadsPerRank;
    private readonly int _repeats;
    private readonly Dictionary<int, Model[]> _models = new();

    public InProcessCandidateMeasurer(string modelPath, int threadsPerRank = 1, int repeats = 3)
    {
        if (threadsPerRank < 1) throw new RunaheadException($"threads per rank {threadsPerRank} must be >= 1");
        if (repeats < 1) throw new RunaheadException($"repeats {repeats} must be >= 1");
        _modelPath = modelPath;
        _threadsPerRank = threadsPerRank;
        _repeats = repeats;
    }

    /// <summary>Every measurement, in order (chunks, median seconds), for reports.</summary>
    public List<(int[] Chunks, double Seconds)> Measurements { get; } = [];

    public double Measure(ReadOnlySpan<int> chunks, CancellationToken cancellationToken)
    {
        var parts = chunks.ToArray();
        int tokens = parts.Sum();
        if (!_models.TryGetValue(parts.Length, out var models))
        {
            models = new Model[parts.Length];
            for (int r = 0; r < models.Length; r++)
                models[r] = Model.Load(_modelPath, new ModelLoadOptions { Threads = _threadsPerRank, MaxChunkTokens = Math.Max(16, tokens) });
            _models[parts.Length] = models;
        }
        var config = models[0].Config;
        if (tokens > config.ContextLength) throw new RunaheadException($"{_modelPath}: {tokens} tokens exceed the model's context of {config.ContextLength}");
        var random = new Random(tokens);
        var prompt = new int[tokens];
        for (int i = 0; i < tokens; i++) prompt[i] = random.Next(config.VocabSize);
        using var prefill = new InProcessParallelPrefill(PrefillStrategyKind.Kvr, models, new PartitionSpec(PartitionKind.Explicit, parts));
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromMinutes(5));
        // The runtime's API is asynchronous; the search calls this synchronously from a CLI thread with no
        // synchronisation context, so blocking here cannot deadlock.
        prefill.PrefillAsync(prompt, tokens, timeout.Token).GetAwaiter().GetResult();
        var times = new double[_repeats];
        for (int i = 0; i < times.Length; i++)
            times[i] = prefill.PrefillAsync(prompt, tokens, timeout.Token).GetAwaiter().GetResult().TtftMs * 1e-3;
        Array.Sort(times);
        double median = times[times.Length / 2];
        Measurements.Add((parts, median));
        return median;
    }

    public void Dispose()
    {
        foreach (var models in _models.Values)
            foreach (var m in models) m.Dispose();
        _models.Clear();
    }
}
