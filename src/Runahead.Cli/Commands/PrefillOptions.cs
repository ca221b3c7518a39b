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

    public Option<string> Trace { get; } = new("--trace")
    {
        Description = "Write the prefill's per-rank timeline as Chrome trace-event JSON (open in Perfetto)",
    };

    public Option<string[]> Sidecar { get; } = new("--sidecar")
    {
        Description = "Background traffic on a link: SRC->DST:SHARE%:BURST/PERIOD (e.g. 1->2:50%:2ms/10ms); repeatable",
        AllowMultipleArgumentsPerToken = false,
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
        command.Options.Add(Transport);
        command.Options.Add(ThreadsPerRank);
        command.Options.Add(LinkBandwidth);
        command.Options.Add(LinkLatency);
        command.Options.Add(Links);
        command.Options.Add(Sidecar);
    }

    /// <summary>
    /// Runs a command body so that user errors print as one line (exit 1) and cancellation as "cancelled" (exit 130):
    /// System.CommandLine would otherwise print an exception with its stack trace.
    /// </summary>
    public static async Task<int> GuardAsync(ParseResult parse, Func<Task<int>> body)
    {
        try
        {
            return await body().ConfigureAwait(false);
        }
        catch (RunaheadException e)
        {
            parse.InvocationConfiguration.Error.WriteLine("runahead: " + e.Message);
            return 1;
        }
        catch (OperationCanceledException)
        {
            parse.InvocationConfiguration.Error.WriteLine("runahead: cancelled");
            return 130;
        }
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
        return new PrefillSettings(ranks, strategy, partition, transport, threads, links)
        {
            Planner = ReadPlanner(result, links),
            TracePath = result.GetValue(Trace),
        };
    }

    /// <summary>
    /// What answers --partition searched|predicted: the --partition-table file (KVR-P interpolates it; KVR-S takes its
    /// entry for exactly this rank count and length), or null (those words then ask for a calibration).
    /// </summary>
    public Func<PartitionKind, int, int, int[]?>? ReadPlanner(ParseResult result, LinkSettings links)
    {
        var path = result.GetValue(PartitionTable);
        if (path == null) return null;
        var table = Planning.PartitionTable.Load(path);
        // The table is per bandwidth; without emulated links the fastest tabled bandwidth is the nearest.
        double bandwidth = links.Bandwidth != null ? LinkShaper.ParseBandwidth(links.Bandwidth) : double.PositiveInfinity;
        return (kind, tokens, ranks) =>
        {
            if (kind == PartitionKind.Predicted) return table.Predict(tokens, ranks, bandwidth);
            foreach (var e in table.Entries)
                if (e.Ranks == ranks && e.Tokens == tokens)
                    return Planning.Partition.FromSplits(e.Splits, tokens);
            throw new RunaheadException(
                $"--partition searched: {path} has no KVR-S result for {ranks} ranks at {tokens} tokens; use --partition predicted to interpolate");
        };
    }

    public int ThreadsFor(ParseResult result, int ranks)
    {
        int threads = result.GetValue(ThreadsPerRank);
        if (result.GetResult(ThreadsPerRank) is { Implicit: false } && threads < 1)
            throw new RunaheadException($"--threads-per-rank: {threads} must be at least 1");
        return threads >= 1 ? threads : Math.Max(1, Environment.ProcessorCount / ranks);
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
    /// <summary>Answers --partition searched|predicted (null: no table).</summary>
    public Func<PartitionKind, int, int, int[]?>? Planner { get; init; }

    /// <summary>Where to write the prefill's timeline (null: nowhere).</summary>
    public string? TracePath { get; init; }

    /// <summary>Whether the run needs ranks at all (otherwise generate takes its single-process path).</summary>
    public bool IsParallel => Ranks > 1 || Strategy != PrefillStrategyKind.Single || Transport == RankTransport.Mpi;

    /// <summary>
    /// <c>generate</c> over ranks: starts them (each loads the model; reported apart from TTFT), prefills with the
    /// strategy, then the last rank decodes alone and streams tokens here, printed as they come. The session supplies
    /// the tokenizer and the prompt checks. Output matches the single-process path plus strategy, ranks, partition and
    /// per-rank timings.
    /// </summary>
    public async Task<int> GenerateAsync(string modelPath, LlmSession session, int[] promptIds, GenerationOptions options, bool json,
        TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        var stopIds = options.StopIds?.ToArray() ?? new[] { session.Tokenizer?.EosId ?? session.Model.Config.EosId };
        if (options.MaxNewTokens == 0)
        {
            if (!json) stdout.WriteLine(session.Tokenizer != null ? new TextStreamer(session.Tokenizer, promptIds).Prefix : "");
            return 0;
        }

        var started = System.Diagnostics.Stopwatch.StartNew();
        using var host = await RankJobHosts.CreateAsync(Transport, modelPath, Ranks, ThreadsPerRank, Links.Build(Ranks), null, ct,
            session.Model.Config.ContextLength).ConfigureAwait(false);
        var client = new PrefillClient(host) { Planner = Planner };
        await client.WarmUpAsync(Strategy, ct).ConfigureAwait(false);
        double startupMs = started.Elapsed.TotalMilliseconds;

        // Under MPI every process runs this command; only rank 0 (the client) prints.
        bool print = client.IsClient && !json;
        var streamer = session.Tokenizer != null ? new TextStreamer(session.Tokenizer, promptIds) : null;
        string promptText = streamer?.Prefix ?? "";
        var text = new StringBuilder();
        if (print) { stdout.Write(promptText); stdout.Flush(); }
        var stopped = false;
        var run = await client.RunAsync(promptIds, Strategy, Partition, options.MaxNewTokens, options.Sampling, stopIds, false, id =>
        {
            if (Array.IndexOf(stopIds, id) >= 0) { stopped = true; return; }
            string piece = streamer?.Add(id) ?? id.ToString(CultureInfo.InvariantCulture) + " ";
            text.Append(piece);
            if (print) { stdout.Write(piece); stdout.Flush(); }
        }, ct).ConfigureAwait(false);
        if (run == null) return 0;
        if (TracePath != null) Timeline.WriteChromeTrace(TracePath, [run.Timeline]);
        var rest = streamer?.Flush();
        if (!string.IsNullOrEmpty(rest)) { text.Append(rest); if (print) stdout.Write(rest); }

        var generated = stopped ? run.Generated[..^1] : run.Generated;
        double promptTps = run.TtftMs > 0 ? promptIds.Length / (run.TtftMs / 1000) : 0;
        double decodeTps = run.Generated.Length > 1 && run.DecodeMs > 0 ? (run.Generated.Length - 1) / (run.DecodeMs / 1000) : 0;
        string stop = stopped ? "end of sequence" : generated.Length >= options.MaxNewTokens ? "token budget" : "context full";
        if (json)
        {
            WriteJson(stdout, modelPath, promptIds, generated, promptText, text.ToString(), run, startupMs, promptTps, decodeTps, stop);
        }
        else
        {
            stdout.WriteLine();
            stderr.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"prompt tokens: {promptIds.Length}, TTFT: {run.TtftMs:F1} ms ({Strategy.Name()} on {Ranks} rank(s) x {ThreadsPerRank} thread(s), partition {run.Partition}), " +
                $"prompt: {promptTps:F1} tok/s, decode: {generated.Length} tokens at {decodeTps:F1} tok/s ({stop}); rank start, model load and warm-up {startupMs:F0} ms"));
            foreach (var t in run.RankTimings)
                stderr.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  rank {t.Rank}: compute {t.ComputeMs:F1} ms, wait for K,V {t.WaitKvMs:F1} ms, send {t.SendMs:F1} ms, idle {t.IdleMs:F1} ms"));
        }
        return 0;
    }

    private void WriteJson(TextWriter stdout, string modelPath, int[] promptIds, int[] generated, string promptText, string text, PrefillRun run,
        double startupMs, double promptTps, double decodeTps, string stop)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("model", modelPath);
            w.WriteNumber("threads", ThreadsPerRank);
            w.WriteStartArray("prompt_ids");
            foreach (var id in promptIds) w.WriteNumberValue(id);
            w.WriteEndArray();
            w.WriteStartArray("generated_ids");
            foreach (var id in generated) w.WriteNumberValue(id);
            w.WriteEndArray();
            w.WriteString("prompt_text", promptText);
            w.WriteString("text", text);
            w.WriteNumber("prompt_tokens", promptIds.Length);
            w.WriteNumber("generated_tokens", generated.Length);
            w.WriteNumber("ttft_ms", Math.Round(run.TtftMs, 3));
            w.WriteNumber("prompt_tokens_per_s", Math.Round(promptTps, 3));
            w.WriteNumber("decode_tokens_per_s", Math.Round(decodeTps, 3));
            w.WriteString("stop_reason", stop);
            w.WriteString("strategy", Strategy.Name());
            w.WriteNumber("ranks", Ranks);
            w.WriteNumber("threads_per_rank", ThreadsPerRank);
            w.WriteString("transport", Transport switch { RankTransport.InProcess => "inproc", RankTransport.Mpi => "mpi", _ => "shm" });
            w.WriteString("partition", run.Partition.ToString());
            w.WriteString("links", Links.ToString());
            w.WriteNumber("startup_ms", Math.Round(startupMs, 3));
            BenchTtftCommand.WriteRankTimings(w, run.RankTimings);
            w.WriteEndObject();
        }
        stdout.WriteLine(Encoding.UTF8.GetString(buffer.ToArray()));
    }
}
