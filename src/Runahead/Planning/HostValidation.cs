using Runahead.Distributed;
using Runahead.Models;
using Runahead.Prefill;

namespace Runahead.Planning;

/// <summary>One real prefill on this host beside the simulator's prediction for the same point.</summary>
/// <param name="SimulatedCores">The cores the simulator shared between the ranks (see <see cref="Simulator.CpuCores"/>).</param>
/// <param name="UnsharedMs">The same prediction with a core per rank (no processor sharing), for comparison.</param>
public sealed record HostRun(string Strategy, string PartitionLabel, int Tokens, int Ranks, int[] Chunks, double MeasuredMs, double SimulatedMs,
    double MeasuredMinMs = double.NaN, double MeasuredMaxMs = double.NaN, double SimulatedCores = double.PositiveInfinity, double UnsharedMs = double.NaN)
{
    public double Error => SimulatedMs / MeasuredMs - 1;
}

/// <summary>The real runs, the calibration the simulator used for them, and the machine's load while they ran.</summary>
public sealed record HostValidationResult(IReadOnlyList<HostRun> Runs, Calibration Calibration, int Rounds, string LoadAtStart, string LoadAtEnd);

public sealed class HostValidationOptions
{
    public IReadOnlyList<int> Tokens { get; init; } = [256, 512];
    public IReadOnlyList<int> Ranks { get; init; } = [2];

    /// <summary>Timed rounds: each times every point once (the median is kept) and, when calibrating, re-measures the layer.</summary>
    public int Repeats { get; init; } = 5;
    public int ThreadsPerRank { get; init; } = 1;

    /// <summary>How the ranks talk: worker processes over shared memory (the default), or tasks of this process.</summary>
    public RankTransport Transport { get; init; } = RankTransport.SharedMemory;

    /// <summary>Shortest timed batch of the calibration (see <see cref="HostCalibrationOptions.MinBatchMilliseconds"/>).</summary>
    public double CalibrationBatchMilliseconds { get; init; } = 100;
    public CancellationToken CancellationToken { get; init; }
}

/// <summary>
/// Runs real prefills on this host (single on one rank; TSP, KVR-E and KVR-S on more) through the runtime's rank
/// hosts, and the simulator on a calibration of this host at the same points. Without a given calibration the layer
/// is calibrated in every round, between the rounds of real runs, so that both see the same phases of a shared
/// machine's load; each calibration point is then the median over the rounds, as each TTFT is.
/// </summary>
/// <remarks>
/// The ranks share the host's CPU, so the simulator runs with processor sharing (<see cref="Simulator.CpuCores"/>):
/// the costs are timed with one thread alone (what a rank computing alone gets), and the cores are what P threads
/// computing at once get relative to that, P x t(1 alone) / t(P at once), timed on one of the run's points in the
/// same round. On an idle machine with P cores that is P (nobody slows down); under Linux's per-session CPU share or
/// other load it is fewer, and a rank then runs at full speed only while the others wait. With a given calibration
/// the cores are <see cref="Environment.ProcessorCount"/>.
/// </remarks>
public static class HostValidation
{
    /// <param name="fixedCalibration">This host's calibration; null: measured here, round by round.</param>
    public static async Task<HostValidationResult> RunAsync(string modelPath, Calibration? fixedCalibration, string calibrationModel,
        HostValidationOptions options, Action<string>? progress = null)
    {
        if (options.Tokens.Count == 0 || options.Ranks.Count == 0) throw new RunaheadException("host validation: no context lengths or rank counts given");
        if (options.Repeats < 1) throw new RunaheadException($"host validation: {options.Repeats} repeats, at least 1 needed");
        int maxTokens = options.Tokens.Max();
        ModelConfig config;
        using (var probe = Model.Load(modelPath, new ModelLoadOptions { Threads = 1 })) config = probe.Config;
        if (maxTokens > config.ContextLength) throw new RunaheadException($"{modelPath}: {maxTokens} tokens exceed the model's context of {config.ContextLength}");
        string loadAtStart = LoadAverage();

        // One model per rank of the largest rank count: a P-rank calibration times P threads at once, one per model.
        var rankCounts = options.Ranks.Distinct().Order().ToArray();
        var calibrators = new List<Model>();
        try
        {
            if (fixedCalibration == null)
                for (int i = 0; i < rankCounts[^1]; i++)
                    calibrators.Add(Model.Load(modelPath, new ModelLoadOptions { Threads = options.ThreadsPerRank, MaxChunkTokens = maxTokens, ContextLength = 2 * maxTokens }));
            return await RunAsync(modelPath, fixedCalibration, calibrationModel, options, progress, config, rankCounts, calibrators, loadAtStart).ConfigureAwait(false);
        }
        finally
        {
            foreach (var m in calibrators) m.Dispose();
        }
    }

    /// <summary>The name of the calibration rows measured with <paramref name="ranks"/> ranks computing at once.</summary>
    public static string RowsName(string model, int ranks) => ranks == 1 ? model : $"{model} x{ranks} at once";

    private static async Task<HostValidationResult> RunAsync(string modelPath, Calibration? fixedCalibration, string calibrationModel,
        HostValidationOptions options, Action<string>? progress, ModelConfig config, int[] rankCounts, List<Model> calibrators, string loadAtStart)
    {
        var ct = options.CancellationToken;
        var headRounds = new List<double>();
        (double Bandwidth, double Latency) transport = default;
        var names = rankCounts.Append(1).Distinct().Select(p => RowsName(calibrationModel, p)).ToArray();
        HostCalibrationOptions PointOptions(IReadOnlyList<(int C, int P)> points) => new()
        {
            Points = points, Repeats = 1, MinBatchMilliseconds = options.CalibrationBatchMilliseconds, CancellationToken = ct,
        };
        void MeasureHead() => headRounds.Add(HostCalibrator.MeasureHeadMs(calibrators[0], PointOptions([])));
        string alone = fixedCalibration != null ? calibrationModel : RowsName(calibrationModel, 1);
        // Cores for a given calibration: this host's; measured calibrations estimate them next to the runs.
        var planningCores = new Dictionary<int, double>();
        double CoresFor(int ranks) => fixedCalibration != null ? Environment.ProcessorCount : planningCores[ranks];

        // A grid calibration before the runs, for the partition search (KVR-S) only.
        Calibration planning;
        if (fixedCalibration != null)
        {
            planning = fixedCalibration;
        }
        else
        {
            progress?.Invoke("calibrating the grid for the partition search");
            var rows = new List<CalibrationRow>();
            if (rankCounts.Any(p => p > 1))
                rows.AddRange(HostCalibrator.MeasureLayer(calibrators.GetRange(0, 1), alone, PointOptions(CalibrationPoints(options.Tokens))));
            foreach (int p in rankCounts.Where(p => p > 1))
            {
                var probe = (Math.Max(1, options.Tokens.Min() / p), 0);
                var single = HostCalibrator.MeasureLayer(calibrators.GetRange(0, 1), alone, PointOptions([probe]));
                var atOnce = HostCalibrator.MeasureLayer(calibrators.GetRange(0, p), RowsName(calibrationModel, p), PointOptions([probe]));
                planningCores[p] = Cores(p, single[0], atOnce[0]);
            }
            MeasureHead();
            transport = HostCalibrator.MeasureTransport(ct);
            planning = Combine(calibrators[0], names, rows.Count > 0 ? [rows] : [], headRounds, transport);
        }

        var hosts = new List<(int Ranks, IRankJobHost Host, PrefillClient Client)>();
        var cases = new List<Case>();
        try
        {
            foreach (int p in rankCounts)
            {
                progress?.Invoke($"starting {p} rank(s) ({options.Transport})");
                var host = await RankJobHosts.CreateAsync(options.Transport, modelPath, p, options.ThreadsPerRank, null, null, ct).ConfigureAwait(false);
                hosts.Add((p, host, new PrefillClient(host)));
            }
            var random = new Random(7);
            foreach (var (p, _, client) in hosts)
            {
                foreach (int c in options.Tokens)
                {
                    if (c < p) throw new RunaheadException($"host validation: {c} tokens cannot be split over {p} ranks");
                    var prompt = new int[c];
                    for (int i = 0; i < c; i++) prompt[i] = random.Next(config.VocabSize);
                    if (p == 1)
                    {
                        cases.Add(new Case(client, prompt, PrefillStrategyKind.Single, PrefillStrategy.Single, "-", [c]));
                        continue;
                    }
                    cases.Add(new Case(client, prompt, PrefillStrategyKind.Tsp, PrefillStrategy.Tsp, "even", Partition.Even(c, p)));
                    cases.Add(new Case(client, prompt, PrefillStrategyKind.Kvr, PrefillStrategy.Kvr, "even", Partition.Even(c, p)));
                    cases.Add(new Case(client, prompt, PrefillStrategyKind.Kvr, PrefillStrategy.Kvr, "searched",
                        PartitionSearch.Search(new SimulatedTtft(Simulator(planning, config, alone, CoresFor(p), CostSource.Fit)), c, p).Chunks));
                }
            }

            // Round 0 warms every point up (JIT, first touches of weights and caches) and is not kept. In the timed
            // rounds each run is followed by the calibration of exactly the (c, p) points its ranks compute, so each
            // prediction is made from costs timed next to its own runs, under the same load.
            for (int round = 0; round <= options.Repeats; round++)
            {
                foreach (var k in cases)
                {
                    ct.ThrowIfCancellationRequested();
                    progress?.Invoke($"round {round}/{options.Repeats}: {k.Kind} {k.Label} P={k.Chunks.Length} C={k.Prompt.Length}");
                    using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                    timeout.CancelAfter(TimeSpan.FromMinutes(5));
                    var run = await k.Client.RunAsync(k.Prompt, k.Kind, new PartitionSpec(PartitionKind.Explicit, k.Chunks), 1, null, null, false, null,
                        timeout.Token).ConfigureAwait(false) ?? throw new RunaheadException("host validation must run on the client rank");
                    if (round == 0) continue;
                    k.Times.Add(run.TtftMs);
                    if (fixedCalibration == null)
                    {
                        var points = k.Points();
                        var rows = HostCalibrator.MeasureLayer(calibrators.GetRange(0, 1), alone, PointOptions(points));
                        int p = k.Chunks.Length;
                        if (p > 1)
                        {
                            // The same point with P threads at once, right after: how much the ranks slow each other.
                            var atOnce = HostCalibrator.MeasureLayer(calibrators.GetRange(0, p), RowsName(calibrationModel, p), PointOptions([points[0]]));
                            k.Cores.Add(Cores(p, rows[0], atOnce[0]));
                            progress?.Invoke($"  {p} threads at once got {k.Cores[^1]:0.00} cores");
                            rows.AddRange(atOnce);
                        }
                        k.Rows.Add(rows);
                    }
                }
                if (round > 0 && fixedCalibration == null) MeasureHead();
            }
        }
        finally
        {
            foreach (var (_, host, _) in hosts) host.Dispose();
        }

        var runs = new List<HostRun>();
        var measured = new List<CalibrationRow>();
        foreach (var k in cases)
        {
            var cal = fixedCalibration ?? Combine(calibrators[0], names, k.Rows, headRounds, transport);
            if (fixedCalibration == null) measured.AddRange(cal.Rows);
            // Like the costs, the cores are the run's own: the median of the estimates made right after its timed runs, so
            // that both see the same phases of the machine's load.
            double cores = fixedCalibration != null || k.Chunks.Length == 1 ? Environment.ProcessorCount : Median(k.Cores);
            var sim = Simulator(cal, config, alone, cores);
            double unshared = Simulator(cal, config, alone, double.PositiveInfinity).Ttft(k.SimKind, k.Chunks) * 1e3;
            runs.Add(new HostRun(k.Kind.ToString(), k.Label, k.Prompt.Length, k.Chunks.Length, k.Chunks, Median(k.Times), sim.Ttft(k.SimKind, k.Chunks) * 1e3,
                k.Times.Min(), k.Times.Max(), cores, unshared));
        }
        // What was measured, for the record: every case's points (a point two cases share appears once, from the first).
        var record = fixedCalibration ?? Combine(calibrators[0], names,
            [measured.DistinctBy(r => (r.Model, r.C, r.P)).ToList()], headRounds, transport);
        return new HostValidationResult(runs, record, options.Repeats, loadAtStart, LoadAverage());
    }

    private sealed record Case(PrefillClient Client, int[] Prompt, PrefillStrategyKind Kind, PrefillStrategy SimKind, string Label, int[] Chunks)
    {
        public List<double> Times { get; } = new();

        /// <summary>Per timed round, the cores the ranks got (see <see cref="Cores"/>).</summary>
        public List<double> Cores { get; } = new();

        /// <summary>Per timed round, the calibration rows of <see cref="Points"/>.</summary>
        public List<List<CalibrationRow>> Rows { get; } = new();

        /// <summary>The (c, p) each rank computes: its chunk and the keys before it (TSP: every other rank's, dense).</summary>
        public List<(int C, int P)> Points()
        {
            int total = Prompt.Length, prefix = 0;
            var points = new List<(int C, int P)>();
            foreach (int c in Chunks)
            {
                var point = SimKind == PrefillStrategy.Tsp ? (c, total - c) : (c, prefix);
                if (!points.Contains(point)) points.Add(point);
                prefix += c;
            }
            return points;
        }
    }

    /// <param name="source">
    /// Hybrid (measured points) to predict a run; Fit to search a partition: a search over interpolated measurements
    /// chases their noise (on a 16-core host it picked 144/147/150/98/60/124/163/138 for 8 ranks x 1024 tokens, 25 %
    /// slower than even chunks), while the fitted t = a0 + a1 c + a2 c (p + c/2) keeps the shape that matters.
    /// </param>
    private static Simulator Simulator(Calibration cal, ModelConfig config, string model, double cores, CostSource source = CostSource.Hybrid)
    {
        var cost = cal.CostModel(config, model, source);
        var links = LinkTopology.Uniform(cal.TransportBytesPerSecond ?? double.PositiveInfinity, cal.TransportLatencySeconds ?? 0);
        return new Simulator(cost, links, cores);
    }

    /// <summary>
    /// The cores <paramref name="ranks"/> threads computing at once get, in units of one thread alone: P x t(alone) /
    /// t(P at once) over the layer's three timed parts, at most P (timing noise can make P at once look faster).
    /// </summary>
    public static double Cores(int ranks, CalibrationRow alone, CalibrationRow atOnce)
    {
        double single = alone.CausalMs + alone.DenseMs, shared = atOnce.CausalMs + atOnce.DenseMs;
        if (!(single > 0) || !(shared > 0)) throw new RunaheadException($"host validation: layer timings must be positive ({single} ms alone, {shared} ms at once)");
        return Math.Min(ranks, ranks * single / shared);
    }

    /// <summary>
    /// The (c, p) points the runs need for each context length C: chunks of C/4 to C with prefixes up to slightly past
    /// C - c (two-rank splits lie on c + p = C, and interpolating between rows needs each row to reach past it).
    /// </summary>
    public static List<(int C, int P)> CalibrationPoints(IReadOnlyList<int> tokens)
    {
        var points = new SortedSet<(int C, int P)>();
        foreach (int total in tokens)
        {
            int[] eighths = [2, 3, 4, 5, 6, 8];
            foreach (int ce in eighths)
            {
                int c = Math.Max(1, total * ce / 8);
                points.Add((c, 0));
                foreach (int pe in eighths)
                {
                    int p = total * pe / 8;
                    if (ce + pe <= 9 && p > 0) points.Add((c, p));
                }
            }
        }
        return points.ToList();
    }

    /// <summary>One rank runs the whole prompt: its chunk with no prefix (and half of it, so the fit has two sizes).</summary>
    public static List<(int C, int P)> SingleRankPoints(IReadOnlyList<int> tokens)
    {
        var points = new SortedSet<(int C, int P)>();
        foreach (int total in tokens)
        {
            points.Add((Math.Max(1, total / 2), 0));
            points.Add((total, 0));
        }
        return points.ToList();
    }

    /// <summary>Each point's median over the calibration rounds so far.</summary>
    private static Calibration Combine(Model model, string[] names, List<List<CalibrationRow>> rounds, List<double> heads, (double Bandwidth, double Latency) transport)
    {
        var rows = new List<CalibrationRow>();
        for (int i = 0; i < (rounds.Count == 0 ? 0 : rounds[0].Count); i++)
        {
            var r = rounds[0][i];
            rows.Add(r with
            {
                CausalMs = Median(rounds.Select(x => x[i].CausalMs)),
                DenseMs = Median(rounds.Select(x => x[i].DenseMs)),
                QkvMs = Median(rounds.Select(x => x[i].QkvMs)),
            });
        }
        return new Calibration
        {
            Source = "measured during the host runs",
            Device = $"{Environment.ProcessorCount} logical CPUs, {model.Pool.Threads} compute thread(s) per rank",
            IsRunaheadFormat = true,
            KvBytesPerElement = sizeof(float),
            TransportBytesPerSecond = transport.Bandwidth,
            TransportLatencySeconds = transport.Latency,
            TransportMethod = "shared-memory communicator, two ranks in one process (8 MiB messages; 64 B ping-pong)",
            Threads = model.Pool.Threads,
            HeadMs = names.ToDictionary(n => n, _ => Median(heads)),
            Rows = rows,
        };
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.ToArray();
        if (sorted.Length == 0) throw new RunaheadException("host validation: no timed runs");
        Array.Sort(sorted);
        int n = sorted.Length;
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    }

    /// <summary>/proc/loadavg's three averages (Linux), or "unknown".</summary>
    public static string LoadAverage()
    {
        try
        {
            if (!File.Exists("/proc/loadavg")) return "unknown";
            var parts = File.ReadAllText("/proc/loadavg").Split(' ');
            return parts.Length >= 3 ? $"{parts[0]} {parts[1]} {parts[2]}" : "unknown";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return "unknown";
        }
    }
}
