namespace Runahead.Generation;

public enum StopReason
{
    /// <summary>Still running, or the caller stopped enumerating.</summary>
    None,
    EndOfSequence,
    TokenBudget,
    ContextFull,
    Cancelled,
}

/// <summary>Counts and timings of one generation.</summary>
public sealed class GenerationStats
{
    public int[] PromptIds { get; internal set; } = [];
    public List<int> GeneratedIds { get; } = new();
    public int PromptTokens => PromptIds.Length;
    public int GeneratedTokens => GeneratedIds.Count;

    /// <summary>
    /// Time to first token: from the prompt ids handed in to the first generated id known (prefill + one sample). Over
    /// ranks: from the job handed to the ranks (after the partition is planned) to the first id arriving here.
    /// </summary>
    public TimeSpan TimeToFirstToken { get; internal set; }

    /// <summary>Time spent in the prefill strategy.</summary>
    public TimeSpan PrefillTime { get; internal set; }

    /// <summary>Time spent in the decode steps after the first token (forward + sampling; not the consumer's time between tokens).</summary>
    public TimeSpan DecodeTime { get; internal set; }

    /// <summary>One-token forward steps after the first token (each yields a token, or the stop id that ended generation).</summary>
    public int DecodeSteps { get; internal set; }

    public StopReason StopReason { get; internal set; }

    /// <summary>Per-rank timings reported by the prefill strategy.</summary>
    public IReadOnlyList<RankTiming> RankTimings { get; internal set; } = [];

    /// <summary>The parallel run as its client saw it (strategy, partition, per-rank timeline); null for single-process generation.</summary>
    public Prefill.PrefillRun? Parallel { get; internal set; }

    /// <summary>Rank start, model load and warm-up paid inside this generation (ranks restarted after a cancelled job); not part of the TTFT.</summary>
    public TimeSpan RankStartup { get; internal set; }

    /// <summary>Prompt tokens per second of prefill (prompt tokens / time to first token).</summary>
    public double PromptTokensPerSecond => TimeToFirstToken > TimeSpan.Zero ? PromptTokens / TimeToFirstToken.TotalSeconds : 0;

    /// <summary>Decode tokens per second (decode steps / decode time).</summary>
    public double DecodeTokensPerSecond => DecodeSteps > 0 && DecodeTime > TimeSpan.Zero ? DecodeSteps / DecodeTime.TotalSeconds : 0;
}
