namespace Runahead.Generation;

/// <summary>What to generate after a prompt.</summary>
public sealed record GenerationOptions
{
    /// <summary>
    /// Number of new tokens to generate (not counting the prompt; llama2.c's -n counts positions including the
    /// prompt). Generation also stops at an end-of-sequence token or when the context is full.
    /// </summary>
    public int MaxNewTokens { get; init; } = 256;

    public SamplingOptions Sampling { get; init; } = new();

    /// <summary>
    /// Token ids that end generation (not yielded). Null: the tokenizer's (or else the model's) EOS id, plus BOS for
    /// llama2.c checkpoints (run.c stops there: BOS starts the next story).
    /// </summary>
    public IReadOnlyList<int>? StopIds { get; init; }
}
