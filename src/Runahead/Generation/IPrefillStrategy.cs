namespace Runahead.Generation;

/// <summary>
/// Turns a prompt into the logits of the first generated token and a KV cache to continue decoding with. Single
/// process, tensor/sequence parallel (TSP) and KV-Runahead prefill are interchangeable behind this interface.
/// </summary>
public interface IPrefillStrategy
{
    Task<PrefillResult> PrefillAsync(ReadOnlyMemory<int> promptIds, CancellationToken ct);
}
