using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Runahead.Numerics;

/// <summary>
/// The row bookkeeping both flash attentions share. An item's rows are its queries times the query heads of one KV
/// group: row r is query j0 + r / group, head kvHead * group + r % group.
/// </summary>
internal static unsafe class AttentionRows
{
    /// <summary>
    /// For rows [0, rows): the last key position each may see (<paramref name="limit"/>) and the offset of its query and
    /// head in q and in the output (<paramref name="rowOffset"/>); padding rows up to <paramref name="rowsPadded"/> see
    /// every key. Counted, not divided: the group size is not a constant.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Lay(int* limit, long* rowOffset, int rows, int rowsPadded, int queryStart, int j0, int kvHead, int group, int heads, int headDim)
    {
        long qStride = (long)heads * headDim;
        for (int r = 0, j = 0, g = 0; r < rowsPadded; r++)
        {
            if (r >= rows)
            {
                limit[r] = int.MaxValue;
                continue;
            }
            limit[r] = queryStart + j0 + j;
            rowOffset[r] = (j0 + j) * qStride + (long)(kvHead * group + g) * headDim;
            if (++g == group) { g = 0; j++; }
        }
    }

    /// <summary>dst[0, d) = o[0, d) * inv: a row's accumulated output divided by its softmax sum.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void WriteScaled(float* dst, float* o, float inv, int d)
    {
        var v = Vector512.Create(inv);
        int i = 0;
        for (; i + Vector512<float>.Count <= d; i += Vector512<float>.Count) (Vector512.Load(o + i) * v).Store(dst + i);
        for (; i < d; i++) dst[i] = o[i] * inv;
    }
}
