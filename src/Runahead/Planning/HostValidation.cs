using Runahead.Models;
using Runahead.Prefill;

namespace Runahead.Planning;

/// <summary>One real prefill on this host beside the simulator's prediction for the same point.</summary>
public sealed record HostRun(string Strategy, string PartitionLabel, int Tokens, int Ranks, int[] Chunks, double MeasuredMs, double SimulatedMs)
{
    public double Error => SimulatedMs / MeasuredMs - 1;
}

public sealed class HostValidationOptions
{
    public IReadOnlyList<int> Tokens { get; init; } = [256, 512];
    public IReadOnlyList<int> Ranks { get; init; } = [2];
    public int Repeats { get; init; } = 5;
    public int ThreadsPerRank { get; init; } = 1;
    public CancellationToken CancellationToken { get; init; }
}

/// <summary>
/// Runs real prefills (the runtime's in-process ranks: one task and one compute pool per rank) of single, TSP,
/// KVR-E and KVR-S on this host, and the simulator with this host's calibration, at the same points. TTFT is the
/// median of the repeats after a warm-up. The host's ranks share its cores with everything else running, so the
/// comparison only means something when the ranks x threads fit the idle cores.
/// </summary>
public static class HostValidation
{
    public static async Task<List<HostRun>> RunAsync(string modelPath, Calibration hostCalibration, string calibrationModel,
        HostValidationOptions options, Action<string>? progress = null)
    {
        var ct = options.CancellationToken;
        int maxTokens = options.Tokens.Max();
        Model LoadOne() => Model.Load(modelPath, new ModelLoadOptions { Threads = options.ThreadsPerRank, MaxChunkTokens = maxTokens });
        ModelConfig config;
        using (var probe = LoadOne()) config = probe.Config;
        if (maxTokens > config.ContextLength) throw new RunaheadException($"{modelPath}: {maxTokens} tokens exceed the model's context of {config.ContextLength}");
        var cost = hostCalibration.CostModel(config, calibrationModel, CostSource.Hybrid);
        var links = LinkTopology.Uniform(hostCalibration.TransportBytesPerSecond ?? double.PositiveInfinity, hostCalibration.TransportLatencySeconds ?? 0);
        var sim = new Simulator(cost, links);
        var random = new Random(7);
        var runs = new List<HostRun>();
        foreach (int p in options.Ranks)
        {
            foreach (int c in options.Tokens)
            {
                var prompt = new int[c];
                for (int i = 0; i < c; i++) prompt[i] = random.Next(config.VocabSize);
                var searched = PartitionSearch.Search(new SimulatedTtft(sim), c, p).Chunks;
                var cases = new List<(PrefillStrategyKind Kind, PrefillStrategy Sim, string Label, int[] Chunks)>
                {
                    (PrefillStrategyKind.Single, PrefillStrategy.Single, "-", [c]),
                };
                if (p > 1)
                {
                    cases.Add((PrefillStrategyKind.Tsp, PrefillStrategy.Tsp, "even", Partition.Even(c, p)));
                    cases.Add((PrefillStrategyKind.Kvr, PrefillStrategy.Kvr, "even", Partition.Even(c, p)));
                    cases.Add((PrefillStrategyKind.Kvr, PrefillStrategy.Kvr, "searched", searched));
                }
                foreach (var (kind, simKind, label, chunks) in cases)
                {
                    ct.ThrowIfCancellationRequested();
                    progress?.Invoke($"{kind} {label} P={chunks.Length} C={c}");
                    var models = new Model[chunks.Length];
                    for (int r = 0; r < models.Length; r++) models[r] = LoadOne();
                    using var prefill = new InProcessParallelPrefill(kind, models, new PartitionSpec(PartitionKind.Explicit, chunks), ownsModels: true);
                    var times = new double[Math.Max(1, options.Repeats)];
                    using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                    timeout.CancelAfter(TimeSpan.FromMinutes(5));
                    await prefill.PrefillAsync(prompt, c, timeout.Token).ConfigureAwait(false);
                    for (int i = 0; i < times.Length; i++)
                        times[i] = (await prefill.PrefillAsync(prompt, c, timeout.Token).ConfigureAwait(false)).TtftMs;
                    Array.Sort(times);
                    runs.Add(new HostRun(kind.ToString(), label, c, chunks.Length, chunks, times[times.Length / 2], sim.Ttft(simKind, chunks) * 1e3));
                }
            }
        }
        return runs;
    }
}
