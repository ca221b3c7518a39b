using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Runahead.Diagnostics;
using Runahead.Models;
using Runahead.Prefill;

namespace Runahead.Cli.Commands;

/// <summary>
/// `runahead bench prefill`: single-process prefill throughput (prompt tokens per second, median of repeats) and
/// memory (weights + KV cache + workspace against the process's peak resident set).
/// </summary>
public static class BenchPrefillCommand
{
    public static Command Build()
    {
        var model = new Option<string?>("--model", "-m") { Description = "Model file or Hugging Face folder" };
        var tokens = new Option<int>("--tokens") { Description = "Prompt length in tokens", DefaultValueFactory = _ => 512 };
        var threads = new Option<int>("--threads", "-t") { Description = "Compute threads", DefaultValueFactory = _ => Environment.ProcessorCount };
        var repeats = new Option<int>("--repeats") { Description = "Timed runs (after warm-up runs: one, more while the JIT is still compiling, at most 4)", DefaultValueFactory = _ => 5 };
        var chunk = new Option<int>("--chunk") { Description = "Tokens per forward chunk (0 = model default)", DefaultValueFactory = _ => 0 };
        var ctxSize = new Option<int?>("--ctx-size") { Description = "Override the context length read from the model file" };
        var json = new Option<bool>("--json") { Description = "Print one JSON object" };
        var memoryDetail = new Option<bool>("--memory-detail")
        {
            Description = "Also print where resident memory is (kernel and GC figures) before load, after load and after each prefill",
        };

        var cmd = new Command("prefill", "Measure single-process prefill: prompt tok/s and memory");
        foreach (var o in new Option[] { model, tokens, threads, repeats, chunk, ctxSize, json, memoryDetail }) cmd.Options.Add(o);
        cmd.SetAction(async (parse, ct) =>
        {
            var stdout = parse.InvocationConfiguration.Output;
            var stderr = parse.InvocationConfiguration.Error;
            return await RunAsync(parse.GetValue(model), parse.GetValue(tokens), parse.GetValue(threads), parse.GetValue(repeats),
                parse.GetValue(chunk), parse.GetValue(ctxSize), parse.GetValue(json), parse.GetValue(memoryDetail), stdout, stderr, ct).ConfigureAwait(false);
        });
        return cmd;
    }

    private static async Task<int> RunAsync(string? modelPath, int tokens, int threads, int repeats, int chunk, int? ctxSize, bool json,
        bool memoryDetail, TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        if (tokens < 1) throw new RunaheadException($"--tokens must be >= 1, got {tokens}");
        if (threads < 1) throw new RunaheadException($"--threads must be >= 1, got {threads}");
        if (repeats < 1) throw new RunaheadException($"--repeats must be >= 1, got {repeats}");
        if (chunk < 0) throw new RunaheadException($"--chunk must be >= 0, got {chunk}");
        if (ctxSize is < 1) throw new RunaheadException($"--ctx-size must be >= 1, got {ctxSize}");
        modelPath ??= Generation.DefaultModel.EnsureAvailable(stderr, ct);

        var snapshots = new List<(string Moment, ProcessMemory Memory)>();
        // A Hugging Face folder maps several files; only a single model file is counted apart.
        string? mappedFile = File.Exists(modelPath) ? modelPath : null;
        if (memoryDetail) snapshots.Add(("start", ProcessMemory.Read(mappedFile)));
        using var model = Model.Load(modelPath, new ModelLoadOptions { Threads = threads, ContextLength = ctxSize });
        if (tokens > model.Config.ContextLength)
            throw new RunaheadException($"--tokens {tokens} exceeds the model's context length of {model.Config.ContextLength} (see --ctx-size)");
        var ids = PromptIds(tokens, model.Config);
        var prefill = new SinglePrefill(model, chunkTokens: chunk);
        if (memoryDetail) snapshots.Add(("loaded", ProcessMemory.Read(mappedFile)));

        long kvBytes = 0;
        async Task<double> OneRunAsync(string moment)
        {
            var (s, bytes) = await TimeOnePrefillAsync(prefill, ids, memoryDetail ? () => snapshots.Add((moment, ProcessMemory.Read(mappedFile))) : null, ct)
                .ConfigureAwait(false);
            kvBytes = bytes;
            // Each run hands out a new KV cache (generation continues on it); free this one before the next run, outside
            // the timing, so the peak RSS below is that of one prefill and not of every cache the GC has not yet reclaimed.
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
            return s;
        }

        int warmups = 0;
        long compiled = System.Runtime.JitInfo.GetCompiledMethodCount();
        do
        {
            await OneRunAsync("warm-up prefill").ConfigureAwait(false);
            warmups++;
        }
        while (warmups < MaxWarmups && JitStillCompiling(ref compiled));
        var seconds = new double[repeats];
        for (int r = 0; r < repeats; r++) seconds[r] = await OneRunAsync($"prefill {r + 1}").ConfigureAwait(false);
        Array.Sort(seconds);
        double median = repeats % 2 == 1 ? seconds[repeats / 2] : (seconds[repeats / 2 - 1] + seconds[repeats / 2]) / 2;
        double tokPerS = tokens / median;
        long peakRss = PeakRss();
        long weights = model.WeightBytes, workspace = prefill.WorkspaceBytes, mapped = model.MappedEmbeddingBytes, file = model.SourceTensorBytes;

        if (json)
        {
            WriteJson(stdout, new Report(modelPath, tokens, threads, repeats, warmups, prefill.ChunkTokens, median, seconds[0], seconds[^1], tokPerS,
                weights, mapped, kvBytes, workspace, file, peakRss, model.Bf16Path, Model.Bf16Decision), memoryDetail ? snapshots : null);
        }
        else
        {
            var inv = CultureInfo.InvariantCulture;
            stdout.WriteLine(string.Create(inv, $"prefill {tokens} tokens, {threads} threads, chunk {prefill.ChunkTokens}: median {median * 1000:F1} ms over {repeats} runs after {warmups} warm-up runs (min {seconds[0] * 1000:F1}, max {seconds[^1] * 1000:F1}) = {tokPerS:F1} tok/s"));
            stdout.WriteLine(string.Create(inv, $"memory: weights {Mib(weights)} + KV cache {Mib(kvBytes)} + workspace {Mib(workspace)} = {Mib(weights + kvBytes + workspace)} (embedding {Mib(mapped)} read from the mapped file); process peak RSS {Mib(peakRss)}, which also counts pages of the {Mib(file)} mapped file read at load"));
            stdout.WriteLine($"bf16 weights: {model.Bf16Path} (vdpbf16ps kernel {Model.Bf16Decision})");
            if (memoryDetail) WriteMemoryDetail(stdout, snapshots);
        }
        return 0;
    }

    /// <summary>
    /// Warm-up runs go on (up to this many) while the JIT still compiles: code that ran unoptimised in the first run is
    /// recompiled in the background shortly after it, and those compiles compete with the compute threads. Timed runs
    /// that overlap them were 10-25 % slower (smollm-135m BF16, 512 tokens, 2 threads) and made medians of 3 unstable.
    /// </summary>
    private const int MaxWarmups = 4;

    /// <summary>
    /// A run that compiled fewer methods than this counts as quiet: after the first runs a few methods called once or
    /// twice per run still reach the tier-up threshold (1-3 per run on smollm-135m, for as long as we watched), which is
    /// noise, against ~300 compiles after the first run.
    /// </summary>
    private const int QuietCompiles = 8;

    /// <summary>Waits briefly for queued tier-up compiles, then says whether the JIT compiled many methods since the last check.</summary>
    private static bool JitStillCompiling(ref long compiled)
    {
        Thread.Sleep(200);
        long now = System.Runtime.JitInfo.GetCompiledMethodCount();
        bool busy = now - compiled >= QuietCompiles;
        compiled = now;
        return busy;
    }

    private sealed record Report(string ModelPath, int Tokens, int Threads, int Repeats, int WarmupRuns, int ChunkTokens, double Median, double Min,
        double Max, double TokPerS, long Weights, long MappedEmbedding, long KvBytes, long Workspace, long FileTensors, long PeakRss,
        string Bf16Path, string Bf16Decision);

    /// <summary>The process's peak resident set so far (VmHWM; the runtime's figure where /proc is not there).</summary>
    private static long PeakRss()
    {
        long fromProc = ProcessMemory.ReadPeakRss();
        return fromProc >= 0 ? fromProc : PeakWorkingSet();

        [MethodImpl(MethodImplOptions.NoInlining)]
        static long PeakWorkingSet()
        {
            using var self = Process.GetCurrentProcess();
            return self.PeakWorkingSet64;
        }
    }

    /// <summary>
    /// Kept out of <see cref="RunAsync"/> so the JSON library is only loaded (and its pages only count in the peak
    /// resident set) when --json asks for it.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void WriteJson(TextWriter stdout, Report r, List<(string Moment, ProcessMemory Memory)>? snapshots)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("model", r.ModelPath);
            w.WriteNumber("tokens", r.Tokens);
            w.WriteNumber("threads", r.Threads);
            w.WriteNumber("repeats", r.Repeats);
            w.WriteNumber("warmup_runs", r.WarmupRuns);
            w.WriteNumber("chunk_tokens", r.ChunkTokens);
            w.WriteNumber("median_s", r.Median);
            w.WriteNumber("min_s", r.Min);
            w.WriteNumber("max_s", r.Max);
            w.WriteNumber("prompt_tokens_per_s", Math.Round(r.TokPerS, 3));
            w.WriteNumber("weights_bytes", r.Weights);
            w.WriteNumber("mapped_embedding_bytes", r.MappedEmbedding);
            w.WriteNumber("kv_cache_bytes", r.KvBytes);
            w.WriteNumber("workspace_bytes", r.Workspace);
            w.WriteNumber("accounted_bytes", r.Weights + r.KvBytes + r.Workspace);
            w.WriteNumber("mapped_file_tensor_bytes", r.FileTensors);
            w.WriteNumber("peak_rss_bytes", r.PeakRss);
            w.WriteString("bf16_path", r.Bf16Path);
            w.WriteString("bf16_kernel", r.Bf16Decision);
            if (snapshots is not null)
            {
                w.WriteStartArray("memory_detail");
                foreach (var (moment, m) in snapshots)
                {
                    w.WriteStartObject();
                    w.WriteString("moment", moment);
                    w.WriteNumber("peak_rss_bytes", m.PeakRssBytes);
                    w.WriteNumber("rss_bytes", m.RssBytes);
                    w.WriteNumber("rss_anon_bytes", m.RssAnonBytes);
                    w.WriteNumber("rss_file_bytes", m.RssFileBytes);
                    w.WriteNumber("rss_shmem_bytes", m.RssShmemBytes);
                    w.WriteNumber("model_file_rss_bytes", m.MappedFileRssBytes);
                    w.WriteNumber("other_file_rss_bytes", m.OtherFileRssBytes);
                    w.WriteNumber("gc_committed_bytes", m.GcCommittedBytes);
                    w.WriteNumber("gc_heap_bytes", m.GcHeapBytes);
                    w.WriteNumber("native_anon_bytes", m.NativeAnonBytes);
                    w.WriteNumber("threads", m.Threads);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
            }
            w.WriteEndObject();
        }
        stdout.WriteLine(System.Text.Encoding.UTF8.GetString(buffer.ToArray()));
    }

    /// <summary>One line per moment: peak and current resident set, split into the model file's pages, other files,
    /// the managed heap and the rest of anonymous memory (the runtime's native heap, JIT code, thread stacks).</summary>
    private static void WriteMemoryDetail(TextWriter stdout, List<(string Moment, ProcessMemory Memory)> snapshots)
    {
        var inv = CultureInfo.InvariantCulture;
        stdout.WriteLine("memory detail (MiB): moment | peak RSS | RSS = anonymous + file + shmem | model file pages | other files | GC committed | GC heap | anonymous outside GC | threads");
        foreach (var (moment, m) in snapshots)
        {
            stdout.WriteLine(string.Create(inv,
                $"  {moment,-16} | {M(m.PeakRssBytes),7} | {M(m.RssBytes),7} = {M(m.RssAnonBytes),7} + {M(m.RssFileBytes),6} + {M(m.RssShmemBytes),5} | {M(m.MappedFileRssBytes),6} | {M(m.OtherFileRssBytes),6} | {M(m.GcCommittedBytes),7} | {M(m.GcHeapBytes),7} | {M(m.NativeAnonBytes),6} | {m.Threads}"));
        }

        static string M(long bytes) => bytes < 0 ? "n/a" : (bytes / (1024.0 * 1024.0)).ToString("F1", CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// Times one prefill and keeps only figures of its result. Run inline in the caller's loop, the awaiter of the
    /// synchronously completed task stayed reported live in the caller's frame, so each run's KV cache survived the
    /// collection before the next run and the peak counted two caches.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static async Task<(double Seconds, long KvBytes)> TimeOnePrefillAsync(SinglePrefill prefill, int[] ids, Action? afterRun,
        CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var result = await prefill.PrefillAsync(ids, ct).ConfigureAwait(false);
        double seconds = clock.Elapsed.TotalSeconds;
        afterRun?.Invoke();
        return (seconds, result.Cache.Bytes);
    }

    private static string Mib(long bytes) => (bytes / (1024.0 * 1024.0)).ToString("F1", CultureInfo.InvariantCulture) + " MiB";

    /// <summary>BOS then a fixed pseudo-random sequence: content does not change prefill cost, but must be reproducible.</summary>
    private static int[] PromptIds(int n, ModelConfig config)
    {
        var ids = new int[n];
        var rng = new Random(1234);
        for (int i = 0; i < n; i++) ids[i] = rng.Next(config.VocabSize);
        if (config.BosId >= 0 && config.BosId < config.VocabSize) ids[0] = config.BosId;
        return ids;
    }
}
