using Runahead.Models;

namespace Runahead.Generation;

/// <summary>What a prefill hands to decoding.</summary>
/// <param name="Logits">Logits of the token after the prompt [VocabSize].</param>
/// <param name="Cache">Keys and values of every prompt token (Length = prompt length), owned by the caller now.</param>
public sealed record PrefillResult(float[] Logits, KvCache Cache)
{
    /// <summary>Per-rank timings (empty for single-process prefill).</summary>
    public IReadOnlyList<RankTiming> RankTimings { get; init; } = [];

    /// <summary>Strategy-specific detail (e.g. a timeline); opaque to generation.</summary>
    public object? Details { get; init; }
}

/// <summary>How long one rank of a parallel prefill spent computing, communicating and in total.</summary>
public sealed record RankTiming(int Rank, TimeSpan Compute, TimeSpan Communication, TimeSpan Total);
