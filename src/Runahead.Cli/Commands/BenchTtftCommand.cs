using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Runahead.Diagnostics;
using Runahead.Distributed;
using Runahead.Models;
using Runahead.Prefill;
using Spectre.Console;

namespace Runahead.Cli.Commands;

/// <summary>
/// `runahead bench ttft`: time to first token for every (context length, ranks, strategy), median of repeats after a
/// warm-up, with ratios against the first strategy of the same run, per-rank timings, and optional CSV, JSON and a
/// Chrome trace of each point's median run.
/// </summary>
public static class BenchTtftCommand
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public static Command Build()
    {
        var model = new Option<string>("--model") { Description = "Model file or Hugging Face folder", Required = true };
        var tokens = new Option<string>("--tokens") { Description = "Prompt lengths, e.g. 1k,2k,4k (k = 1024)", DefaultValueFactory = _ => "1k" };
        var ranks = new Option<string>("--ranks") { Description = "Rank counts, e.g. 1,2,4", DefaultValueFactory = _ => "1,2" };
        var strategies = new Option<string>("--strategy")
        {
            Description = $"Strategies to compare, first one is the baseline of the ratios ({PrefillStrategyNames.Accepted})",
            DefaultValueFactory = _ => "single,tsp,kvr",
        };
        var repeats = new Option<int>("--repeats") { Description = "Timed runs per point (median reported)", DefaultValueFactory = _ => 5 };
        var warmup = new Option<int>("--warmup") { Description = "Untimed runs per point before the timed ones", DefaultValueFactory = _ => 1 };
        var json = new Option<bool>("--json") { Description = "Print JSON instead of the markdown table" };
        var csv = new Option<string>("--csv") { Description = "Also write the rows to this CSV file" };
        var trace = new Option<string>("--trace") { Description = "Write a Chrome trace-event timeline (Perfetto) of each point's median run" };
        var seed = new Option<int>("--seed") { Description = "Seed of the random prompt ids", DefaultValueFactory = _ => 1 };
        var prefill = new PrefillOptions();
        var cmd = new Command("ttft", "Time to first token of single, TSP and KV-Runahead prefill over ranks")
        {
            model, tokens, ranks, strategies, repeats, warmup, json, csv, trace, seed,
        };
        prefill.AddTo(cmd, includeStrategy: false);

        cmd.SetAction(async (parse, ct) =>
        {
            var transport = PrefillOptions.ParseTransport(parse.GetValue(prefill.Transport));
            var settings = new BenchSettings
            {
                ModelPath = parse.GetValue(model)!,
                Tokens = ParseList(parse.GetValue(tokens)!, "--tokens", ParseTokenCount),
                Ranks = ParseList(parse.GetValue(ranks)!, "--ranks", s => ParseCount(s, "--ranks")),
                Strategies = ParseList(parse.GetValue(strategies)!, "--strategy", s => PrefillStrategyNames.Parse(s)),
                Partition = PartitionSpec.Parse(parse.GetValue(prefill.Partition)),
                Transport = transport,
                ShmRingBytes = prefill.ReadShmRing(parse, transport),
                Links = prefill.ReadLinks(parse),
                Planner = prefill.ReadPlanner(parse, prefill.ReadLinks(parse)),
                ThreadsPerRank = P => prefill.ThreadsFor(parse, P),
                Repeats = parse.GetValue(repeats),
                Warmup = parse.GetValue(warmup),
                Seed = parse.GetValue(seed),
            };
            if (settings.ShmRingBytes != 0)
                foreach (var p in settings.Ranks) RankPoolOptions.ValidateRingBytes(settings.ShmRingBytes, p);
            if (settings.Repeats < 1) throw new RunaheadException($"--repeats: {settings.Repeats} must be at least 1");
            if (settings.Warmup < 0) throw new RunaheadException($"--warmup: {settings.Warmup} must be at least 0");
            var stdout = parse.InvocationConfiguration.Output;
            var stderr = parse.InvocationConfiguration.Error;
            var rows = await RunAsync(settings, stderr, ct);
            // MPI ranks other than 0 took part in every run; rank 0 reports.
            if (rows == null) return 0;

            if (parse.GetValue(csv) is { } csvPath) WriteFile(csvPath, "--csv", w => WriteCsv(w, rows));
            if (parse.GetValue(trace) is { } tracePath)
            {
                var timelines = new List<Timeline>();
                foreach (var r in rows) timelines.Add(r.MedianRun.Timeline);
                Timeline.WriteChromeTrace(tracePath, timelines);
            }
            if (parse.GetValue(json)) WriteJson(stdout, settings, rows);
            else WriteMarkdown(stdout, settings, rows);
            return 0;
        });
        return cmd;
    }

    internal sealed class BenchSettings
    {
        public required string ModelPath { get; init; }
        public required int[] Tokens { get; init; }
        public required int[] Ranks { get; init; }
        public required PrefillStrategyKind[] Strategies { get; init; }
        public required PartitionSpec Partition { get; init; }
        public required RankTransport Transport { get; init; }
        /// <summary>--shm-ring in bytes (0: automatic).</summary>
        public long ShmRingBytes { get; init; }
        public required LinkSettings Links { get; init; }
        public PlannerSource? Planner { get; init; }
        public required Func<int, int> ThreadsPerRank { get; init; }
        public required int Repeats { get; init; }
        public required int Warmup { get; init; }
        public required int Seed { get; init; }
    }

    internal sealed record BenchRow(int Tokens, int Ranks, int ThreadsPerRank, PrefillStrategyKind Strategy, string Partition,
        double MedianMs, double MinMs, double MaxMs, double[] RunsMs, PrefillRun MedianRun)
    {
        public double Ratio { get; set; } = 1;
        public string Baseline { get; set; } = "";
    }

    private static async Task<List<BenchRow>?> RunAsync(BenchSettings s, TextWriter stderr, CancellationToken ct)
    {
        // Read the model's limits once, before starting any rank.
        // The header is enough here: the ranks load the weights.
        var config = Generation.LlmSession.ReadConfig(s.ModelPath).Config;
        var planner = s.Planner?.For(config, s.ModelPath);
        foreach (var c in s.Tokens)
            if (c > config.ContextLength)
                throw new RunaheadException($"--tokens: {c} tokens exceed the model's context length of {config.ContextLength}");

        var points = new List<(int Ranks, PrefillStrategyKind Strategy)>();
        foreach (var p in s.Ranks)
            foreach (var strategy in s.Strategies)
                if (strategy != PrefillStrategyKind.Single || p == 1) points.Add((p, strategy));
        if (points.Count == 0) throw new RunaheadException("--strategy single needs --ranks 1 in the list; nothing to measure");
        int totalRuns = points.Count * s.Tokens.Length * (s.Repeats + s.Warmup);

        var rows = new List<BenchRow>();
        bool isClient = true;
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(stderr) });
        await console.Progress().AutoClear(true).HideCompleted(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .StartAsync(async progress =>
            {
                var bar = progress.AddTask("ttft", maxValue: totalRuns);
                foreach (var p in s.Ranks)
                {
                    var mine = points.FindAll(x => x.Ranks == p);
                    if (mine.Count == 0) continue;
                    int threads = s.ThreadsPerRank(p);
                    bar.Description = $"starting {p} rank(s)";
                    // One set of ranks per P serves every strategy and length: process start and model load stay out of TTFT.
                    using var host = await RankJobHosts.CreateAsync(s.Transport, s.ModelPath, p, threads, s.Links.Build(p), null, ct,
                        sharedMemoryRingBytes: s.ShmRingBytes);
                    var client = new PrefillClient(host) { Planner = planner };
                    isClient &= client.IsClient;
                    foreach (var c in s.Tokens)
                    {
                        var prompt = Prompt(c, config.VocabSize, s.Seed);
                        // Strategies take turns run by run, so slow phases of a shared machine hit them all alike.
                        var runs = new List<PrefillRun>[mine.Count];
                        for (int k = 0; k < mine.Count; k++) runs[k] = new List<PrefillRun>(s.Repeats);
                        for (int i = 0; i < s.Warmup + s.Repeats; i++)
                        {
                            for (int k = 0; k < mine.Count; k++)
                            {
                                ct.ThrowIfCancellationRequested();
                                var strategy = mine[k].Strategy;
                                bar.Description = $"{strategy.Name()} P={p} C={c}";
                                var run = await client.RunAsync(prompt, strategy, s.Partition, 1, null, null, false, null, ct);
                                if (run != null && i >= s.Warmup) runs[k].Add(run);
                                bar.Increment(1);
                            }
                        }
                        for (int k = 0; k < mine.Count && client.IsClient; k++)
                        {
                            var sorted = runs[k];
                            var inRunOrder = sorted.ConvertAll(r => r.TtftMs).ToArray();
                            sorted.Sort((a, b) => a.TtftMs.CompareTo(b.TtftMs));
                            var median = sorted[(sorted.Count - 1) / 2];
                            double medianMs = sorted.Count % 2 == 1 ? median.TtftMs : (sorted[sorted.Count / 2 - 1].TtftMs + sorted[sorted.Count / 2].TtftMs) / 2;
                            rows.Add(new BenchRow(c, p, threads, mine[k].Strategy, median.Partition.ToString(), medianMs, sorted[0].TtftMs, sorted[^1].TtftMs,
                                inRunOrder, median));
                        }
                    }
                }
            });

        if (!isClient) return null;

        // Ratios against the first measured point of the same length: the first strategy listed, at its first rank count.
        foreach (var c in s.Tokens)
        {
            var baseline = rows.Find(r => r.Tokens == c);
            if (baseline == null) continue;
            foreach (var r in rows)
            {
                if (r.Tokens != c) continue;
                r.Ratio = baseline.MedianMs / r.MedianMs;
                r.Baseline = $"{baseline.Strategy.Name()} P={baseline.Ranks}";
            }
        }
        // Stable: within one length, rows stay in measurement order (ranks, then strategies as listed).
        return rows.OrderBy(r => r.Tokens).ToList();
    }

    private static int[] Prompt(int tokens, int vocab, int seed)
    {
        var rng = new Random(seed);
        var ids = new int[tokens];
        ids[0] = 1;
        for (int i = 1; i < tokens; i++) ids[i] = rng.Next(Math.Min(3, vocab - 1), vocab);
        return ids;
    }

    private static void WriteMarkdown(TextWriter w, BenchSettings s, List<BenchRow> rows)
    {
        w.WriteLine($"TTFT, median of {s.Repeats} after {s.Warmup} warm-up; transport {TransportName(s.Transport)}{RingText(s)}; links {s.Links}; " +
            $"speed-up = baseline TTFT / TTFT ({Environment.ProcessorCount} cores)");
        w.WriteLine();
        w.WriteLine("| tokens | ranks x threads | strategy | partition | TTFT ms (median) | min..max ms | speed-up | slowest rank: compute / wait K,V / send / idle ms |");
        w.WriteLine("|---:|---:|---|---|---:|---:|---:|---|");
        foreach (var r in rows)
        {
            var t = Slowest(r);
            w.WriteLine(string.Create(Inv,
                $"| {r.Tokens} | {r.Ranks} x {r.ThreadsPerRank} | {r.Strategy.Name()} | {r.Partition} | {r.MedianMs:0.00} | {r.MinMs:0.00}..{r.MaxMs:0.00} | {r.Ratio:0.00}x vs {r.Baseline} | rank {t.Rank}: {t.ComputeMs:0.0} / {t.WaitKvMs:0.0} / {t.SendMs:0.0} / {t.IdleMs:0.0} |"));
        }
    }

    /// <summary>The rank with the least idle time in the median run: the one on the critical path.</summary>
    private static RankTimings Slowest(BenchRow r)
    {
        var all = r.MedianRun.RankTimings;
        var best = all[0];
        foreach (var t in all) if (t.IdleMs < best.IdleMs) best = t;
        return best;
    }

    private static void WriteCsv(TextWriter w, List<BenchRow> rows)
    {
        w.WriteLine("tokens,ranks,threads_per_rank,strategy,partition,ttft_median_ms,ttft_min_ms,ttft_max_ms,speedup,baseline,rank,compute_ms,wait_kv_ms,send_ms,idle_ms");
        foreach (var r in rows)
            foreach (var t in r.MedianRun.RankTimings)
                w.WriteLine(string.Create(Inv,
                    $"{r.Tokens},{r.Ranks},{r.ThreadsPerRank},{r.Strategy.Name()},\"{r.Partition}\",{r.MedianMs:0.###},{r.MinMs:0.###},{r.MaxMs:0.###},{r.Ratio:0.####},{r.Baseline},{t.Rank},{t.ComputeMs:0.###},{t.WaitKvMs:0.###},{t.SendMs:0.###},{t.IdleMs:0.###}"));
    }

    private static void WriteJson(TextWriter output, BenchSettings s, List<BenchRow> rows)
    {
        using var stream = new MemoryStream();
        using (var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteString("model", s.ModelPath);
            json.WriteString("transport", TransportName(s.Transport));
            json.WriteString("links", s.Links.ToString());
            if (s.ShmRingBytes != 0) json.WriteNumber("shm_ring_bytes", s.ShmRingBytes);
            json.WriteNumber("repeats", s.Repeats);
            json.WriteNumber("warmup", s.Warmup);
            json.WriteNumber("cores", Environment.ProcessorCount);
            json.WriteStartArray("rows");
            foreach (var r in rows)
            {
                json.WriteStartObject();
                json.WriteNumber("tokens", r.Tokens);
                json.WriteNumber("ranks", r.Ranks);
                json.WriteNumber("threads_per_rank", r.ThreadsPerRank);
                json.WriteString("strategy", r.Strategy.Name());
                json.WriteString("partition", r.Partition);
                json.WriteNumber("ttft_median_ms", Math.Round(r.MedianMs, 3));
                json.WriteNumber("ttft_min_ms", Math.Round(r.MinMs, 3));
                json.WriteNumber("ttft_max_ms", Math.Round(r.MaxMs, 3));
                json.WriteStartArray("ttft_runs_ms");
                foreach (var v in r.RunsMs) json.WriteNumberValue(Math.Round(v, 3));
                json.WriteEndArray();
                json.WriteNumber("speedup", Math.Round(r.Ratio, 4));
                json.WriteString("baseline", r.Baseline);
                WriteRankTimings(json, r.MedianRun.RankTimings);
                json.WriteEndObject();
            }
            json.WriteEndArray();
            json.WriteEndObject();
        }
        output.WriteLine(Encoding.UTF8.GetString(stream.ToArray()));
    }

    /// <summary>"rank_timings": [{rank, compute_ms, wait_kv_ms, send_ms, idle_ms, total_ms}...] (also used by generate --json).</summary>
    public static void WriteRankTimings(Utf8JsonWriter json, IReadOnlyList<RankTimings> timings)
    {
        json.WriteStartArray("rank_timings");
        foreach (var t in timings)
        {
            json.WriteStartObject();
            json.WriteNumber("rank", t.Rank);
            json.WriteNumber("compute_ms", Math.Round(t.ComputeMs, 3));
            json.WriteNumber("wait_kv_ms", Math.Round(t.WaitKvMs, 3));
            json.WriteNumber("send_ms", Math.Round(t.SendMs, 3));
            json.WriteNumber("idle_ms", Math.Round(t.IdleMs, 3));
            json.WriteNumber("total_ms", Math.Round(t.TotalMs, 3));
            json.WriteEndObject();
        }
        json.WriteEndArray();
    }

    private static string RingText(BenchSettings s) => s.ShmRingBytes == 0 ? ""
        : string.Create(Inv, $" (ring {s.ShmRingBytes / 1048576.0:0.###} MiB per link)");

    private static string TransportName(RankTransport t) => t switch
    {
        RankTransport.InProcess => "inproc",
        RankTransport.Mpi => "mpi",
        _ => "shm",
    };

    private static void WriteFile(string path, string option, Action<TextWriter> write)
    {
        try
        {
            using var w = new StreamWriter(path, false, new UTF8Encoding(false));
            write(w);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new RunaheadException($"{option} {path}: cannot write ({e.Message})");
        }
    }

    internal static T[] ParseList<T>(string text, string option, Func<string, T> parse)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0) throw new RunaheadException($"{option}: empty list");
        var values = new T[parts.Length];
        for (int i = 0; i < parts.Length; i++) values[i] = parse(parts[i]);
        return values;
    }

    /// <summary>"512", "1k" (1024), "2.5k", "1m".</summary>
    internal static int ParseTokenCount(string text)
    {
        double scale = 1;
        var t = text.Trim().ToLowerInvariant();
        if (t.EndsWith('k')) { scale = 1024; t = t[..^1]; }
        else if (t.EndsWith('m')) { scale = 1024 * 1024; t = t[..^1]; }
        if (!double.TryParse(t, NumberStyles.Float, Inv, out var v) || !(v * scale >= 1) || v * scale > 1 << 24 || v * scale != Math.Floor(v * scale))
            throw new RunaheadException($"--tokens: '{text}' is not a token count (examples: 512, 1k, 4k)");
        return (int)(v * scale);
    }

    private static int ParseCount(string text, string option)
    {
        if (!int.TryParse(text, NumberStyles.None, Inv, out var v) || v < 1)
            throw new RunaheadException($"{option}: '{text}' is not a positive whole number");
        return v;
    }
}
