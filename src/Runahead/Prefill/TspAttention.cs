namespace Runahead.Prefill;

/// <summary>How a TSP rank attends after the all-gather.</summary>
public enum TspAttention
{
    /// <summary>The paper's baseline: the full chunk x C score block, then the causal mask.</summary>
    DenseThenMask,

    /// <summary>Keys [0, chunk end) only: the causal mask without computing masked scores.</summary>
    CausalSkip,
}
