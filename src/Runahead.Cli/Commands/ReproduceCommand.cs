using System.CommandLine;
using System.Globalization;
using Runahead.Planning;

namespace Runahead.Cli.Commands;

/// <summary>
/// `runahead reproduce`: runs the paper's study on the simulator with a calibration (default: the H200 file beside the
/// repository) and regenerates docs/REPRODUCTION.md with its tables and PNG figures.
/// </summary>
public static class ReproduceCommand
{
    public static Command Build()
    {
        var cmd = new Command("reproduce", "Regenerate docs/REPRODUCTION.md");
        var calibration = new Option<string?>("--calibration") { Description = $"Calibration JSON (default: {CalibrationLocator.H200RelativePath} above the current folder)" };
        var output = new Option<string>("--out") { Description = "Markdown file to write (figures go to figures/ beside it)", DefaultValueFactory = _ => "docs/REPRODUCTION.md" };
        var scale = new Option<string>("--scale") { Description = "full (the study) or tiny (a smoke run)", DefaultValueFactory = _ => "full" };
        var hostModel = new Option<string?>("--host-model") { Description = "Also run real prefills of this model on this host beside the simulator" };
        var hostTokens = new Option<string>("--host-tokens") { Description = "Context lengths of the host runs", DefaultValueFactory = _ => "256,512" };
        var hostRanks = new Option<string>("--host-ranks") { Description = "Rank counts of the host runs", DefaultValueFactory = _ => "2" };
        var hostRepeats = new Option<int>("--host-repeats") { Description = "Timed runs per host point (median kept)", DefaultValueFactory = _ => 5 };
        var hostCalibration = new Option<string?>("--host-calibration") { Description = "This host's calibration (default: measured between the rounds of runs)" };
        var hostTransport = new Option<string>("--host-transport") { Description = "How the host runs' ranks talk: shm (worker processes) or inproc (tasks of this process)", DefaultValueFactory = _ => "shm" };
        var hostBatch = new Option<double>("--host-calibration-batch") { Description = "Shortest timed batch of the host calibration in ms (spans the scheduler's time slices)", DefaultValueFactory = _ => 100 };
        foreach (var o in new Option[] { hostModel, hostTokens, hostRanks, hostRepeats, hostCalibration, hostTransport, hostBatch }) cmd.Options.Add(o);
        cmd.Options.Add(calibration);
        cmd.Options.Add(output);
        cmd.Options.Add(scale);
        cmd.SetAction(async (parse, cancellationToken) =>
        {
            var stdout = parse.InvocationConfiguration.Output;
            var stderr = parse.InvocationConfiguration.Error;
            try
            {
                string calPath = parse.GetValue(calibration)
                    ?? CalibrationLocator.FindH200(Directory.GetCurrentDirectory())
                    ?? throw new RunaheadException($"--calibration not given and no {CalibrationLocator.H200RelativePath} above {Directory.GetCurrentDirectory()}");
                var options = parse.GetValue(scale) switch
                {
                    "full" => new ReproductionOptions(),
                    "tiny" => Tiny,
                    var s => throw new RunaheadException($"--scale: '{s}' is not full or tiny"),
                };
                var cal = Calibration.Load(calPath);
                string outPath = Path.GetFullPath(parse.GetValue(output)!);
                string docDir = Path.GetDirectoryName(outPath)!;
                string figDir = Path.Combine(docDir, "figures");
                try
                {
                    Directory.CreateDirectory(figDir);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    throw new RunaheadException($"{figDir}: cannot create the figures folder ({e.Message})");
                }
                var result = ReproductionStudy.Run(cal, options, m => stderr.WriteLine("simulating " + m));
                if (parse.GetValue(hostModel) is { } modelPath)
                {
                    var tokenList = SimulateCommand.ParseList(parse.GetValue(hostTokens)!, "--host-tokens", s => Units.ParseTokens(s, "--host-tokens"));
                    var rankList = SimulateCommand.ParseList(parse.GetValue(hostRanks)!, "--host-ranks", s =>
                        int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var v) && v is >= 1 and <= 64 ? v
                            : throw new RunaheadException($"--host-ranks: '{s}' is not a rank count between 1 and 64"));
                    int repeats = parse.GetValue(hostRepeats);
                    if (repeats is < 1 or > 100) throw new RunaheadException($"--host-repeats: {repeats} must be between 1 and 100");
                    var transport = PrefillOptions.ParseTransport(parse.GetValue(hostTransport)) switch
                    {
                        Runahead.Distributed.RankTransport.Mpi => throw new RunaheadException("--host-transport: mpi is not supported here; use shm or inproc"),
                        var t => t,
                    };
                    double batch = parse.GetValue(hostBatch);
                    if (!(batch >= 0 && batch <= 10_000)) throw new RunaheadException($"--host-calibration-batch: {batch} must be between 0 and 10000 ms");
                    await RunHostAsync(result, modelPath, parse.GetValue(hostCalibration), tokenList, rankList, repeats, transport, batch, figDir, stderr, cancellationToken);
                }
                var figures = ReproductionFigures.Write(result, figDir);
                string markdown = ReproductionReport.Render(result, figures, calPath);
                try
                {
                    File.WriteAllText(outPath, markdown);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    throw new RunaheadException($"{outPath}: cannot write ({e.Message})");
                }
                stdout.WriteLine($"wrote {outPath} and {figures.Count} figures in {figDir} ({result.Elapsed.TotalSeconds:0.0} s)");
                return 0;
            }
            catch (RunaheadException e)
            {
                stderr.WriteLine("runahead: " + e.Message);
                return 1;
            }
            catch (OperationCanceledException)
            {
                stderr.WriteLine("runahead: reproduce cancelled");
                return 1;
            }
        });
        return cmd;
    }

    /// <summary>Runs real prefills beside the simulator, calibrating this host between the rounds (unless a calibration is given).</summary>
    private static async Task RunHostAsync(ReproductionResult result, string modelPath, string? calibrationPath, int[] tokens, int[] ranks,
        int repeats, Runahead.Distributed.RankTransport transport, double batchMs, string figDir, TextWriter log, CancellationToken ct)
    {
        const int threadsPerRank = 1;
        string name = Path.GetFileNameWithoutExtension(Path.TrimEndingDirectorySeparator(modelPath));
        Calibration? given = calibrationPath != null ? Calibration.Load(calibrationPath) : null;
        string calModel = given == null || given.Models.Contains(name, StringComparer.OrdinalIgnoreCase) ? name : given.Models[0];
        string uptimeBefore = Uptime();
        var host = await HostValidation.RunAsync(modelPath, given, calModel,
            new HostValidationOptions { Tokens = tokens, Ranks = ranks, Repeats = repeats, ThreadsPerRank = threadsPerRank, Transport = transport,
                CalibrationBatchMilliseconds = batchMs, CancellationToken = ct },
            m => log.WriteLine("host " + m));
        var cal = host.Calibration;
        // Saved beside the figures, so `runahead simulate --calibration` can replay the simulated column.
        const string calFile = "host-calibration.json";
        if (given == null) cal.Save(Path.Combine(figDir, calFile));
        string ranksAs = transport == Runahead.Distributed.RankTransport.InProcess
            ? "ranks as tasks of this process (in-process transport)"
            : "ranks as `runahead worker` processes on the shared-memory transport (started once per rank count, outside TTFT)";
        string calibrated = given != null
            ? $"calibration `{Path.GetFileName(calibrationPath)}` ({cal.Device})"
            : $"calibration measured in this run, next to the runs: in every timed round each run is followed by the timing of exactly the (c, p) " +
              $"points its ranks compute (one real layer's t_qkv and t_rest, in batches of at least {F(batchMs, "0")} ms, with one thread alone), " +
              "and one of them again with as many threads at once as the run has ranks (for the cores the ranks share, see below); each prediction " +
              $"uses the median of its own points over the rounds (saved as figures/{calFile}; rows named \"{HostValidation.RowsName(calModel, 2)}\" " +
              "were timed with 2 threads at once); the LM head and the transport measured alongside; KVR-S's partition was searched on the " +
              "least-squares fit of a grid calibration made before the runs (one thread alone, with the cores measured the same way)";
        result.HostRuns = host.Runs;
        result.HostArguments = $"--host-tokens {string.Join(',', tokens)} --host-ranks {string.Join(',', ranks)} --host-repeats {repeats}" +
            (batchMs != 100 ? $" --host-calibration-batch {F(batchMs, "0.###")}" : "");
        result.HostSetup = $"Model `{Path.GetFileName(Path.TrimEndingDirectorySeparator(modelPath))}`, {threadsPerRank} compute thread per rank, {ranksAs}, " +
            $"on {Environment.ProcessorCount} logical CPUs; {calibrated}; transport {F((cal.TransportBytesPerSecond ?? 0) / 1e9, "0.##")} GB/s and " +
            $"{F((cal.TransportLatencySeconds ?? 0) * 1e6, "0.#")} us per message; measured TTFT is the median of {repeats} rounds after a warm-up round, " +
            $"the points taking turns within each round. Machine load (1, 5, 15-minute load averages): {host.LoadAtStart} at the start, " +
            $"{host.LoadAtEnd} at the end; `uptime` before: `{uptimeBefore}`, after: `{Uptime()}`.";
    }

    /// <summary>What `uptime` says (Linux /proc): the time and the load averages, so a busy machine shows in the document.</summary>
    private static string Uptime()
    {
        try
        {
            if (!File.Exists("/proc/uptime")) return "unknown";
            double seconds = double.Parse(File.ReadAllText("/proc/uptime").Split(' ')[0], CultureInfo.InvariantCulture);
            var up = TimeSpan.FromSeconds(seconds);
            return $"{DateTime.UtcNow:HH:mm:ss} UTC up {(int)up.TotalHours}:{up.Minutes:00}, load average {HostValidation.LoadAverage()}";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            return "unknown";
        }
    }

    private static ReproductionOptions Tiny => new()
    {
        Models = ["falcon-7b"],
        Bandwidths = [300e9],
        Ranks = [2],
        Tokens = [1024, 2048],
        TableTokens = [768, 1536, 3072],
        NoiseTokens = 2048,
        NoiseRanks = [2],
        NoiseSeeds = 1,
        BoundTokens = 1024,
        BoundRanks = [1, 2],
    };

    internal static string F(double v, string format = "0.00") => v.ToString(format, CultureInfo.InvariantCulture);
    internal static string Bw(double b) => Units.FormatBandwidth(b).Replace("GB/s", " GB/s", StringComparison.Ordinal);
    internal static string Slug(string model, double bw) => $"{model}-{F(bw / 1e9, "0.###")}GBps";
}

/// <summary>The PNG figures of the reproduction (ScottPlot).</summary>
internal static class ReproductionFigures
{
    public static Dictionary<string, string> Write(ReproductionResult r, string dir)
    {
        var files = new Dictionary<string, string>();
        foreach (var group in r.Points.GroupBy(p => (p.Model, p.Bandwidth)))
        {
            foreach (var byRanks in group.GroupBy(p => p.Ranks))
            {
                var pts = byRanks.OrderBy(p => p.Tokens).ToArray();
                var plt = new ScottPlot.Plot();
                double[] xs = pts.Select(p => p.Tokens / 1024.0).ToArray();
                void Line(string label, Func<StudyPoint, double> y)
                {
                    var s = plt.Add.Scatter(xs, pts.Select(p => y(p) * 1e3).ToArray());
                    s.LegendText = label;
                }
                Line("TSP (dense, paper)", p => p.Tsp);
                Line("TSP (causal)", p => p.TspCausal);
                Line("KVR-E", p => p.KvrEven);
                Line("KVR-S", p => p.KvrSearched);
                Line("KVR-P", p => p.KvrPredicted);
                string name = $"ttft-{ReproduceCommand.Slug(group.Key.Model, group.Key.Bandwidth)}-p{byRanks.Key}.png";
                Save(plt, $"{group.Key.Model}, {byRanks.Key} ranks, {ReproduceCommand.Bw(group.Key.Bandwidth)} (simulated on {r.Device})",
                    "context (k tokens)", "TTFT (ms)", dir, name);
                files[$"ttft/{group.Key.Model}/{group.Key.Bandwidth}/{byRanks.Key}"] = name;
            }
            {
                var plt = new ScottPlot.Plot();
                foreach (var byRanks in group.GroupBy(p => p.Ranks))
                {
                    var pts = byRanks.OrderBy(p => p.Tokens).ToArray();
                    var s = plt.Add.Scatter(pts.Select(p => p.Tokens / 1024.0).ToArray(), pts.Select(p => p.Tsp / p.KvrSearched).ToArray());
                    s.LegendText = $"KVR-S / TSP, P={byRanks.Key}";
                }
                string name = $"speedup-{ReproduceCommand.Slug(group.Key.Model, group.Key.Bandwidth)}.png";
                Save(plt, $"{group.Key.Model}, {ReproduceCommand.Bw(group.Key.Bandwidth)}: speedup of KVR-S over TSP",
                    "context (k tokens)", "speedup (x)", dir, name);
                files[$"speedup/{group.Key.Model}/{group.Key.Bandwidth}"] = name;
            }
        }
        if (r.Noise.Count > 0)
        {
            var plt = new ScottPlot.Plot();
            var labels = new List<string>();
            var positions = new List<double>();
            var tsp = new List<ScottPlot.Bar>();
            int i = 0;
            foreach (var n in r.Noise)
            {
                double x = i * 3;
                tsp.Add(new ScottPlot.Bar { Position = x, Value = n.TspSlowdown * 100, FillColor = ScottPlot.Colors.OrangeRed });
                tsp.Add(new ScottPlot.Bar { Position = x + 1, Value = n.KvrSlowdown * 100, FillColor = ScottPlot.Colors.SteelBlue });
                positions.Add(x + 0.5);
                labels.Add($"{n.Model.Replace("-7b", "", StringComparison.Ordinal)} P{n.Ranks} {ReproduceCommand.F(n.Bandwidth / 1e9, "0")}G");
                i++;
            }
            plt.Add.Bars(tsp);
            plt.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(positions.ToArray(), labels.ToArray());
            plt.Axes.Margins(bottom: 0);
            Save(plt, "Slowdown from sidecar traffic (orange: TSP, blue: KVR-S)", null, "TTFT increase (%)", dir, "noise.png",
                width: Math.Max(1000, 120 * r.Noise.Count));
            files["noise"] = "noise.png";
        }
        if (r.Bound.Count > 0)
        {
            var plt = new ScottPlot.Plot();
            double[] xs = r.Bound.Select(b => (double)b.Ranks).ToArray();
            var paper = plt.Add.Scatter(xs, r.Bound.Select(b => 1 / b.PaperRatio).ToArray());
            paper.LegendText = "paper's bound aC^2 / T(P)";
            var s = plt.Add.Scatter(xs, r.Bound.Select(b => 1 / b.KvrSearchedRatio).ToArray());
            s.LegendText = "simulated KVR-S";
            var e = plt.Add.Scatter(xs, r.Bound.Select(b => 1 / b.KvrEvenRatio).ToArray());
            e.LegendText = "simulated KVR-E";
            // Drawn wide and below: with free links and no weight work it coincides with TSP (causal).
            e.LineWidth = 6;
            var t = plt.Add.Scatter(xs, r.Bound.Select(b => 1 / b.TspCausalRatio).ToArray());
            t.LegendText = "simulated TSP (causal)";
            Save(plt, "Attention-only speedup over a dense single rank", "ranks P", "speedup (x)", dir, "bound.png");
            files["bound"] = "bound.png";
        }
        if (r.ExampleTimeline.Count > 0)
        {
            ChromeTraceWriter.Write(Path.Combine(dir, "timeline-kvr-s.json"), r.ExampleTimeline, r.ExampleTitle);
            files["trace"] = "timeline-kvr-s.json";
        }
        return files;
    }

    /// <summary>Titles and labels the figure, shows the legend when a series is labelled, and writes it as dir/name.</summary>
    private static void Save(ScottPlot.Plot plt, string title, string? xLabel, string yLabel, string dir, string name, int width = 1000, int height = 500)
    {
        plt.Title(title);
        if (xLabel is not null) plt.XLabel(xLabel);
        plt.YLabel(yLabel);
        if (plt.GetPlottables().OfType<ScottPlot.Plottables.Scatter>().Any(s => !string.IsNullOrEmpty(s.LegendText))) plt.ShowLegend(ScottPlot.Edge.Right);
        string path = Path.Combine(dir, name);
        try
        {
            plt.SavePng(path, width, height);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new RunaheadException($"{path}: cannot write figure ({e.Message})");
        }
    }
}
