using Runahead.Models;

namespace Runahead.Generation;

/// <summary>How <see cref="LlmSession.Load"/> opens a model.</summary>
public sealed record LlmSessionOptions
{
    /// <summary>Tokenizer file (llama2.c tokenizer.bin or tokenizer.json); null: the one inside or beside the model.</summary>
    public string? TokenizerPath { get; init; }

    /// <summary>An already loaded tokenizer (e.g. from <see cref="LlmSession.LoadTokenizer"/>); wins over <see cref="TokenizerPath"/>.</summary>
    public Text.ITokenizer? Tokenizer { get; init; }

    /// <summary>Whether a model without a findable tokenizer is an error (false: token-id-only session).</summary>
    public bool RequireTokenizer { get; init; } = true;

    public ModelLoadOptions Model { get; init; } = new();

    /// <summary>Makes the prefill strategy for the loaded model; null: single-process prefill.</summary>
    public Func<Model, IPrefillStrategy>? PrefillFactory { get; init; }

    /// <summary>
    /// Prefill over ranks (worker processes by default); the last rank decodes and streams the tokens, and this
    /// process loads no weights. Null: everything in this process.
    /// </summary>
    public ParallelGenerationOptions? Parallel { get; init; }
}
