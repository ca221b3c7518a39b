using System.Diagnostics;

namespace Runahead.Planning;

/// <summary>What the reproduction of the paper's study runs (defaults: the full study; tests shrink it).</summary>
public sealed class ReproductionOptions
{
    public IReadOnlyList<string> Models { get; init; } = ["llama2-7b", "falcon-7b"];
    public IReadOnlyList<double> Bandwidths { get; init; } = [300e9, 10e9];
    public IReadOnlyList<int> Ranks { get; init; } = [2, 4, 8];
    public IReadOnlyList<int> Tokens { get; init; } = [1024, 2048, 4096, 8192, 16384];

    /// <summary>
    /// KVR-P table lengths: none of <see cref="Tokens"/> (each lies between two of them, about x1.4 apart), so every
    /// KVR-P point in the study is a real interpolation.
    /// </summary>
    public IReadOnlyList<int> TableTokens { get; init; } = [768, 1280, 1792, 2560, 3584, 5120, 7168, 10240, 14336, 18432];

    public double LatencySeconds { get; init; } = 5e-6;

    /// <summary>Noisy-link study: context, ranks, share of capacity the sidecar bursts take, burst/gap mean, seeds.</summary>
    public int NoiseTokens { get; init; } = 8192;
    public IReadOnlyList<int> NoiseRanks { get; init; } = [4, 8];
    public double NoiseShare { get; init; } = 0.5;
    public double NoiseBurstSeconds { get; init; } = 1e-3;
    public int NoiseSeeds { get; init; } = 5;

    /// <summary>Attention-only bound: context and rank counts.</summary>
    public int BoundTokens { get; init; } = 16384;
    public IReadOnlyList<int> BoundRanks { get; init; } = [1, 2, 4, 8];
}

/// <summary>One point of the study; <see cref="TspFreeLinks"/> is TSP with infinitely fast links (its compute alone).</summary>
public sealed record StudyPoint(string Model, double Bandwidth, int Ranks, int Tokens, double Single, double Tsp, double TspFreeLinks, double TspCausal,
    double KvrEven, double KvrSearched, double KvrPredicted, int[] SearchedChunks, int[] PredictedChunks, double SearchSeconds);

public sealed record NoisePoint(string Model, double Bandwidth, int Ranks, int Tokens, double TspClean, double TspNoisy,
    double KvrClean, double KvrNoisy, double KvrEvenClean, double KvrEvenNoisy, string NoisyLinks)
{
    public double TspSlowdown => TspNoisy / TspClean - 1;
    public double KvrSlowdown => KvrNoisy / KvrClean - 1;
    public double KvrEvenSlowdown => KvrEvenNoisy / KvrEvenClean - 1;
}

/// <summary>Attention-only TTFT of P ranks relative to a dense single rank's a C^2 per layer (the paper's T(1)).</summary>
public sealed record BoundPoint(int Ranks, double PaperRatio, double KvrSearchedRatio, double KvrEvenRatio, double TspCausalRatio);

/// <summary>KVR-P's gap to KVR-S on the smooth fitted cost model, per (model, bandwidth): the acceptance setting.</summary>
public sealed record FitGap(string Model, double Bandwidth, double WorstGap, double MeanGap, int Points);

public sealed class ReproductionResult
{
    public required string CalibrationSource { get; init; }
    public required string Device { get; init; }
    public double? MatmulTflops { get; init; }
    public required IReadOnlyDictionary<string, string> CostModels { get; init; }

    /// <summary>The causal least-squares fit per model (its a0 is the fixed per-layer overhead).</summary>
    public required IReadOnlyDictionary<string, CostFit> CausalFits { get; init; }
    public required IReadOnlyList<StudyPoint> Points { get; init; }
    public required IReadOnlyList<NoisePoint> Noise { get; init; }
    public required IReadOnlyList<BoundPoint> Bound { get; init; }
    public required IReadOnlyList<FitGap> FitGaps { get; init; }
    public required ReproductionOptions Options { get; init; }

    /// <summary>Chrome trace of KVR-S for the first model at the largest context and rank count (for the figures).</summary>
    public required IReadOnlyList<SimSpan> ExampleTimeline { get; init; }
    public required string ExampleTitle { get; init; }
    public TimeSpan Elapsed { get; init; }

    /// <summary>Real runs on this host beside the simulator (empty when not run).</summary>
    public IReadOnlyList<HostRun> HostRuns { get; set; } = [];

    /// <summary>What the host runs used: model, calibration, threads (for the document).</summary>
    public string HostSetup { get; set; } = "";

    /// <summary>The host options of the command that produced the runs (for the regenerating section).</summary>
    public string HostArguments { get; set; } = "--host-tokens 512,2048 --host-ranks 1,2 --host-repeats 5";
}

/// <summary>
/// Runs the paper's study on the simulator: TTFT of TSP, KVR-E, KVR-S and KVR-P over context lengths, rank counts and
/// link bandwidths; the noisy-link study; the attention-only bound. Every number comes from a simulator run.
/// </summary>
public static class ReproductionStudy
{
    public static ReproductionResult Run(Calibration calibration, ReproductionOptions options, Action<string>? progress = null,
        CancellationToken cancellationToken = default)
    {
        var clock = Stopwatch.StartNew();
        var points = new List<StudyPoint>();
        var noise = new List<NoisePoint>();
        var gaps = new List<FitGap>();
        var descriptions = new Dictionary<string, string>();
        var fits = new Dictionary<string, CostFit>();
        var searchOptions = new PartitionSearchOptions { CancellationToken = cancellationToken };
        IReadOnlyList<SimSpan> example = [];
        string exampleTitle = "";
        foreach (var model in options.Models)
        {
            var shape = ShapeCatalog.Get(model);
            var cost = calibration.CostModel(shape, model, CostSource.Hybrid);
            var fitCost = calibration.CostModel(shape, model, CostSource.Fit);
            descriptions[model] = cost.Describe();
            fits[model] = cost.CausalFit;
            foreach (double bw in options.Bandwidths)
            {
                progress?.Invoke($"{model} at {Units.FormatBandwidth(bw)}");
                var links = LinkTopology.Uniform(bw, options.LatencySeconds);
                var sim = new Simulator(cost, links);
                var freeLinks = new Simulator(cost, LinkTopology.Uniform(double.PositiveInfinity, 0));
                var ranks = options.Ranks.Where(p => p <= options.Tokens.Min()).ToArray();
                var table = PartitionTable.Build(model, calibration.Source, _ => sim, options.TableTokens, ranks, [bw], searchOptions);
                foreach (int p in ranks)
                {
                    foreach (int c in options.Tokens)
                    {
                        var even = Partition.Even(c, p);
                        var searchClock = Stopwatch.StartNew();
                        var searched = PartitionSearch.Search(new SimulatedTtft(sim), c, p, searchOptions);
                        searchClock.Stop();
                        var predicted = table.Predict(c, p, bw);
                        points.Add(new StudyPoint(model, bw, p, c,
                            sim.Ttft(PrefillStrategy.Single, [c]),
                            sim.Ttft(PrefillStrategy.Tsp, even),
                            freeLinks.Ttft(PrefillStrategy.Tsp, even),
                            sim.Ttft(PrefillStrategy.TspCausal, even),
                            sim.Ttft(PrefillStrategy.Kvr, even),
                            searched.Cost,
                            sim.Ttft(PrefillStrategy.Kvr, predicted),
                            searched.Chunks, predicted, searchClock.Elapsed.TotalSeconds));
                        if (example.Count == 0 && model == options.Models[0] && bw == options.Bandwidths[0] && p == ranks.Max() && c == options.Tokens.Max())
                        {
                            example = sim.Run(PrefillStrategy.Kvr, searched.Chunks).Timeline;
                            exampleTitle = $"{model} KVR-S {p} ranks x {Units.FormatTokens(c)} at {Units.FormatBandwidth(bw)}";
                        }
                    }
                }
                // The acceptance setting of KVR-P: the smooth fitted model, table at the default lengths, probes between them.
                var fitSim = new Simulator(fitCost, links);
                var fitTable = PartitionTable.Build(model, calibration.Source, _ => fitSim, options.TableTokens, ranks, [bw], searchOptions);
                double worst = 0, sum = 0;
                int n = 0;
                foreach (int p in ranks)
                {
                    foreach (int c in options.Tokens)
                    {
                        double s = PartitionSearch.Search(new SimulatedTtft(fitSim), c, p, searchOptions).Cost;
                        double gap = fitSim.Ttft(PrefillStrategy.Kvr, fitTable.Predict(c, p, bw)) / s - 1;
                        worst = Math.Max(worst, gap);
                        sum += gap;
                        n++;
                    }
                }
                gaps.Add(new FitGap(model, bw, worst, sum / Math.Max(1, n), n));

                foreach (int p in options.NoiseRanks.Where(p => p <= options.NoiseTokens))
                {
                    var even = Partition.Even(options.NoiseTokens, p);
                    // Partitions are chosen on clean links: a planner cannot know when sidecar traffic will come.
                    var searched = PartitionSearch.Search(new SimulatedTtft(sim), options.NoiseTokens, p, searchOptions).Chunks;
                    var noisyLinks = NoisyLinks(p);
                    double tspClean = sim.Ttft(PrefillStrategy.Tsp, even), kvrClean = sim.Ttft(PrefillStrategy.Kvr, searched);
                    double kvrEvenClean = sim.Ttft(PrefillStrategy.Kvr, even);
                    double tspNoisy = 0, kvrNoisy = 0, kvrEvenNoisy = 0;
                    for (int seed = 1; seed <= options.NoiseSeeds; seed++)
                    {
                        var noisy = links.WithBackground(new BackgroundTraffic(options.NoiseShare, options.NoiseBurstSeconds, options.NoiseBurstSeconds, seed), noisyLinks);
                        var noisySim = new Simulator(cost, noisy);
                        tspNoisy += noisySim.Ttft(PrefillStrategy.Tsp, even) / options.NoiseSeeds;
                        kvrNoisy += noisySim.Ttft(PrefillStrategy.Kvr, searched) / options.NoiseSeeds;
                        kvrEvenNoisy += noisySim.Ttft(PrefillStrategy.Kvr, even) / options.NoiseSeeds;
                    }
                    noise.Add(new NoisePoint(model, bw, p, options.NoiseTokens, tspClean, tspNoisy, kvrClean, kvrNoisy, kvrEvenClean, kvrEvenNoisy,
                        string.Join(", ", noisyLinks.Select(l => $"{l.From}->{l.To}"))));
                }
            }
        }
        return new ReproductionResult
        {
            CalibrationSource = calibration.Source,
            Device = calibration.Device,
            MatmulTflops = calibration.MatmulTflops,
            CostModels = descriptions,
            CausalFits = fits,
            Points = points,
            Noise = noise,
            Bound = Bound(options, searchOptions),
            FitGaps = gaps,
            Options = options,
            ExampleTimeline = example,
            ExampleTitle = exampleTitle,
            Elapsed = clock.Elapsed,
        };
    }

    /// <summary>Sidecar traffic on every other link of the ring (1->2, 3->4, ...): "some links", as in the paper.</summary>
    public static List<(int From, int To)> NoisyLinks(int ranks)
    {
        var links = new List<(int, int)>();
        for (int i = 1; i < ranks; i += 2) links.Add((i, (i + 1) % ranks));
        if (links.Count == 0) links.Add((0, 1 % Math.Max(2, ranks)));
        return links;
    }

    /// <summary>
    /// The paper's attention-only bound T(P) = a (C^2/2)(1/P + 1/P^2) against T(1) = a C^2, next to the simulator
    /// on a pure attention cost (t = a c (p + c/2): no linear work, infinite bandwidth, the models' 32 layers).
    /// </summary>
    private static List<BoundPoint> Bound(ReproductionOptions options, PartitionSearchOptions searchOptions)
    {
        const double a = 1e-9;
        const int layers = 32;
        var cost = LayerCostModel.FromFits("attention-only", new CostFit(0, 0, a), new CostFit(0, 0, a), 0, 0, 1, layers);
        var sim = new Simulator(cost, LinkTopology.Uniform(double.PositiveInfinity, 0));
        int c = options.BoundTokens;
        double denseSingle = layers * a * (double)c * c;
        var result = new List<BoundPoint>();
        foreach (int p in options.BoundRanks)
        {
            double paper = 0.5 * (1.0 / p + 1.0 / ((double)p * p));
            double searched = PartitionSearch.Search(new SimulatedTtft(sim), c, p, searchOptions).Cost;
            var even = Partition.Even(c, p);
            result.Add(new BoundPoint(p, paper, searched / denseSingle, sim.Ttft(PrefillStrategy.Kvr, even) / denseSingle,
                sim.Ttft(PrefillStrategy.TspCausal, even) / denseSingle));
        }
        return result;
    }
}
