namespace Runahead.Prefill;

/// <summary>The prefill strategies of <c>--strategy</c>.</summary>
public enum PrefillStrategyKind
{
    /// <summary>One rank, the whole prompt (no communication).</summary>
    Single,

    /// <summary>TSP as the paper's baseline: all-gather of K,V per layer, the full chunk x C score block, then mask.</summary>
    Tsp,

    /// <summary>TSP with attention that skips keys after the chunk (keys [0, chunk end) only).</summary>
    TspCausal,

    /// <summary>KV-Runahead: the per-layer wavefront with point-to-point K,V hand-off.</summary>
    Kvr,
}

public static class PrefillStrategyNames
{
    public const string Accepted = "single, tsp, tsp-causal, kvr";

    public static PrefillStrategyKind Parse(string text, string option = "--strategy") => text.Trim().ToLowerInvariant() switch
    {
        "single" => PrefillStrategyKind.Single,
        "tsp" or "tsp-dense" => PrefillStrategyKind.Tsp,
        "tsp-causal" => PrefillStrategyKind.TspCausal,
        "kvr" or "kv-runahead" => PrefillStrategyKind.Kvr,
        _ => throw new RunaheadException($"{option}: unknown strategy '{text}'; expected one of {Accepted}"),
    };

    public static string Name(this PrefillStrategyKind kind) => kind switch
    {
        PrefillStrategyKind.Single => "single",
        PrefillStrategyKind.Tsp => "tsp",
        PrefillStrategyKind.TspCausal => "tsp-causal",
        _ => "kvr",
    };
}
