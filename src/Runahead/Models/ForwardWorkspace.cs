namespace Runahead.Models;

/// <summary>
/// Scratch buffers for chunks of up to <see cref="MaxTokens"/> tokens, allocated once and reused by every layer and
/// step, so the forward pass allocates nothing per token. Not thread-safe: one workspace per concurrent caller.
/// </summary>
public sealed class ForwardWorkspace
{
    public int MaxTokens { get; }

    /// <summary>Hidden states of the chunk <see cref="Model.Forward"/> is running [MaxTokens, Dim].</summary>
    internal float[] Hidden { get; }
    /// <summary>Normed layer input [MaxTokens, Dim] (also the final norm before the LM head).</summary>
    internal float[] Normed { get; }
    /// <summary>Fused QKV projection output [MaxTokens, QDim + 2 KvDim] (Falcon); empty otherwise.</summary>
    internal float[] Qkv { get; }
    internal float[] Q { get; }
    internal float[] Attention { get; }
    /// <summary>Output of the attention projection [MaxTokens, Dim].</summary>
    internal float[] Projection { get; }
    /// <summary>MLP output [MaxTokens, Dim].</summary>
    internal float[] Mlp { get; }
    internal float[] Gate { get; }
    internal float[] Up { get; }

    internal ForwardWorkspace(ModelConfig config, int maxTokens, bool fusedQkv, bool gated)
    {
        if (maxTokens < 1) throw new ArgumentOutOfRangeException(nameof(maxTokens), "a workspace needs room for at least one token");
        long widest = Math.Max(Math.Max(config.QDim + 2L * config.KvDim, config.FfnDim), config.Dim);
        if (widest * maxTokens > Array.MaxLength)
            throw new RunaheadException($"a workspace for {maxTokens} tokens is too large; use smaller chunks");
        MaxTokens = maxTokens;
        Hidden = new float[maxTokens * config.Dim];
        Normed = new float[maxTokens * config.Dim];
        Qkv = fusedQkv ? new float[maxTokens * (config.QDim + 2 * config.KvDim)] : [];
        Q = new float[maxTokens * config.QDim];
        Attention = new float[maxTokens * config.QDim];
        Projection = new float[maxTokens * config.Dim];
        Mlp = new float[maxTokens * config.Dim];
        Gate = gated ? new float[maxTokens * config.FfnDim] : [];
        Up = new float[maxTokens * config.FfnDim];
    }

    /// <summary>Bytes held by the buffers.</summary>
    public long Bytes => sizeof(float) * ((long)Hidden.Length + Normed.Length + Qkv.Length + Q.Length + Attention.Length +
        Projection.Length + Mlp.Length + Gate.Length + Up.Length);

    internal void CheckTokens(int tokens)
    {
        if (tokens < 1 || tokens > MaxTokens)
            throw new ArgumentOutOfRangeException(nameof(tokens), $"chunk of {tokens} tokens does not fit a workspace of {MaxTokens}");
    }
}
