using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
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
        var repeats = new Option<int>("--repeats") { Description = "Timed runs (after one warm-up run)", DefaultValueFactory = _ => 5 };
        var chunk = new Option<int>("--chunk") { Description = "Tokens per forward chunk (0 = model default)", DefaultValueFactory = _ => 0 };
        var ctxSize = new Option<int?>("--ctx-size") { Description = "Override the context length read from the model file" };
        var json = new Option<bool>("--json") { Description = "Print one JSON object" };

        var cmd = new Command("prefill", "Measure single-process prefill: prompt tok/s and memory");
        foreach (var o in new Option[] { model, tokens, threads, repeats, chunk, ctxSize, json }) cmd.Options.Add(o);
        cmd.SetAction(async (parse, ct) =>
        {
            var stdout = parse.InvocationConfiguration.Output;
            var stderr = parse.InvocationConfiguration.Error;
            return await RunAsync(parse.GetValue(model), parse.GetValue(tokens), parse.GetValue(threads), parse.GetValue(repeats),
                parse.GetValue(chunk), parse.GetValue(ctxSize), parse.GetValue(json), stdout, stderr, ct).ConfigureAwait(false);
        });
        return cmd;
    }

    private static async Task<int> RunAsync(string? modelPath, int tokens, int threads, int repeats, int chunk, int? ctxSize, bool json,
        TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        if (tokens < 1) throw new RunaheadException($"--tokens must be >= 1, got {tokens}");
        if (threads < 1) throw new RunaheadException($"--threads must be >= 1, got {threads}");
        if (repeats < 1) throw new RunaheadException($"--repeats must be >= 1, got {repeats}");
        if (chunk < 0) throw new RunaheadException($"--chunk must be >= 0, got {chunk}");
        if (ctxSize is < 1) throw new RunaheadException($"--ctx-size must be >= 1, got {ctxSize}");
        modelPath ??= Generation.DefaultModel.EnsureAvailable(stderr, ct);

        using var model = Model.Load(modelPath, new ModelLoadOptions { Threads = threads, ContextLength = ctxSize });
        if (tokens > model.Config.ContextLength)
            throw new RunaheadException($"--tokens {tokens} exceeds the model's context length of {model.Config.ContextLength} (see --ctx-size)");
        var ids = PromptIds(tokens, model.Config);
        var prefill = new SinglePrefill(model, chunkTokens: chunk);

        long kvBytes = 0;
        var seconds = new double[repeats];
        for (int r = -1; r < repeats; r++)
        {
            var clock = Stopwatch.StartNew();
            var result = await prefill.PrefillAsync(ids, ct).ConfigureAwait(false);
            double s = clock.Elapsed.TotalSeconds;
            kvBytes = result.Cache.Bytes;
            if (r >= 0) seconds[r] = s;
            // Each run hands out a new KV cache (generation continues on it); free this one before the next run, outside
            // the timing, so the peak RSS below is that of one prefill and not of every cache the GC has not yet reclaimed.
            result = null;
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        }
        Array.Sort(seconds);
        double median = repeats % 2 == 1 ? seconds[repeats / 2] : (seconds[repeats / 2 - 1] + seconds[repeats / 2]) / 2;
        double tokPerS = tokens / median;
        using var self = Process.GetCurrentProcess();
        self.Refresh();
        long peakRss = self.PeakWorkingSet64;
        long weights = model.WeightBytes, workspace = prefill.WorkspaceBytes, mapped = model.MappedEmbeddingBytes, file = model.SourceTensorBytes;

        if (json)
        {
            using var buffer = new MemoryStream();
            using (var w = new Utf8JsonWriter(buffer))
            {
                w.WriteStartObject();
                w.WriteString("model", modelPath);
                w.WriteNumber("tokens", tokens);
                w.WriteNumber("threads", threads);
                w.WriteNumber("repeats", repeats);
                w.WriteNumber("chunk_tokens", prefill.ChunkTokens);
                w.WriteNumber("median_s", median);
                w.WriteNumber("min_s", seconds[0]);
                w.WriteNumber("max_s", seconds[^1]);
                w.WriteNumber("prompt_tokens_per_s", Math.Round(tokPerS, 3));
                w.WriteNumber("weights_bytes", weights);
                w.WriteNumber("mapped_embedding_bytes", mapped);
                w.WriteNumber("kv_cache_bytes", kvBytes);
                w.WriteNumber("workspace_bytes", workspace);
                w.WriteNumber("accounted_bytes", weights + kvBytes + workspace);
                w.WriteNumber("mapped_file_tensor_bytes", file);
                w.WriteNumber("peak_rss_bytes", peakRss);
                w.WriteEndObject();
            }
            stdout.WriteLine(System.Text.Encoding.UTF8.GetString(buffer.ToArray()));
        }
        else
        {
            var inv = CultureInfo.InvariantCulture;
            stdout.WriteLine(string.Create(inv, $"prefill {tokens} tokens, {threads} threads, chunk {prefill.ChunkTokens}: median {median * 1000:F1} ms over {repeats} runs (min {seconds[0] * 1000:F1}, max {seconds[^1] * 1000:F1}) = {tokPerS:F1} tok/s"));
            stdout.WriteLine(string.Create(inv, $"memory: weights {Mib(weights)} + KV cache {Mib(kvBytes)} + workspace {Mib(workspace)} = {Mib(weights + kvBytes + workspace)} (embedding {Mib(mapped)} read from the mapped file); process peak RSS {Mib(peakRss)}, which also counts pages of the {Mib(file)} mapped file read at load"));
        }
        return 0;
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
