using Runahead.Numerics;

namespace Runahead.Models;

/// <summary>
/// One transformer block, split at the point where keys and values of other tokens are needed, so that the
/// parallel prefill strategies can move K,V between the two halves:
/// <see cref="ComputeQkv"/> (norm, projections, RoPE) and <see cref="Finish"/> (attention against any K,V prefix,
/// output projection, MLP, residuals). Llama: pre-norm attention then pre-norm SwiGLU MLP. Falcon: attention and a
/// GELU MLP in parallel from the same residual stream (one shared LayerNorm, or two in the new decoder architecture).
/// A layer holds only weights: all scratch is in the <see cref="ForwardWorkspace"/>, so concurrent calls with
/// separate workspaces are safe (the shared compute pool runs a concurrent caller's work inline on its thread).
/// </summary>
public sealed class DecoderLayer
{
    private readonly ModelConfig _config;
    private readonly ComputePool _pool;
    private readonly NormWeights _attnNorm;
    private readonly NormWeights? _mlpNorm;     // null: the MLP reads the attention norm's output (Falcon-7B parallel)
    private readonly Linear? _qkv;             // fused rows: Q heads, K heads, V heads
    private readonly Linear? _q, _k, _v;
    private readonly Linear _output;
    private readonly Linear? _gate;            // null: plain GELU MLP (Falcon)
    private readonly Linear _up;
    private readonly Linear _down;
    // Separate Q/K/V (gate/up) weights run as one product group when their panels allow (see Linear.ForwardGroup).
    private readonly bool _groupQkv, _groupGateUp;
    // A fused Q/K/V weight whose parts start on panel boundaries writes q, k and v directly (no copying apart).
    private readonly bool _splitQkv;

    public int Index { get; }

    /// <summary>
    /// BF16 when the layer's projections run on the vdpbf16ps kernel (their activations are rounded to bf16 anyway, and
    /// the kernel is there): attention's products then run on it too. F32 otherwise. Tests switch it to compare.
    /// </summary>
    public AttentionPrecision AttentionPrecision { get; internal set; }

    internal bool FusedQkv => _qkv != null;
    internal bool Gated => _gate != null;
    internal bool GroupedQkv => _groupQkv;
    internal bool SplitQkv => _splitQkv;
    internal bool GroupedGateUp => _groupGateUp;

    private DecoderLayer(int index, ModelConfig config, ComputePool pool, NormWeights attnNorm, NormWeights? mlpNorm,
        Linear? qkv, Linear? q, Linear? k, Linear? v, Linear output, Linear? gate, Linear up, Linear down, bool groupProjections)
    {
        Index = index;
        _config = config;
        _pool = pool;
        _attnNorm = attnNorm;
        _mlpNorm = mlpNorm;
        _qkv = qkv;
        _q = q; _k = k; _v = v;
        _output = output;
        _gate = gate;
        _up = up;
        _down = down;
        AttentionPrecision = (qkv ?? q)!.Weight.PanelType == PanelType.BF16Pairs ? AttentionPrecision.Bf16 : AttentionPrecision.F32;
        _splitQkv = groupProjections && qkv != null && qkv.CanSplit(config.QDim, config.KvDim);
        _groupQkv = groupProjections && q != null && Linear.CanGroup(q, k!, v!);
        _groupGateUp = groupProjections && gate != null && Linear.CanGroup(gate, up);
    }

    internal static DecoderLayer Load(int index, ModelConfig c, WeightReader r, ComputePool pool, bool groupProjections)
    {
        string p = $"blk.{index}.";
        bool falcon = c.Architecture == ModelArchitecture.Falcon;
        NormWeights Norm(string name) => new(r.Vector(p + name + ".weight", c.Dim), r.OptionalVector(p + name + ".bias", c.Dim), falcon, c.NormEps);

        var attnNorm = Norm("attn_norm");
        NormWeights? mlpNorm;
        if (falcon && c.ParallelAttention)
            mlpNorm = r.Has(p + "attn_norm_2.weight") ? Norm("attn_norm_2") : null;
        else
            mlpNorm = Norm("ffn_norm");

        Linear? qkv = null, q = null, k = null, v = null;
        if (r.Has(p + "attn_qkv.weight"))
            qkv = r.Linear(p + "attn_qkv", c.QDim + 2 * c.KvDim, c.Dim);
        else
        {
            q = r.Linear(p + "attn_q", c.QDim, c.Dim);
            k = r.Linear(p + "attn_k", c.KvDim, c.Dim);
            v = r.Linear(p + "attn_v", c.KvDim, c.Dim);
        }
        var output = r.Linear(p + "attn_output", c.Dim, c.QDim);
        Linear? gate = falcon ? null : r.Linear(p + "ffn_gate", c.FfnDim, c.Dim);
        var up = r.Linear(p + "ffn_up", c.FfnDim, c.Dim);
        var down = r.Linear(p + "ffn_down", c.Dim, c.FfnDim);
        return new DecoderLayer(index, c, pool, attnNorm, mlpNorm, qkv, q, k, v, output, gate, up, down, groupProjections);
    }

    /// <summary>The layer's linear weights that exist (fused Q/K/V or separate, gated MLP or not).</summary>
    internal IEnumerable<Linear> Linears
    {
        get
        {
            foreach (var l in new[] { _qkv, _q, _k, _v, _output, _gate, _up, _down })
                if (l != null) yield return l;
        }
    }

    /// <summary>Bytes of weights as prepared for compute (linear layers, norms, biases).</summary>
    internal long WeightBytes
    {
        get
        {
            long b = _attnNorm.Bytes + (_mlpNorm?.Bytes ?? 0);
            foreach (var l in Linears) b += l.Bytes;
            return b;
        }
    }

    /// <summary>
    /// Norm, Q/K/V projections and RoPE for <paramref name="tokens"/> tokens at global positions
    /// [startPos, startPos + tokens). Writes q [tokens, QDim], k and v [tokens, KvDim]; hidden is not modified.
    /// </summary>
    public void ComputeQkv(ReadOnlySpan<float> hidden, int tokens, int startPos, Span<float> q, Span<float> k, Span<float> v, ForwardWorkspace ws)
    {
        ws.CheckTokens(tokens);
        if (startPos < 0) throw new ArgumentOutOfRangeException(nameof(startPos));
        int dim = _config.Dim, qDim = _config.QDim, kvDim = _config.KvDim;
        CheckLength(hidden.Length, tokens * dim, nameof(hidden));
        CheckLength(q.Length, tokens * qDim, nameof(q));
        CheckLength(k.Length, tokens * kvDim, nameof(k));
        CheckLength(v.Length, tokens * kvDim, nameof(v));

        var normed = ws.Normed.AsSpan(0, tokens * dim);
        _attnNorm.Apply(hidden[..(tokens * dim)], normed, tokens, _pool);
        if (_qkv != null && _splitQkv)
        {
            _qkv.ForwardSplit(normed, tokens, qDim, q, kvDim, k, v, _pool);
        }
        else if (_qkv != null)
        {
            int width = qDim + 2 * kvDim;
            var fused = ws.Qkv.AsSpan(0, tokens * width);
            _qkv.Forward(normed, tokens, fused, _pool);
            for (int t = 0; t < tokens; t++)
            {
                var row = fused.Slice(t * width, width);
                row[..qDim].CopyTo(q.Slice(t * qDim, qDim));
                row.Slice(qDim, kvDim).CopyTo(k.Slice(t * kvDim, kvDim));
                row.Slice(qDim + kvDim, kvDim).CopyTo(v.Slice(t * kvDim, kvDim));
            }
        }
        else
        {
            if (_groupQkv) Linear.ForwardGroup(normed, tokens, _q!, q, _k!, k, _v, v, _pool);
            else
            {
                _q!.Forward(normed, tokens, q, _pool);
                _k!.Forward(normed, tokens, k, _pool);
                _v!.Forward(normed, tokens, v, _pool);
            }
        }
        Ops.Rope(q[..(tokens * qDim)], tokens, _config.Heads, _config.HeadDim, startPos, _config.RopeTheta, _config.Rope, _pool);
        Ops.Rope(k[..(tokens * kvDim)], tokens, _config.KvHeads, _config.HeadDim, startPos, _config.RopeTheta, _config.Rope, _pool);
    }

    /// <summary>
    /// Attention of the chunk's queries (global positions [queryStart, queryStart + tokens)) against key/value rows
    /// [0, totalKeys), then the output projection, the MLP and the residuals; updates <paramref name="hidden"/> in
    /// place. <paramref name="hidden"/> must be the same rows that were given to <see cref="ComputeQkv"/>.
    /// </summary>
    public void Finish(Span<float> hidden, int tokens, ReadOnlySpan<float> q, ReadOnlySpan<float> keys, ReadOnlySpan<float> values,
        int queryStart, int totalKeys, ForwardWorkspace ws, AttentionMask mask = AttentionMask.PrefixCausal)
    {
        ws.CheckTokens(tokens);
        int dim = _config.Dim, qDim = _config.QDim, kvDim = _config.KvDim;
        if (queryStart < 0 || totalKeys < queryStart + tokens)
            throw new ArgumentOutOfRangeException(nameof(totalKeys), $"queries at [{queryStart}, {queryStart + tokens}) need at least {queryStart + tokens} keys, got {totalKeys}");
        CheckLength(hidden.Length, tokens * dim, nameof(hidden));
        CheckLength(q.Length, tokens * qDim, nameof(q));
        CheckLength(keys.Length, totalKeys * kvDim, nameof(keys));
        CheckLength(values.Length, totalKeys * kvDim, nameof(values));

        var h = hidden[..(tokens * dim)];
        var normed = ws.Normed.AsSpan(0, tokens * dim);
        bool parallel = _config.Architecture == ModelArchitecture.Falcon && _config.ParallelAttention;
        if (parallel)
        {
            // The MLP branch reads the block's input, so norm it before the attention residual changes it.
            // Recomputed rather than kept from ComputeQkv: callers may run other chunks' ComputeQkv in between.
            (_mlpNorm ?? _attnNorm).Apply(h, normed, tokens, _pool);
        }

        var attn = ws.Attention.AsSpan(0, tokens * qDim);
        Numerics.Attention.Forward(q[..(tokens * qDim)], keys[..(totalKeys * kvDim)], values[..(totalKeys * kvDim)], attn,
            tokens, queryStart, totalKeys, _config.Heads, _config.KvHeads, _config.HeadDim, _pool, mask, AttentionPrecision);
        // Both residual adds happen inside the products (h += attn W_o^T, then h += MLP), which saves a pass over h each.
        _output.ForwardAdd(attn, tokens, h, _pool);
        if (!parallel) _mlpNorm!.Apply(h, normed, tokens, _pool);
        AddMlp(normed, tokens, h, ws);
    }

    /// <summary>hidden += MLP(normed).</summary>
    private void AddMlp(ReadOnlySpan<float> normed, int tokens, Span<float> hidden, ForwardWorkspace ws)
    {
        int ffn = _config.FfnDim;
        var up = ws.Up.AsSpan(0, tokens * ffn);
        if (_gate != null)
        {
            var gate = ws.Gate.AsSpan(0, tokens * ffn);
            if (_groupGateUp) Linear.ForwardGroup(normed, tokens, _gate, gate, _up, up, null, default, _pool);
            else
            {
                _up.Forward(normed, tokens, up, _pool);
                _gate.Forward(normed, tokens, gate, _pool);
            }
            Ops.SwiGlu(gate, up, _pool);
            _down.ForwardAdd(gate, tokens, hidden, _pool);
        }
        else
        {
            _up.Forward(normed, tokens, up, _pool);
            Ops.Gelu(up, _pool);
            _down.ForwardAdd(up, tokens, hidden, _pool);
        }
    }

    private static void CheckLength(int actual, int needed, string name)
    {
        if (actual < needed) throw new ArgumentException($"{name} holds {actual} floats, needs {needed}", name);
    }
}
