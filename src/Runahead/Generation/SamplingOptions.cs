namespace Runahead.Generation;

/// <summary>How the next token is chosen from the logits.</summary>
public sealed record SamplingOptions
{
    /// <summary>0: greedy (argmax, lowest id on ties). Otherwise logits are divided by it before softmax.</summary>
    public float Temperature { get; init; } = 0.8f;

    /// <summary>Keep only the k most likely tokens; 0: all.</summary>
    public int TopK { get; init; } = 40;

    /// <summary>Keep the smallest set of most likely tokens whose probability reaches p (nucleus); 1: all.</summary>
    public float TopP { get; init; } = 0.95f;

    /// <summary>Penalty for tokens seen in the last <see cref="RepeatLastN"/> tokens (1: none), as llama.cpp: a
    /// positive logit is divided by it, a negative one multiplied.</summary>
    public float RepeatPenalty { get; init; } = 1f;

    /// <summary>How many recent tokens (prompt included) the repetition penalty looks at.</summary>
    public int RepeatLastN { get; init; } = 64;

    /// <summary>Seed of the random choice; null: a random seed.</summary>
    public ulong? Seed { get; init; }

    public static SamplingOptions Greedy { get; } = new() { Temperature = 0 };

    /// <summary>Throws <see cref="RunaheadException"/> naming the bad option.</summary>
    public void Validate()
    {
        if (!(Temperature >= 0) || !float.IsFinite(Temperature)) throw new RunaheadException($"--temperature must be a finite number >= 0, got {Temperature}");
        if (TopK < 0) throw new RunaheadException($"--top-k must be >= 0, got {TopK}");
        if (!(TopP > 0 && TopP <= 1)) throw new RunaheadException($"--top-p must be in (0, 1], got {TopP}");
        if (!(RepeatPenalty > 0) || !float.IsFinite(RepeatPenalty)) throw new RunaheadException($"--repeat-penalty must be a finite number > 0, got {RepeatPenalty}");
        if (RepeatLastN < 0) throw new RunaheadException($"repeat-last-n must be >= 0, got {RepeatLastN}");
    }
}
