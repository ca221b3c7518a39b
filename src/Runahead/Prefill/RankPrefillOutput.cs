using Runahead.Diagnostics;
using Runahead.Models;

namespace Runahead.Prefill;

/// <summary>
/// What one rank ends a parallel prefill with. Only the last rank (which holds the last prompt position) has
/// <see cref="Logits"/> (for that position) and the <see cref="Cache"/> of the whole prompt to decode with.
/// </summary>
public sealed class RankPrefillOutput
{
    public RankPrefillOutput(RankRecorder recorder, float[]? logits, KvCache? cache)
    {
        Recorder = recorder;
        Logits = logits;
        Cache = cache;
    }

    public RankRecorder Recorder { get; }
    public float[]? Logits { get; }
    public KvCache? Cache { get; }
}
