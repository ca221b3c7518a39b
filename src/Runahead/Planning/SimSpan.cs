namespace Runahead.Planning;

public enum SimSpanKind
{
    /// <summary>Norm and Q,K,V projections.</summary>
    Qkv,

    /// <summary>Attention, output projection, MLP.</summary>
    Rest,

    /// <summary>Waiting for K,V (KVR: from the previous rank; TSP: the all-gather and its barrier).</summary>
    Wait,

    /// <summary>A K,V message occupying the rank's outgoing link (asynchronous: overlaps compute).</summary>
    Send,

    /// <summary>Final norm and LM head of the last position.</summary>
    Head,

    /// <summary>Done with its layers, waiting for the first token.</summary>
    Idle,
}

/// <summary>One span of one rank's timeline, in seconds from the start of prefill.</summary>
public readonly record struct SimSpan(int Rank, int Layer, SimSpanKind Kind, double Start, double End)
{
    public double Duration => End - Start;
}
