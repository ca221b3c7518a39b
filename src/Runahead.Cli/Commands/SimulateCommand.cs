using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Runahead.Planning;

namespace Runahead.Cli.Commands;

/// <summary>`runahead simulate`: TTFT and timelines of prefill strategies on a calibrated cost model.</summary>
public static class SimulateCommand
{
    public static Command Build()
    {
        var cmd = new Command("simulate", "Simulate prefill strategies on a calibrated cost model");
        var calibration = new Option<string>("--calibration") { Description = "Calibration JSON (h200-layer-costs.json or `runahead calibrate` output)", Required = true };
        var shape = new Option<string>("--model-shape") { Description = "llama2-7b, falcon-7b, tinyllama-1.1b, smollm-135m, tiny, or a model file (its shape)", Required = true };
        var calModel = new Option<string?>("--calibration-model") { Description = "Model name of the calibration rows (default: the shape name)" };
        var tokens = new Option<string>("--tokens") { Description = "Context lengths, e.g. 1k,4k,16k", DefaultValueFactory = _ => "4k" };
        var ranks = new Option<string>("--ranks") { Description = "Rank counts, e.g. 2,4,8", DefaultValueFactory = _ => "4" };
        var strategy = new Option<string>("--strategy") { Description = "single, tsp, tsp-causal, kvr (comma-separated)", DefaultValueFactory = _ => "tsp,kvr" };
        var partition = new Option<string>("--partition") { Description = "even | searched | predicted | weights like 4,3,2 (KVR only)", DefaultValueFactory = _ => "even" };
        var table = new Option<string?>("--table") { Description = "KVR-P table for --partition predicted (default: built now from KVR-S at 1k..16k)" };
        var saveTable = new Option<string?>("--save-table") { Description = "Write the KVR-P table built for --partition predicted" };
        var bandwidth = new Option<string>("--link-bandwidth") { Description = "Per-link bandwidth, e.g. 300GB/s, 10GB/s, inf", DefaultValueFactory = _ => "300GB/s" };
        var matrix = new Option<string?>("--link-matrix") { Description = "P x P bandwidths in GB/s, rows separated by ';' (overrides --link-bandwidth)" };
        var latency = new Option<string>("--link-latency") { Description = "Per-message latency, e.g. 5us", DefaultValueFactory = _ => "5us" };
        var noise = new Option<double>("--noise") { Description = "Share of capacity taken by background bursts on --noisy-links (0..1)" };
        var noisyLinks = new Option<string>("--noisy-links") { Description = "Links with background traffic, e.g. 0-1,2-3 (default: all ring links)", DefaultValueFactory = _ => "all" };
        var burst = new Option<string>("--noise-burst") { Description = "Mean burst and gap length", DefaultValueFactory = _ => "2ms" };
        var seed = new Option<int>("--seed") { Description = "Seed of the background bursts", DefaultValueFactory = _ => 1 };
        var costSource = new Option<string>("--cost") { Description = "hybrid (grid inside, fit outside) or fit", DefaultValueFactory = _ => "hybrid" };
        var trace = new Option<string?>("--trace") { Description = "Write Chrome trace-event JSON timelines (one file per run, suffixed when several)" };
        var json = new Option<bool>("--json") { Description = "Print JSON instead of a table" };
        var remeasure = new Option<int>("--remeasure") { Description = "With --partition searched: measure the best N candidates on real in-process ranks of --measure-model" };
        var measureModel = new Option<string?>("--measure-model") { Description = "Model file the re-measurement runs (its shape should match --model-shape)" };
        var cpuCores = new Option<string>("--cpu-cores") { Description = "Cores the ranks share (processor sharing, e.g. 1.5 for a busy 2-core host), or inf: a processor per rank", DefaultValueFactory = _ => "inf" };
        foreach (var o in new Option[] { calibration, shape, calModel, tokens, ranks, strategy, partition, table, saveTable, bandwidth, matrix, latency, noise, noisyLinks, burst, seed, costSource, trace, json, remeasure, measureModel, cpuCores })
            cmd.Options.Add(o);

        cmd.SetAction(parse =>
        {
            var stdout = parse.InvocationConfiguration.Output;
            var stderr = parse.InvocationConfiguration.Error;
            try
            {
                var cal = Calibration.Load(parse.GetValue(calibration)!);
                var (shapeName, modelShape) = ResolveShape(parse.GetValue(shape)!);
                var source = ParseCostSource(parse.GetValue(costSource)!);
                var cost = cal.CostModel(modelShape, parse.GetValue(calModel) ?? shapeName, source);
                var tokenList = ParseList(parse.GetValue(tokens)!, "--tokens", s => Units.ParseTokens(s, "--tokens"));
                var rankList = ParseList(parse.GetValue(ranks)!, "--ranks", s => int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var r) && r is >= 1 and <= 256
                    ? r : throw new RunaheadException($"--ranks: '{s}' is not a rank count between 1 and 256"));
                var strategies = ParseList(parse.GetValue(strategy)!, "--strategy", ParseStrategy);
                double bw = Units.ParseBandwidth(parse.GetValue(bandwidth)!, "--link-bandwidth");
                double lat = Units.ParseDuration(parse.GetValue(latency)!, "--link-latency");
                var topology = parse.GetValue(matrix) is { } m ? LinkTopology.FromMatrix(ParseMatrix(m), lat) : LinkTopology.Uniform(bw, lat);
                double share = parse.GetValue(noise);
                string noisySpec = parse.GetValue(noisyLinks)!;
                double burstSeconds = Units.ParseDuration(parse.GetValue(burst)!, "--noise-burst");
                int seedValue = parse.GetValue(seed);
                string coresText = parse.GetValue(cpuCores)!.Trim();
                double cores = coresText.Equals("inf", StringComparison.OrdinalIgnoreCase) ? double.PositiveInfinity
                    : double.TryParse(coresText, NumberStyles.Float, CultureInfo.InvariantCulture, out var parsedCores) && parsedCores > 0 && double.IsFinite(parsedCores)
                        ? parsedCores : throw new RunaheadException($"--cpu-cores: '{coresText}' is not a positive number or inf");

                var results = new List<(int Tokens, int Ranks, string Partition, SimulationResult Result)>();
                string partitionSpec = parse.GetValue(partition)!;
                var tracePath = parse.GetValue(trace);
                int remeasureCount = parse.GetValue(remeasure);
                string? measurePath = parse.GetValue(measureModel);
                if (remeasureCount < 0 || remeasureCount > 64) throw new RunaheadException($"--remeasure: {remeasureCount} must be between 0 and 64");
                if (remeasureCount > 0 && (measurePath == null || partitionSpec.Trim().ToLowerInvariant() != "searched"))
                    throw new RunaheadException("--remeasure needs --partition searched and --measure-model");
                using var measurer = remeasureCount > 0 ? new InProcessCandidateMeasurer(measurePath!) : null;
                int runs = tokenList.Length * rankList.Length * strategies.Length;
                foreach (int p in rankList)
                {
                    var links = topology;
                    if (share > 0)
                    {
                        if (!(burstSeconds > 0)) throw new RunaheadException("--noise-burst must be positive");
                        links = links.WithBackground(new BackgroundTraffic(share, burstSeconds, burstSeconds, seedValue), ParseLinks(noisySpec, p));
                    }
                    var sim = new Simulator(cost, links, cores);
                    // Partitions are planned on the clean links: a planner does not know when sidecar traffic comes.
                    var planner = MakePlanner(partitionSpec, new Simulator(cost, topology, cores), parse.GetValue(table), parse.GetValue(saveTable),
                        cal, shapeName, cost, topology, bw, p, stderr, measurer, remeasureCount);
                    foreach (int c in tokenList)
                    {
                        foreach (var s in strategies)
                        {
                            if (c < p) throw new RunaheadException($"--tokens {c} is fewer than --ranks {p}");
                            int[] chunks = s switch
                            {
                                PrefillStrategy.Kvr => planner.Plan(c, p),
                                PrefillStrategy.Single => [c],
                                _ => Partition.Even(c, p),
                            };
                            string label = s == PrefillStrategy.Kvr ? planner.Name : s == PrefillStrategy.Single ? "-" : "even";
                            var r = sim.Run(s, chunks, timeline: tracePath != null);
                            results.Add((c, p, label, r));
                            if (tracePath != null)
                            {
                                string path = runs == 1 ? tracePath : SuffixPath(tracePath, $"{StrategyName(s)}-{Units.FormatTokens(c)}-p{p}");
                                ChromeTraceWriter.Write(path, r.Timeline, $"{shapeName} {StrategyName(s)} {Units.FormatTokens(c)}");
                            }
                        }
                    }
                }
                if (measurer != null)
                    foreach (var (chunks, seconds) in measurer.Measurements)
                        stderr.WriteLine($"measured KVR {Partition.Format(chunks)} on real ranks: {seconds * 1e3:0.000} ms");
                if (parse.GetValue(json)) WriteJson(stdout, cal, cost, topology, results);
                else WriteTable(stdout, cal, cost, topology, share > 0 ? $"background {share:P0} in {burstSeconds * 1e3:0.###} ms bursts on links {noisySpec}, seed {seedValue}" : null, results);
                return 0;
            }
            catch (RunaheadException e)
            {
                stderr.WriteLine("runahead: " + e.Message);
                return 1;
            }
        });
        return cmd;
    }

    private static IPartitionPlanner MakePlanner(string spec, Simulator cleanSim, string? tablePath, string? saveTable, Calibration cal,
        string shape, LayerCostModel cost, LinkTopology topology, double bandwidth, int ranks, TextWriter log,
        ICandidateMeasurer? measurer, int remeasure)
    {
        switch (spec.Trim().ToLowerInvariant())
        {
            case "even": return new EvenPartitionPlanner();
            case "searched":
                return new SearchedPartitionPlanner(cleanSim, measurer == null ? null : new PartitionSearchOptions { Measurer = measurer, Remeasure = remeasure });
            case "predicted":
                PartitionTable t;
                if (tablePath != null) t = PartitionTable.Load(tablePath);
                else
                {
                    log.WriteLine($"building a KVR-P table for {ranks} ranks from KVR-S at {string.Join(",", PartitionTable.DefaultTokens.Select(Units.FormatTokens))} tokens");
                    t = PartitionTable.Build(shape, cal.Source, _ => new Simulator(cost, topology), PartitionTable.DefaultTokens.Where(x => x >= ranks), [ranks], [bandwidth]);
                }
                if (saveTable != null) t.Save(saveTable);
                return new PredictedPartitionPlanner(t, bandwidth);
            default: return new ExplicitPartitionPlanner(Partition.ParseWeights(spec, "--partition"));
        }
    }

    /// <summary>A named shape, or the configuration of a model file or folder (e.g. the one `calibrate` measured).</summary>
    internal static (string Name, Runahead.Models.ModelConfig Shape) ResolveShape(string nameOrPath)
    {
        if (!File.Exists(nameOrPath) && !Directory.Exists(nameOrPath)) return (nameOrPath, ShapeCatalog.Get(nameOrPath));
        using var source = Runahead.Formats.WeightSources.Open(nameOrPath);
        return (Path.GetFileNameWithoutExtension(Path.TrimEndingDirectorySeparator(nameOrPath)), source.Config);
    }

    internal static CostSource ParseCostSource(string s) => s.Trim().ToLowerInvariant() switch
    {
        "hybrid" => CostSource.Hybrid,
        "fit" => CostSource.Fit,
        _ => throw new RunaheadException($"--cost: '{s}' is not hybrid or fit"),
    };

    internal static PrefillStrategy ParseStrategy(string s) => s.Trim().ToLowerInvariant() switch
    {
        "single" => PrefillStrategy.Single,
        "tsp" => PrefillStrategy.Tsp,
        "tsp-causal" => PrefillStrategy.TspCausal,
        "kvr" => PrefillStrategy.Kvr,
        _ => throw new RunaheadException($"--strategy: '{s}' is not single, tsp, tsp-causal or kvr"),
    };

    internal static string StrategyName(PrefillStrategy s) => s switch
    {
        PrefillStrategy.Single => "single",
        PrefillStrategy.Tsp => "tsp",
        PrefillStrategy.TspCausal => "tsp-causal",
        _ => "kvr",
    };

    internal static T[] ParseList<T>(string text, string option, Func<string, T> parse)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0) throw new RunaheadException($"{option}: empty list");
        return parts.Select(parse).ToArray();
    }

    private static double[,] ParseMatrix(string text)
    {
        var rows = text.Split(';', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var m = new double[rows.Length, rows.Length];
        for (int i = 0; i < rows.Length; i++)
        {
            var cells = rows[i].Split(',', StringSplitOptions.TrimEntries);
            if (cells.Length != rows.Length) throw new RunaheadException($"--link-matrix: row {i} has {cells.Length} values, expected {rows.Length}");
            for (int j = 0; j < cells.Length; j++)
            {
                if (i == j) continue;
                m[i, j] = cells[j].Equals("inf", StringComparison.OrdinalIgnoreCase) ? double.PositiveInfinity
                    : double.TryParse(cells[j], NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && v > 0 ? v * 1e9
                    : throw new RunaheadException($"--link-matrix: '{cells[j]}' is not a bandwidth in GB/s");
            }
        }
        return m;
    }

    internal static List<(int From, int To)> ParseLinks(string spec, int ranks)
    {
        var links = new List<(int, int)>();
        if (spec.Trim().Equals("all", StringComparison.OrdinalIgnoreCase))
        {
            for (int i = 0; i < ranks; i++) links.Add((i, (i + 1) % ranks));
            return links;
        }
        foreach (var part in spec.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            var ends = part.Split('-');
            if (ends.Length != 2 || !int.TryParse(ends[0], out int a) || !int.TryParse(ends[1], out int b) || a < 0 || b < 0 || a == b)
                throw new RunaheadException($"--noisy-links: '{part}' is not a link like 0-1");
            links.Add((a, b));
        }
        return links;
    }

    private static string SuffixPath(string path, string suffix)
    {
        string ext = Path.GetExtension(path);
        return Path.Combine(Path.GetDirectoryName(path) ?? "", Path.GetFileNameWithoutExtension(path) + "-" + suffix + ext);
    }

    private static void WriteTable(TextWriter o, Calibration cal, LayerCostModel cost, LinkTopology topo, string? noise,
        List<(int Tokens, int Ranks, string Partition, SimulationResult Result)> results)
    {
        o.WriteLine($"calibration: {cal.Source} ({cal.Device})");
        o.WriteLine(cost.Describe());
        o.WriteLine(topo.Describe() + (noise != null ? "; " + noise : ""));
        o.WriteLine($"{"tokens",7} {"ranks",5} {"strategy",-10} {"partition",-9} {"TTFT ms",10} {"vs tsp",7}  {"grid/fit",8}  chunks");
        foreach (var (c, p, part, r) in results)
        {
            var tsp = results.FirstOrDefault(x => x.Tokens == c && x.Ranks == p && x.Result.Strategy == PrefillStrategy.Tsp).Result;
            string speedup = tsp == null ? "" : (tsp.TtftSeconds / r.TtftSeconds).ToString("0.00", CultureInfo.InvariantCulture) + "x";
            o.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{c,7} {p,5} {StrategyName(r.Strategy),-10} {part,-9} {r.TtftSeconds * 1e3,10:0.000} {speedup,7}  {r.GridLookups + "/" + r.FitLookups,8}  {Partition.Format(r.Chunks)}"));
        }
    }

    private static void WriteJson(TextWriter o, Calibration cal, LayerCostModel cost, LinkTopology topo,
        List<(int Tokens, int Ranks, string Partition, SimulationResult Result)> results)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("calibration", cal.Source);
            w.WriteString("cost_model", cost.Describe());
            w.WriteString("links", topo.Describe());
            w.WriteStartArray("results");
            foreach (var (c, p, part, r) in results)
            {
                w.WriteStartObject();
                w.WriteNumber("tokens", c);
                w.WriteNumber("ranks", p);
                w.WriteString("strategy", StrategyName(r.Strategy));
                w.WriteString("partition", part);
                w.WriteStartArray("chunks");
                foreach (int x in r.Chunks) w.WriteNumberValue(x);
                w.WriteEndArray();
                w.WriteNumber("ttft_ms", r.TtftSeconds * 1e3);
                w.WriteNumber("grid_lookups", r.GridLookups);
                w.WriteNumber("fit_lookups", r.FitLookups);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        o.WriteLine(System.Text.Encoding.UTF8.GetString(ms.ToArray()));
    }
}
