using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Runahead.Diagnostics;
using Runahead.Distributed;
using Runahead.Generation;
using Runahead.Prefill;

namespace Runahead.Cli.Commands;

/// <summary>
/// The parallel-prefill options shared by <c>generate</c> and <c>bench ttft</c>: ranks, strategy, partition,
/// transport, threads per rank and link emulation.
/// </summary>
public sealed class PrefillOptions
{
    public Option<int> Ranks { get; } = new("--ranks")
    {
        Description = "Ranks (worker processes) sharing the prefill; more than 1 implies --strategy kvr unless given",
        DefaultValueFactory = _ => 1,
    };

    public Option<string> Strategy { get; } = new("--strategy")
    {
        Description = $"Prefill strategy: {PrefillStrategyNames.Accepted} (tsp = the paper's dense-then-mask baseline)",
        DefaultValueFactory = _ => "single",
    };

    public Option<string> Partition { get; } = new("--partition")
    {
        Description = "Split of the prompt over ranks: even, searched, predicted, or token counts per rank (e.g. 4200,3100,1800)",
        DefaultValueFactory = _ => "even",
    };

    public Option<string> Transport { get; } = new("--transport")
    {
        Description = "How ranks talk: shm (worker processes on this host, default), mpi (under mpiexec), inproc (threads; testing)",
        DefaultValueFactory = _ => "shm",
    };

    public Option<int> ThreadsPerRank { get; } = new("--threads-per-rank")
    {
        Description = "Compute threads of each rank (default: cores / ranks, at least 1)",
    };

    public Option<string> LinkBandwidth { get; } = new("--link-bandwidth")
    {
        Description = "Emulated bandwidth of every rank-to-rank link (e.g. 10GB/s, 300GB/s, inf)",
    };

    public Option<string> LinkLatency { get; } = new("--link-latency")
    {
        Description = "Emulated latency of every link (e.g. 5us, 1ms)",
    };

    public Option<string> Links { get; } = new("--links")
    {
        Description = "File with a P x P bandwidth matrix (rows: source rank; GB/s or with units)",
    };

    public Option<string> PartitionTable { get; } = new("--partition-table")
    {
        Description = "KVR-S/KVR-P partition table (JSON from the planning tools) that answers --partition searched|predicted",
    };

    public Option<string> Calibration { get; } = new("--calibration")
    {
        Description = "Host calibration (from `runahead calibrate`): --partition searched runs KVR-S on the simulator (the calibration's least-squares cost fit) for this prompt; predicted interpolates --partition-table or a table built from it",
    };

    public Option<string> CalibrationModel { get; } = new("--calibration-model")
    {
        Description = "Which model's rows of --calibration to use (default: its only model, or the one named like the model file)",
    };

    public Option<string> Trace { get; } = new("--trace")
    {
        Description = "Write the prefill's per-rank timeline as Chrome trace-event JSON (open in Perfetto)",
    };

    public Option<string[]> Sidecar { get; } = new("--sidecar")
    {
        Description = "Background traffic on a link: SRC->DST:SHARE%:BURST/PERIOD (e.g. 1->2:50%:2ms/10ms); repeatable",
        AllowMultipleArgumentsPerToken = false,
    };

    public Option<string> ShmRing { get; } = new("--shm-ring")
    {
        Description = "Advanced: ring buffer of each shared-memory link, e.g. 1MiB, 64MiB (default auto: 256 MiB shared by the P(P-1) links, 1..64 MiB each); a K,V hand-off over half a ring travels in fragments as the receiver takes them",
        DefaultValueFactory = _ => "auto",
    };

    /// <summary>
    /// Adds the options except --ranks (generate takes one number, bench a list) and, for bench, --strategy (a list there).
    /// </summary>
    public void AddTo(Command command, bool includeStrategy = true, bool includeRanks = false)
    {
        if (includeRanks)
        {
            command.Options.Add(Ranks);
            command.Options.Add(Trace);
        }
        if (includeStrategy) command.Options.Add(Strategy);
        command.Options.Add(Partition);
        command.Options.Add(PartitionTable);
        command.Options.Add(Calibration);
        command.Options.Add(CalibrationModel);
        command.Options.Add(Transport);
        command.Options.Add(ThreadsPerRank);
        command.Options.Add(LinkBandwidth);
        command.Options.Add(LinkLatency);
        command.Options.Add(Links);
        command.Options.Add(Sidecar);
        command.Options.Add(ShmRing);
    }

    /// <summary>--shm-ring in bytes, 0 for automatic; checked against the transport and the size limits (per rank count later).</summary>
    public long ReadShmRing(ParseResult result, RankTransport transport)
    {
        var text = (result.GetValue(ShmRing) ?? "auto").Trim();
        if (text.Length == 0 || text.Equals("auto", StringComparison.OrdinalIgnoreCase)) return 0;
        if (transport != RankTransport.SharedMemory)
            throw new RunaheadException($"--shm-ring: applies to --transport shm only, not {result.GetValue(Transport)}");
        long bytes = WorkerCommand.ParseBytes(text, "--shm-ring");
        RankPoolOptions.ValidateRingBytes(bytes, 1);
        return bytes;
    }

    public static RankTransport ParseTransport(string? text) => (text ?? "shm").Trim().ToLowerInvariant() switch
    {
        "shm" or "shared-memory" => RankTransport.SharedMemory,
        "mpi" => RankTransport.Mpi,
        "inproc" or "in-process" => RankTransport.InProcess,
        _ => throw new RunaheadException($"--transport: unknown transport '{text}'; expected shm, mpi or inproc"),
    };

    /// <summary>The link settings as given; turned into a shaper per world size by <see cref="LinkSettings.Build"/>.</summary>
    public LinkSettings ReadLinks(ParseResult result) => new(
        result.GetValue(LinkBandwidth), result.GetValue(LinkLatency), result.GetValue(Links), result.GetValue(Sidecar) ?? []);

    /// <summary>The validated settings of a <c>generate</c> run (its --ranks and the rest).</summary>
    public PrefillSettings Read(ParseResult result) => Read(result, result.GetValue(Ranks));

    /// <summary>The validated settings for a run on <paramref name="ranks"/> ranks.</summary>
    public PrefillSettings Read(ParseResult result, int ranks)
    {
        if (ranks < 1) throw new RunaheadException($"--ranks: {ranks} must be at least 1");
        var strategy = PrefillStrategyNames.Parse(result.GetValue(Strategy) ?? "single");
        // More than one rank without a strategy means the paper's method.
        if (strategy == PrefillStrategyKind.Single && ranks > 1)
        {
            if (result.GetResult(Strategy) is { Implicit: false })
                throw new RunaheadException($"--strategy single runs on one rank; use --strategy tsp, tsp-causal or kvr with --ranks {ranks}");
            strategy = PrefillStrategyKind.Kvr;
        }
        var partition = PartitionSpec.Parse(result.GetValue(Partition));
        var transport = ParseTransport(result.GetValue(Transport));
        int threads = ThreadsFor(result, ranks);
        var links = ReadLinks(result);
        long ring = ReadShmRing(result, transport);
        if (ring != 0) RankPoolOptions.ValidateRingBytes(ring, ranks);
        return new PrefillSettings(ranks, strategy, partition, transport, threads, links)
        {
            ShmRingBytes = ring,
            Planner = ReadPlanner(result, links),
            TracePath = result.GetValue(Trace),
        };
    }

    /// <summary>
    /// What answers --partition searched|predicted once the model's shape is known: --calibration (KVR-S searched on
    /// the simulator for any length; KVR-P from --partition-table or a table built from the calibration) and/or
    /// --partition-table alone (KVR-P interpolates it; KVR-S takes its entry for exactly this rank count and length).
    /// Null when neither is given (those words then ask for a calibration). Files are read and checked now.
    /// </summary>
    public PlannerSource? ReadPlanner(ParseResult result, LinkSettings links)
    {
        var tablePath = result.GetValue(PartitionTable);
        var calibrationPath = result.GetValue(Calibration);
        var calibrationModel = result.GetValue(CalibrationModel);
        if (calibrationModel != null && calibrationPath == null)
            throw new RunaheadException("--calibration-model needs --calibration");
        if (tablePath == null && calibrationPath == null) return null;
        var table = tablePath != null ? Planning.PartitionTable.Load(tablePath) : null;
        var calibration = calibrationPath != null ? LoadCalibration(calibrationPath) : null;
        return new PlannerSource(calibration, calibrationModel, table, tablePath, links);
    }

    private static Planning.Calibration LoadCalibration(string path)
    {
        if (!File.Exists(path)) throw new RunaheadException($"--calibration {path}: no such file");
        return Planning.Calibration.Load(path);
    }

    public int ThreadsFor(ParseResult result, int ranks)
    {
        int threads = result.GetValue(ThreadsPerRank);
        if (result.GetResult(ThreadsPerRank) is { Implicit: false } && threads < 1)
            throw new RunaheadException($"--threads-per-rank: {threads} must be at least 1");
        return threads >= 1 ? threads : Math.Max(1, Environment.ProcessorCount / ranks);
    }
}

/// <summary>The checked --calibration / --partition-table inputs, made into a planner per model.</summary>
public sealed record PlannerSource(Planning.Calibration? Calibration, string? CalibrationModel, Planning.PartitionTable? Table, string? TablePath,
    LinkSettings Links)
{
    /// <summary>The planner for the model at <paramref name="modelPath"/> with shape <paramref name="config"/>.</summary>
    public Func<PartitionKind, int, int, int[]?> For(Runahead.Models.ModelConfig config, string modelPath)
    {
        // The table is per bandwidth; without emulated links the fastest tabled bandwidth is the nearest. The simulator
        // takes the emulated links, else what the calibration measured of this host's transport.
        double bandwidth = Links.Bandwidth != null ? LinkShaper.ParseBandwidth(Links.Bandwidth)
            : Calibration?.TransportBytesPerSecond ?? double.PositiveInfinity;
        double latency = Links.Latency != null ? LinkShaper.ParseDuration(Links.Latency).TotalSeconds
            : Calibration?.TransportLatencySeconds ?? 0;
        string model = Calibration != null ? CalibratedPlanner.ChooseModel(Calibration, CalibrationModel, modelPath) : "";
        var planner = new CalibratedPlanner(Calibration, config, model, ranks => Topology(ranks, bandwidth, latency), bandwidth, Table, TablePath);
        return planner.Plan;
    }

    private Planning.LinkTopology Topology(int ranks, double bandwidth, double latency)
    {
        if (Links.MatrixPath == null) return Planning.LinkTopology.Uniform(bandwidth, latency);
        var shaper = LinkShaper.LoadMatrix(Links.MatrixPath, ranks, TimeSpan.FromSeconds(latency));
        var matrix = new double[ranks, ranks];
        for (int i = 0; i < ranks; i++)
            for (int j = 0; j < ranks; j++)
                matrix[i, j] = shaper.Bandwidth(i, j);
        return Planning.LinkTopology.FromMatrix(matrix, latency);
    }
}

/// <summary>Link emulation as given on the command line.</summary>
public sealed record LinkSettings(string? Bandwidth, string? Latency, string? MatrixPath, string[] Sidecars)
{
    public bool Any => Bandwidth != null || Latency != null || MatrixPath != null || Sidecars.Length > 0;

    /// <summary>A shaper for <paramref name="ranks"/> ranks, or null when no emulation was asked for (or one rank).</summary>
    public LinkShaper? Build(int ranks)
    {
        if (!Any || ranks < 2) return null;
        var latency = Latency != null ? LinkShaper.ParseDuration(Latency) : TimeSpan.Zero;
        LinkShaper shaper;
        if (MatrixPath != null)
        {
            if (Bandwidth != null) throw new RunaheadException("--links and --link-bandwidth both given; use one");
            shaper = LinkShaper.LoadMatrix(MatrixPath, ranks, latency);
        }
        else
        {
            shaper = new LinkShaper(ranks, Bandwidth != null ? LinkShaper.ParseBandwidth(Bandwidth) : double.PositiveInfinity, latency);
        }
        for (int i = 0; i < Sidecars.Length; i++) shaper.AddSidecar(Sidecars[i], seed: 1 + i);
        return shaper;
    }

    public override string ToString()
    {
        if (!Any) return "none";
        var parts = new List<string>();
        if (MatrixPath != null) parts.Add($"matrix {Path.GetFileName(MatrixPath)}");
        if (Bandwidth != null) parts.Add(Bandwidth);
        if (Latency != null) parts.Add($"latency {Latency}");
        foreach (var s in Sidecars) parts.Add($"sidecar {s}");
        return string.Join(", ", parts);
    }
}

/// <summary>Validated parallel-prefill settings of one <c>generate</c> run.</summary>
public sealed record PrefillSettings(int Ranks, PrefillStrategyKind Strategy, PartitionSpec Partition, RankTransport Transport,
    int ThreadsPerRank, LinkSettings Links)
{
    /// <summary>Answers --partition searched|predicted once the model is known (null: no calibration or table).</summary>
    public PlannerSource? Planner { get; init; }

    /// <summary>--shm-ring in bytes (0: automatic).</summary>
    public long ShmRingBytes { get; init; }

    /// <summary>Where to write the prefill's timeline (null: nowhere).</summary>
    public string? TracePath { get; init; }

    /// <summary>Whether the run needs ranks at all (otherwise generate takes its single-process path).</summary>
    public bool IsParallel => Ranks > 1 || Strategy != PrefillStrategyKind.Single || Transport == RankTransport.Mpi;

    /// <summary>The library's parallel configuration for the model at <paramref name="modelPath"/>.</summary>
    public ParallelGenerationOptions ToOptions(string modelPath, Runahead.Models.ModelConfig config) => new()
    {
        Ranks = Ranks, Strategy = Strategy, Partition = Partition, Transport = Transport, ThreadsPerRank = ThreadsPerRank,
        Links = Links.Build(Ranks),
        SharedMemoryRingBytes = ShmRingBytes,
        Planner = Planner?.For(config, modelPath),
    };

    /// <summary>The stderr summary of a parallel run: TTFT with strategy, ranks and partition, then each rank's split of its time.</summary>
    public void WriteSummary(TextWriter stderr, GenerationStats stats, PrefillRun run, TimeSpan startup, string stop)
    {
        stderr.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"prompt tokens: {stats.PromptTokens}, TTFT: {stats.TimeToFirstToken.TotalMilliseconds:F1} ms ({Strategy.Name()} on {Ranks} rank(s) x {ThreadsPerRank} thread(s), partition {run.Partition}), " +
            $"prompt: {stats.PromptTokensPerSecond:F1} tok/s, decode: {stats.GeneratedTokens} tokens at {stats.DecodeTokensPerSecond:F1} tok/s ({stop}); rank start, model load and warm-up {startup.TotalMilliseconds:F0} ms"));
        foreach (var t in run.RankTimings)
            stderr.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  rank {t.Rank}: compute {t.ComputeMs:F1} ms, wait for K,V {t.WaitKvMs:F1} ms, send {t.SendMs:F1} ms, idle {t.IdleMs:F1} ms"));
    }

    /// <summary>The parallel fields of generate's --json object.</summary>
    public void WriteJsonFields(Utf8JsonWriter w, PrefillRun run, TimeSpan startup)
    {
        w.WriteString("strategy", Strategy.Name());
        w.WriteNumber("ranks", Ranks);
        w.WriteNumber("threads_per_rank", ThreadsPerRank);
        w.WriteString("transport", Transport switch { RankTransport.InProcess => "inproc", RankTransport.Mpi => "mpi", _ => "shm" });
        w.WriteString("partition", run.Partition.ToString());
        w.WriteString("links", Links.ToString());
        if (ShmRingBytes != 0) w.WriteNumber("shm_ring_bytes", ShmRingBytes);
        w.WriteNumber("startup_ms", Math.Round(startup.TotalMilliseconds, 3));
        BenchTtftCommand.WriteRankTimings(w, run.RankTimings);
    }
}
