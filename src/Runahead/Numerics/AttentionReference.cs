namespace Runahead.Numerics;

/// <summary>
/// Attention of c queries at global positions [queryStart, queryStart + c) against keys at positions [0, totalKeys):
/// query j sees key k iff k &lt;= queryStart + j. KV-Runahead and single prefill pass queryStart = totalKeys - c
/// (the lower-right aligned causal mask); TSP passes its chunk start and all C keys.
/// Layouts: q [c, heads*headDim]; k, v [totalKeys, kvHeads*headDim]; output [c, heads*headDim].
/// GQA: head h reads KV head h / (heads / kvHeads).
/// The plain two-pass definition (scores, softmax, weighted sum per query and head) the tiled kernel is tested against.
/// </summary>
public static class AttentionReference
{
    public static void Forward(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, Span<float> output,
        int queries, int queryStart, int totalKeys, int heads, int kvHeads, int headDim, ComputePool pool, AttentionMask mask = AttentionMask.PrefixCausal)
    {
        int group = heads / kvHeads;
        int qStride = heads * headDim, kvStride = kvHeads * headDim;
        if (queryStart < 0 || queryStart + queries > totalKeys) throw new ArgumentOutOfRangeException(nameof(queryStart));
        float scale = 1f / MathF.Sqrt(headDim);
        var scores = new float[totalKeys];
        for (int j = 0; j < queries; j++)
        {
            int visible = queryStart + j + 1;
            for (int h = 0; h < heads; h++)
            {
                int kh = h / group;
                var qr = q.Slice(j * qStride + h * headDim, headDim);
                int computed = mask == AttentionMask.DenseThenMask ? totalKeys : visible;
                for (int t = 0; t < computed; t++)
                {
                    var kr = k.Slice(t * kvStride + kh * headDim, headDim);
                    float s = 0;
                    for (int d = 0; d < headDim; d++) s += qr[d] * kr[d];
                    scores[t] = t < visible ? s * scale : float.NegativeInfinity;
                }
                OpsReference.Softmax(scores.AsSpan(0, visible));
                var o = output.Slice(j * qStride + h * headDim, headDim);
                o.Clear();
                for (int t = 0; t < visible; t++)
                {
                    var vr = v.Slice(t * kvStride + kh * headDim, headDim);
                    float p = scores[t];
                    for (int d = 0; d < headDim; d++) o[d] += p * vr[d];
                }
            }
        }
    }
}
