namespace Runahead.Diagnostics;

/// <summary>What a rank spends a stretch of prefill on (KV-RUNAHEAD.md section 7).</summary>
public enum SpanKind : byte
{
    /// <summary>Embedding, QKV, attention, MLP, LM head: the rank's own arithmetic.</summary>
    Compute,

    /// <summary>Blocked on K,V from another rank (KVR receive, TSP all-gather).</summary>
    WaitKv,

    /// <summary>Handing K,V to the transport (until the buffer may be reused).</summary>
    Send,

    /// <summary>Nothing to do: before the first or after the last piece of work of the prefill.</summary>
    Idle,

    /// <summary>
    /// A message being handed to the transport by a rank's background sender while the rank computes on: a separate
    /// lane, overlapping the spans above, so it never counts in a rank's compute / wait / send / idle split.
    /// </summary>
    Transfer,
}
