namespace Runahead.Planning;

public enum PrefillStrategy
{
    /// <summary>One rank runs the whole prompt.</summary>
    Single,

    /// <summary>The paper's TSP: ring all-gather of K,V each layer, then the dense c x C score block, masked.</summary>
    Tsp,

    /// <summary>TSP with causal skipping: rank i computes attention only over keys [0, S_i).</summary>
    TspCausal,

    /// <summary>KV-Runahead: the wavefront of K,V hand-offs rank i -> i+1.</summary>
    Kvr,
}
