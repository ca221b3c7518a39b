using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Runahead.Generation;
using Runahead.Models;

namespace Runahead.Cli.Commands;

/// <summary>
/// `runahead generate`: loads a model (file, Hugging Face folder, or the embedded default), streams the prompt's
/// text and then each generated piece to stdout, and reports prompt tokens, TTFT, prompt and decode tok/s on stderr
/// (or everything as one JSON object with --json). -n is the number of tokens to generate, not counting the
/// prompt (llama2.c's -n counts positions including the prompt).
/// </summary>
public static class GenerateCommand
{
    public const string DefaultPrompt = "Once upon a time";

    public static Command Build()
    {
        var model = new Option<string?>("--model", "-m") { Description = "Model file (.gguf, llama2.c .bin, .safetensors) or Hugging Face folder; omitted: the embedded default model" };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "Tokenizer file (llama2.c tokenizer.bin or tokenizer.json) when the model has none" };
        var prompt = new Option<string?>("--prompt", "-p") { Description = $"Prompt text (default \"{DefaultPrompt}\")" };
        var promptFile = new Option<string?>("--prompt-file") { Description = "Read the prompt text from a file" };
        var promptIds = new Option<string?>("--prompt-ids") { Description = "Prompt as token ids, e.g. 1,403,407 (no BOS added)" };
        var count = new Option<int>("-n", "--tokens") { Description = "Tokens to generate, not counting the prompt (llama2.c's -n counts positions including the prompt: its -n 64 with a 5-token prompt is -n 60 here)", DefaultValueFactory = _ => 128 };
        var temperature = new Option<float>("--temperature") { Description = "Sampling temperature; 0 = greedy", DefaultValueFactory = _ => 0.8f };
        var topK = new Option<int>("--top-k") { Description = "Keep the k most likely tokens (0 = all)", DefaultValueFactory = _ => 40 };
        var topP = new Option<float>("--top-p") { Description = "Nucleus sampling probability mass (1 = off)", DefaultValueFactory = _ => 0.95f };
        var repeatPenalty = new Option<float>("--repeat-penalty") { Description = "Penalty for the last 64 tokens (1 = off)", DefaultValueFactory = _ => 1f };
        var seed = new Option<ulong?>("--seed") { Description = "Random seed for sampling (default: random)" };
        var threads = new Option<int>("--threads", "-t") { Description = "Compute threads", DefaultValueFactory = _ => Environment.ProcessorCount };
        var ctxSize = new Option<int?>("--ctx-size") { Description = "Override the context length read from the model file" };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of streaming text" };

        var cmd = new Command("generate", "Generate text from a prompt");
        foreach (var o in new Option[] { model, tokenizer, prompt, promptFile, promptIds, count, temperature, topK, topP, repeatPenalty, seed, threads, ctxSize, json })
            cmd.Options.Add(o);
        var parallel = new PrefillOptions();   // --ranks --strategy --partition --transport ... (strat helper)
        parallel.AddTo(cmd, includeRanks: true);

        cmd.SetAction(async (parse, ct) =>
        {
            var stdout = parse.InvocationConfiguration.Output;
            var stderr = parse.InvocationConfiguration.Error;
            try
            {
                var request = new Request(
                    parse.GetValue(model), parse.GetValue(tokenizer), parse.GetValue(prompt), parse.GetValue(promptFile),
                    parse.GetValue(promptIds), parse.GetValue(count), parse.GetValue(threads), parse.GetValue(ctxSize), parse.GetValue(json),
                    new SamplingOptions
                    {
                        Temperature = parse.GetValue(temperature), TopK = parse.GetValue(topK), TopP = parse.GetValue(topP),
                        RepeatPenalty = parse.GetValue(repeatPenalty), Seed = parse.GetValue(seed),
                    });
                // Ctrl+C cancels the generation (the ranks stop decoding and are torn down) and exits 130; a second one
                // terminates at once.
                using var interrupt = CancellationTokenSource.CreateLinkedTokenSource(ct);
                ConsoleCancelEventHandler onInterrupt = (_, e) =>
                {
                    if (interrupt.IsCancellationRequested) return;
                    e.Cancel = true;
                    interrupt.Cancel();
                };
                Console.CancelKeyPress += onInterrupt;
                try
                {
                    return await RunAsync(request, parallel.Read(parse), stdout, stderr, interrupt.Token).ConfigureAwait(false);
                }
                finally
                {
                    Console.CancelKeyPress -= onInterrupt;
                }
            }
            catch (RunaheadException e)
            {
                stderr.WriteLine("runahead: " + e.Message);
                return 1;
            }
            catch (OperationCanceledException)
            {
                stdout.WriteLine();
                stderr.WriteLine("runahead: cancelled");
                return 130;
            }
        });
        return cmd;
    }

    private sealed record Request(string? Model, string? Tokenizer, string? Prompt, string? PromptFile, string? PromptIds,
        int Count, int Threads, int? ContextSize, bool Json, SamplingOptions Sampling);

    private static async Task<int> RunAsync(Request r, PrefillSettings prefill, TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        int given = (r.Prompt != null ? 1 : 0) + (r.PromptFile != null ? 1 : 0) + (r.PromptIds != null ? 1 : 0);
        if (given > 1) throw new RunaheadException("give only one of --prompt, --prompt-file and --prompt-ids");
        if (r.Count < 0) throw new RunaheadException($"-n must be >= 0, got {r.Count}");
        if (r.Threads < 1) throw new RunaheadException($"--threads must be >= 1, got {r.Threads}");
        if (r.ContextSize is < 1) throw new RunaheadException($"--ctx-size must be >= 1, got {r.ContextSize}");
        r.Sampling.Validate();
        int[]? ids = r.PromptIds != null ? ParseIds(r.PromptIds) : null;
        string? text = r.PromptFile != null ? ReadPromptFile(r.PromptFile) : r.Prompt;
        if (ids == null && text == null) text = DefaultPrompt;

        string modelPath = r.Model ?? DefaultModel.EnsureAvailable(stderr, ct);
        // In parallel mode this process keeps only the tokenizer and the configuration: the ranks load the weights. The
        // prompt and its partition are checked before any rank starts.
        Text.ITokenizer? tokenizer = null;
        ParallelGenerationOptions? parallel = null;
        if (prefill.IsParallel)
        {
            var config = LlmSession.ReadConfig(modelPath, r.ContextSize).Config;
            tokenizer = LlmSession.LoadTokenizer(modelPath, r.Tokenizer, required: ids == null);
            ids ??= tokenizer!.Encode(text!, tokenizer.AddBosByDefault);
            Generator.ValidatePrompt(ids, config);
            parallel = prefill.ToOptions(modelPath, config);
            parallel.Partition.Resolve(ids.Length, parallel.Ranks, parallel.Planner);
            if (!r.Json)
                stderr.WriteLine($"runahead: starting {prefill.Ranks} rank(s) ({TransportName(prefill.Transport)}, {prefill.ThreadsPerRank} thread(s) each); each loads {Path.GetFileName(modelPath)}");
        }
        using var session = await LlmSession.LoadAsync(modelPath, new LlmSessionOptions
        {
            TokenizerPath = r.Tokenizer,
            Tokenizer = tokenizer,
            RequireTokenizer = ids == null,
            Model = new ModelLoadOptions { Threads = r.Threads, ContextLength = r.ContextSize },
            Parallel = parallel,
        }, ct).ConfigureAwait(false);
        if (session.Ranks is { } started && !r.Json)
            stderr.WriteLine(string.Create(CultureInfo.InvariantCulture, $"runahead: ranks ready in {started.StartupTime.TotalSeconds:F1} s (start, model load, warm-up)"));
        ids ??= session.Tokenize(text!);
        session.Generator.ValidatePrompt(ids);

        var options = new GenerationOptions { MaxNewTokens = r.Count, Sampling = r.Sampling };
        // Under MPI every process runs this command; only rank 0 (the client) prints.
        bool print = session.Generator.IsClient && !r.Json;
        var generated = new System.Text.StringBuilder();
        string promptText = session.Tokenizer != null ? new TextStreamer(session.Tokenizer, ids).Prefix : "";
        if (print) { stdout.Write(promptText); stdout.Flush(); }
        await foreach (var token in session.GenerateAsync(ids, options, ct).ConfigureAwait(false))
        {
            // Without a tokenizer (token-id prompts on a bare checkpoint) the ids are the output.
            string piece = session.Tokenizer != null ? token.Text : (token.Id >= 0 ? token.Id.ToString(CultureInfo.InvariantCulture) + " " : "");
            generated.Append(piece);
            if (print) { stdout.Write(piece); stdout.Flush(); }
        }
        if (!session.Generator.IsClient) return 0;
        var stats = session.LastStats!;
        var run = stats.Parallel;
        var startup = session.Ranks != null ? session.Ranks.StartupTime + stats.RankStartup : TimeSpan.Zero;
        if (run != null && prefill.TracePath != null) Diagnostics.Timeline.WriteChromeTrace(prefill.TracePath, [run.Timeline]);
        if (r.Json)
        {
            WriteJson(stdout, modelPath, r.Threads, promptText, generated.ToString(), stats,
                run != null ? w => prefill.WriteJsonFields(w, run, startup) : null);
        }
        else
        {
            stdout.WriteLine();
            if (run != null) prefill.WriteSummary(stderr, stats, run, startup, StopText(stats.StopReason));
            else
                stderr.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"prompt tokens: {stats.PromptTokens}, TTFT: {stats.TimeToFirstToken.TotalMilliseconds:F1} ms, prompt: {stats.PromptTokensPerSecond:F1} tok/s, " +
                    $"decode: {stats.GeneratedTokens} tokens at {stats.DecodeTokensPerSecond:F1} tok/s ({StopText(stats.StopReason)})"));
        }
        return 0;
    }

    private static string TransportName(Distributed.RankTransport transport) => transport switch
    {
        Distributed.RankTransport.InProcess => "threads of this process",
        Distributed.RankTransport.Mpi => "MPI",
        _ => "worker processes over shared memory",
    };

    private static void WriteJson(TextWriter stdout, string modelPath, int threads, string promptText, string text, GenerationStats stats,
        Action<Utf8JsonWriter>? extra)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = false }))
        {
            w.WriteStartObject();
            w.WriteString("model", modelPath);
            w.WriteNumber("threads", threads);
            w.WriteStartArray("prompt_ids");
            foreach (var id in stats.PromptIds) w.WriteNumberValue(id);
            w.WriteEndArray();
            w.WriteStartArray("generated_ids");
            foreach (var id in stats.GeneratedIds) w.WriteNumberValue(id);
            w.WriteEndArray();
            w.WriteString("prompt_text", promptText);
            w.WriteString("text", text);
            w.WriteNumber("prompt_tokens", stats.PromptTokens);
            w.WriteNumber("generated_tokens", stats.GeneratedTokens);
            w.WriteNumber("ttft_ms", Math.Round(stats.TimeToFirstToken.TotalMilliseconds, 3));
            w.WriteNumber("prompt_tokens_per_s", Math.Round(stats.PromptTokensPerSecond, 3));
            w.WriteNumber("decode_tokens_per_s", Math.Round(stats.DecodeTokensPerSecond, 3));
            w.WriteString("stop_reason", StopText(stats.StopReason));
            extra?.Invoke(w);
            w.WriteEndObject();
        }
        stdout.WriteLine(System.Text.Encoding.UTF8.GetString(buffer.ToArray()));
    }

    private static string StopText(StopReason reason) => reason switch
    {
        StopReason.EndOfSequence => "end of sequence",
        StopReason.TokenBudget => "token budget",
        StopReason.ContextFull => "context full",
        StopReason.Cancelled => "cancelled",
        _ => "stopped",
    };

    private static int[] ParseIds(string text)
    {
        var parts = text.Split([',', ' '], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (parts.Length == 0) throw new RunaheadException("--prompt-ids: no token ids given");
        var ids = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out ids[i]))
                throw new RunaheadException($"--prompt-ids: '{parts[i]}' is not a token id");
        return ids;
    }

    private static string ReadPromptFile(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new RunaheadException($"--prompt-file {path}: {e.Message}");
        }
    }
}
