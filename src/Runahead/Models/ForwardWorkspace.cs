namespace Runahead.Models;

/// <summary>
/// Scratch buffers for chunks of up to <see cref="MaxTokens"/> tokens, allocated once and reused by every layer and
/// step, so the forward pass allocates nothing per token. Not thread-safe: one workspace per concurrent caller.
/// Buffers whose lives within a layer do not overlap share storage (it is the largest part of the memory a prefill
/// needs besides weights and KV cache, so it is kept to four arrays of [MaxTokens, width]):
/// <list type="bullet">
/// <item>"wide A": the fused QKV output (in ComputeQkv), the attention output (until the output projection has read
/// it) and the MLP gate;</item>
/// <item>"wide B": <see cref="Q"/> (from ComputeQkv until attention has read it) and the MLP up projection;</item>
/// </list>
/// The attention projection and the MLP output need no buffers: the products add them to the hidden rows directly.
/// So <see cref="Q"/> is only valid until <see cref="DecoderLayer.Finish"/> runs: callers that keep queries across
/// layers or chunks pass their own buffer.
/// </summary>
public sealed class ForwardWorkspace
{
    public int MaxTokens { get; }

    /// <summary>Hidden states of the chunk <see cref="Model.Forward"/> is running [MaxTokens, Dim].</summary>
    internal float[] Hidden { get; }
    /// <summary>Normed layer input [MaxTokens, Dim] (also the final norm before the LM head).</summary>
    internal float[] Normed { get; }
    /// <summary>Fused QKV projection output [MaxTokens, QDim + 2 KvDim] (Falcon); empty otherwise. Shares wide A.</summary>
    internal float[] Qkv { get; }
    /// <summary>Queries [MaxTokens, QDim] for <see cref="Model.Forward"/>; shares wide B with <see cref="Up"/>.</summary>
    internal float[] Q { get; }
    /// <summary>Attention output [MaxTokens, QDim]; shares wide A.</summary>
    internal float[] Attention { get; }
    /// <summary>MLP gate [MaxTokens, FfnDim] (gated MLPs); empty otherwise. Shares wide A.</summary>
    internal float[] Gate { get; }
    /// <summary>MLP up projection [MaxTokens, FfnDim]; shares wide B.</summary>
    internal float[] Up { get; }

    internal ForwardWorkspace(ModelConfig config, int maxTokens, bool fusedQkv, bool gated)
    {
        if (maxTokens < 1) throw new ArgumentOutOfRangeException(nameof(maxTokens), "a workspace needs room for at least one token");
        int qkvWidth = config.QDim + 2 * config.KvDim;
        int wideA = Math.Max(config.QDim, Math.Max(fusedQkv ? qkvWidth : 0, gated ? config.FfnDim : 0));
        int wideB = Math.Max(config.QDim, config.FfnDim);
        long widest = Math.Max(Math.Max(wideA, wideB), config.Dim);
        if (widest * maxTokens > Array.MaxLength)
            throw new RunaheadException($"a workspace for {maxTokens} tokens is too large; use smaller chunks");
        MaxTokens = maxTokens;
        Hidden = new float[maxTokens * config.Dim];
        Normed = new float[maxTokens * config.Dim];
        var a = new float[maxTokens * wideA];
        var b = new float[maxTokens * wideB];
        Qkv = fusedQkv ? a : [];
        Attention = a;
        Gate = gated ? a : [];
        Q = b;
        Up = b;
    }

    /// <summary>Bytes held by the buffers (shared storage counted once).</summary>
    public long Bytes => sizeof(float) * ((long)Hidden.Length + Normed.Length + Attention.Length + Up.Length);

    internal void CheckTokens(int tokens)
    {
        if (tokens < 1 || tokens > MaxTokens)
            throw new ArgumentOutOfRangeException(nameof(tokens), $"chunk of {tokens} tokens does not fit a workspace of {MaxTokens}");
    }
}
