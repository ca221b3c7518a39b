using Runahead.Formats;
using Runahead.Models;
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
/// </summary>
public sealed class LlmSession : IDisposable
{
    public Model Model { get; }

    /// <summary>Null only for a session loaded with <see cref="LlmSessionOptions.RequireTokenizer"/> = false and no tokenizer found.</summary>
    public ITokenizer? Tokenizer { get; }

    public Generator Generator { get; }

    public GenerationStats? LastStats => Generator.LastStats;

    private LlmSession(Model model, ITokenizer? tokenizer, IPrefillStrategy? prefill)
    {
        Model = model;
        Tokenizer = tokenizer;
        Generator = new Generator(model, tokenizer, prefill);
    }

    /// <summary>Loads a model file or Hugging Face folder and its tokenizer.</summary>
    public static LlmSession Load(string modelPath, LlmSessionOptions? options = null)
    {
        options ??= new LlmSessionOptions();
        var model = Model.Load(modelPath, options.Model);
        try
        {
            var tokenizer = LoadTokenizer(modelPath, options.TokenizerPath, model, options.RequireTokenizer);
            return new LlmSession(model, tokenizer, options.PrefillFactory?.Invoke(model));
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Text to ids (with BOS when the tokenizer asks for it, unless <paramref name="addBos"/> says otherwise).</summary>
    public int[] Tokenize(string text, bool? addBos = null)
    {
        var tokenizer = Tokenizer ?? throw new RunaheadException($"{Model.SourcePath}: no tokenizer found; use token ids or give a tokenizer file");
        return tokenizer.Encode(text, addBos ?? tokenizer.AddBosByDefault);
    }

    public string Detokenize(ReadOnlySpan<int> ids) =>
        (Tokenizer ?? throw new RunaheadException($"{Model.SourcePath}: no tokenizer found")).Decode(ids);

    public IAsyncEnumerable<GeneratedToken> GenerateAsync(string prompt, GenerationOptions? options = null, CancellationToken ct = default) =>
        Generator.GenerateAsync(Tokenize(prompt), options, ct);

    public IAsyncEnumerable<GeneratedToken> GenerateAsync(ReadOnlyMemory<int> promptIds, GenerationOptions? options = null, CancellationToken ct = default) =>
        Generator.GenerateAsync(promptIds, options, ct);

    /// <summary>
    /// The tokenizer for a model: the explicit file; else the GGUF's embedded vocabulary or the folder's
    /// tokenizer.json; else a llama2.c tokenizer beside the model (tokenizer.bin as run.c's default, or
    /// tok{vocab size}.bin as llama2.c names custom vocabularies).
    /// </summary>
    private static ITokenizer? LoadTokenizer(string modelPath, string? tokenizerPath, Model model, bool required)
    {
        if (required || tokenizerPath != null) return FindTokenizer(modelPath, tokenizerPath, model, required);
        try
        {
            return FindTokenizer(modelPath, null, model, required);
        }
        catch (RunaheadException)
        {
            // Optional and absent or unreadable (e.g. a GGUF without vocabulary): a token-id-only session.
            return null;
        }
    }

    private static ITokenizer? FindTokenizer(string modelPath, string? tokenizerPath, Model model, bool required)
    {
        if (tokenizerPath != null) return TokenizerLoader.Load(modelPath, tokenizerPath);
        var folder = Directory.Exists(modelPath) ? modelPath : Path.GetDirectoryName(Path.GetFullPath(modelPath)) ?? ".";
        if (model.FormatName == "gguf" || File.Exists(Path.Combine(folder, "tokenizer.json")))
            return TokenizerLoader.Load(modelPath, null);
        foreach (var name in new[] { "tokenizer.bin", $"tok{model.Config.VocabSize}.bin" })
        {
            var beside = Path.Combine(folder, name);
            if (File.Exists(beside)) return TokenizerLoader.Load(modelPath, beside);
        }
        if (required)
            throw new RunaheadException($"{modelPath}: no tokenizer found inside or beside the model; give one with --tokenizer (tokenizer.bin or tokenizer.json)");
        return null;
    }

    public void Dispose() => Model.Dispose();
}
