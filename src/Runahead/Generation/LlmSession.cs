using Runahead.Formats;
using Runahead.Models;
using Runahead.Prefill;
using Runahead.Text;

namespace Runahead.Generation;

/// <summary>
/// The library entry point for .NET callers: a model and its tokenizer loaded from a path, text in, a stream of
/// tokens out.
/// <code>
/// using var session = LlmSession.Load("model.gguf");
/// await foreach (var token in session.GenerateAsync("Once upon a time", new GenerationOptions { MaxNewTokens = 64 }))
///     Console.Write(token.Text);
/// Console.WriteLine($"TTFT {session.LastStats!.TimeToFirstToken.TotalMilliseconds} ms");
/// </code>
/// With <see cref="LlmSessionOptions.Parallel"/> the prefill runs over worker processes (see docs/LIBRARY.md) and this
/// process loads only the tokenizer and the model's configuration, never the weights.
/// </summary>
public sealed class LlmSession : IDisposable
{
    private readonly ParallelRanks? _ranks;

    /// <summary>The loaded weights; null for a parallel session (the ranks hold them).</summary>
    public Model? Model { get; }

    /// <summary>The model's configuration (with the context length as overridden).</summary>
    public ModelConfig Config => Generator.Config;

    /// <summary>The model file or folder this session was loaded from.</summary>
    public string ModelPath { get; }

    /// <summary>The ranks of a parallel session (their start-up time, threads); null otherwise.</summary>
    public ParallelRanks? Ranks => _ranks;

    /// <summary>Null only for a session loaded with <see cref="LlmSessionOptions.RequireTokenizer"/> = false and no tokenizer found.</summary>
    public ITokenizer? Tokenizer { get; }

    public Generator Generator { get; }

    public GenerationStats? LastStats => Generator.LastStats;

    private LlmSession(string modelPath, Model model, ITokenizer? tokenizer, IPrefillStrategy? prefill)
    {
        ModelPath = modelPath;
        Model = model;
        Tokenizer = tokenizer;
        Generator = new Generator(model, tokenizer, prefill);
    }

    private LlmSession(string modelPath, ParallelRanks ranks, ModelConfig config, string formatName, ITokenizer? tokenizer)
    {
        ModelPath = modelPath;
        _ranks = ranks;
        Tokenizer = tokenizer;
        Generator = new Generator(ranks, config, formatName, tokenizer);
    }

    /// <summary>
    /// Loads a model file or Hugging Face folder and its tokenizer. For a parallel session this blocks while the ranks
    /// start; <see cref="LoadAsync"/> does not.
    /// </summary>
    public static LlmSession Load(string modelPath, LlmSessionOptions? options = null)
    {
        options ??= new LlmSessionOptions();
        if (options.Parallel != null) return LoadAsync(modelPath, options).GetAwaiter().GetResult();
        var model = Model.Load(modelPath, options.Model);
        try
        {
            var tokenizer = options.Tokenizer
                ?? LoadTokenizer(modelPath, options.TokenizerPath, model.Config.VocabSize, model.FormatName, options.RequireTokenizer);
            return new LlmSession(modelPath, model, tokenizer, options.PrefillFactory?.Invoke(model));
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Loads a session; with <see cref="LlmSessionOptions.Parallel"/>, reads the configuration and tokenizer here and
    /// starts the ranks (each loads the weights; process start, model load and a warm-up job all happen now, outside
    /// any TTFT).
    /// </summary>
    public static async Task<LlmSession> LoadAsync(string modelPath, LlmSessionOptions? options = null, CancellationToken ct = default)
    {
        options ??= new LlmSessionOptions();
        if (options.Parallel == null) return Load(modelPath, options);
        if (options.PrefillFactory != null)
            throw new RunaheadException("a parallel session prefills on its ranks; give LlmSessionOptions.Parallel or PrefillFactory, not both");
        var (config, format) = ReadConfig(modelPath, options.Model.ContextLength);
        var tokenizer = options.Tokenizer ?? LoadTokenizer(modelPath, options.TokenizerPath, config.VocabSize, format, options.RequireTokenizer);
        var ranks = await ParallelRanks.StartAsync(modelPath, options.Parallel, options.Model.ContextLength, ct).ConfigureAwait(false);
        return new LlmSession(modelPath, ranks, config, format, tokenizer);
    }

    /// <summary>
    /// The configuration and format of a model file or folder, read from its header (the weights are only mapped, not
    /// read or packed); <paramref name="contextLength"/> overrides the file's context length.
    /// </summary>
    public static (ModelConfig Config, string FormatName) ReadConfig(string modelPath, int? contextLength = null)
    {
        using var source = Formats.WeightSources.Open(modelPath);
        var config = source.Config;
        if (contextLength is int ctx) config = config with { ContextLength = ctx };
        config.Validate(source.SourcePath);
        return (config, source.FormatName);
    }

    /// <summary>Text to ids (with BOS when the tokenizer asks for it, unless <paramref name="addBos"/> says otherwise).</summary>
    public int[] Tokenize(string text, bool? addBos = null)
    {
        var tokenizer = Tokenizer ?? throw new RunaheadException($"{ModelPath}: no tokenizer found; use token ids or give a tokenizer file");
        return tokenizer.Encode(text, addBos ?? tokenizer.AddBosByDefault);
    }

    public string Detokenize(ReadOnlySpan<int> ids) =>
        (Tokenizer ?? throw new RunaheadException($"{ModelPath}: no tokenizer found")).Decode(ids);

    public IAsyncEnumerable<GeneratedToken> GenerateAsync(string prompt, GenerationOptions? options = null, CancellationToken ct = default) =>
        Generator.GenerateAsync(Tokenize(prompt), options, ct);

    public IAsyncEnumerable<GeneratedToken> GenerateAsync(ReadOnlyMemory<int> promptIds, GenerationOptions? options = null, CancellationToken ct = default) =>
        Generator.GenerateAsync(promptIds, options, ct);

    /// <summary>
    /// The tokenizer for a model: the explicit file; else the GGUF's embedded vocabulary or the folder's
    /// tokenizer.json; else a llama2.c tokenizer beside the model (tokenizer.bin as run.c's default, or
    /// tok{vocab size}.bin as llama2.c names custom vocabularies).
    /// </summary>
    /// <summary>
    /// The tokenizer a session for <paramref name="modelPath"/> would use (see <see cref="LlmSessionOptions.TokenizerPath"/>
    /// and <see cref="LlmSessionOptions.RequireTokenizer"/>), without loading the weights.
    /// </summary>
    public static ITokenizer? LoadTokenizer(string modelPath, string? tokenizerPath, bool required = true)
    {
        var (config, format) = ReadConfig(modelPath);
        return LoadTokenizer(modelPath, tokenizerPath, config.VocabSize, format, required);
    }

    private static ITokenizer? LoadTokenizer(string modelPath, string? tokenizerPath, int vocabSize, string formatName, bool required)
    {
        if (required || tokenizerPath != null) return FindTokenizer(modelPath, tokenizerPath, vocabSize, formatName, required);
        try
        {
            return FindTokenizer(modelPath, null, vocabSize, formatName, required);
        }
        catch (RunaheadException)
        {
            // Optional and absent or unreadable (e.g. a GGUF without vocabulary): a token-id-only session.
            return null;
        }
    }

    private static ITokenizer? FindTokenizer(string modelPath, string? tokenizerPath, int vocabSize, string formatName, bool required)
    {
        if (tokenizerPath != null) return TokenizerLoader.Load(modelPath, tokenizerPath);
        var folder = Directory.Exists(modelPath) ? modelPath : Path.GetDirectoryName(Path.GetFullPath(modelPath)) ?? ".";
        if (formatName == "gguf" || File.Exists(Path.Combine(folder, "tokenizer.json")))
            return TokenizerLoader.Load(modelPath, null);
        foreach (var name in new[] { "tokenizer.bin", $"tok{vocabSize}.bin" })
        {
            var beside = Path.Combine(folder, name);
            if (File.Exists(beside)) return TokenizerLoader.Load(modelPath, beside);
        }
        if (required)
            throw new RunaheadException($"{modelPath}: no tokenizer found inside or beside the model; give one with --tokenizer (tokenizer.bin or tokenizer.json)");
        return null;
    }

    public void Dispose()
    {
        Model?.Dispose();
        _ranks?.Dispose();
    }
}
