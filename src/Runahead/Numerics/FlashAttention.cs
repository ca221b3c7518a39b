using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Runahead.Numerics;

/// <summary>
/// Tiled attention with an online softmax. One work item is (a block of queries) x (one KV head): its rows are all
/// query heads of the KV group for those queries, so every K/V tile is read once for the whole group (GQA/MQA
/// without copying K/V per head). Scores are kept transposed (S^T [key][row]) so that the row-wise max, exp and sum
/// of the online softmax are plain vertical vector ops, and both products are broadcast-FMA loops:
/// S^T[t, rows] += K[t, d] * Q^T[d, rows] reads K rows in place; O[row, :] += P^T[t, row] * V[t, :] reads V rows in place.
/// </summary>
internal sealed unsafe class FlashAttention : IParallelWork
{
    // 32 keys x 64 rows: Q^T, S^T and O (8 + 8 + 16 KiB at head size 64) stay in L1 next to the K/V rows being read.
    // Measured on Zen 5 at 1024 tokens: 32x64 is 10 % faster than 64x64; 32 rows loses 18 % (K/V re-read per item).
    private const int KeyTile = 32;
    private const int TargetRows = 64;
    private const int V = 16; // floats per Vector512

    [ThreadStatic] private static FlashAttention? t_work;
    [ThreadStatic] private static Scratch? t_scratch;

    private float* _q, _k, _v, _out;
    private int _queries, _queryStart, _totalKeys, _heads, _kvHeads, _headDim, _group, _blockQueries, _queryBlocks;
    private float _scale;
    private AttentionMask _mask;

    public static void Run(float* q, float* k, float* v, float* output, int queries, int queryStart, int totalKeys,
        int heads, int kvHeads, int headDim, ComputePool pool, AttentionMask mask)
    {
        var w = t_work ??= new FlashAttention();
        w._q = q; w._k = k; w._v = v; w._out = output;
        w._queries = queries; w._queryStart = queryStart; w._totalKeys = totalKeys;
        w._heads = heads; w._kvHeads = kvHeads; w._headDim = headDim; w._mask = mask;
        w._group = heads / kvHeads;
        w._blockQueries = Math.Max(1, TargetRows / w._group);
        w._queryBlocks = (queries + w._blockQueries - 1) / w._blockQueries;
        w._scale = 1f / MathF.Sqrt(headDim);
        try
        {
            pool.For(w._queryBlocks * kvHeads, w);
        }
        finally
        {
            w._q = w._k = w._v = w._out = null;
        }
    }

    // Fully optimised from the first call: a prompt's first prefill is the one that is timed (TTFT).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Run(int item, int worker)
    {
        // Later query blocks see more keys: hand them out first so the tail of the job is short items.
        int queryBlock = _queryBlocks - 1 - item / _kvHeads;
        int kvHead = item % _kvHeads;
        int j0 = queryBlock * _blockQueries;
        int jn = Math.Min(_blockQueries, _queries - j0);
        int rows = jn * _group;
        int rowsPadded = (rows + V - 1) / V * V;
        int d = _headDim, dPadded = (d + V - 1) / V * V;
        var s = t_scratch ??= new Scratch();
        s.Ensure(rowsPadded, d, dPadded);
        int kvStride = _kvHeads * d;

        // Q^T [d][rowsPadded], pre-scaled, by 16x16 transposes; padding rows are zero (they see every key with score 0
        // and are dropped).
        AttentionRows.Lay(s.Limit, s.RowOffset, rows, rowsPadded, _queryStart, j0, kvHead, _group, _heads, d);
        int minLimit = _queryStart + j0;
        float* qt = s.Qt;
        var tile = stackalloc Vector512<uint>[V];
        float* partial = stackalloc float[V];
        var scale = Vector512.Create(_scale);
        for (int r0 = 0; r0 < rowsPadded; r0 += V)
            for (int i0 = 0; i0 < d; i0 += V)
            {
                int columns = Math.Min(V, d - i0);
                for (int k = 0; k < V; k++)
                {
                    int r = r0 + k;
                    if (r >= rows)
                    {
                        tile[k] = Vector512<uint>.Zero;
                        continue;
                    }
                    float* src = _q + s.RowOffset[r] + i0;
                    if (columns < V)
                    {
                        new Span<float>(partial, V).Clear();
                        new Span<float>(src, columns).CopyTo(new Span<float>(partial, V));
                        src = partial;
                    }
                    tile[k] = (Vector512.Load(src) * scale).AsUInt32();
                }
                TileTranspose.Transpose(tile, (uint*)qt + i0 * rowsPadded + r0, rowsPadded, columns);
            }
        new Span<float>(s.O, rowsPadded * dPadded).Clear();
        new Span<float>(s.M, rowsPadded).Fill(float.NegativeInfinity);
        new Span<float>(s.L, rowsPadded).Clear();

        int keyEnd = _mask == AttentionMask.PrefixCausal ? _queryStart + j0 + jn : _totalKeys;
        float* kBase = _k + kvHead * d, vBase = _v + kvHead * d;
        bool padV = d != dPadded;
        for (int t0 = 0; t0 < keyEnd; t0 += KeyTile)
        {
            int keys = Math.Min(KeyTile, keyEnd - t0);
            int keysPadded = (keys + 3) & ~3;
            for (int t = 0; t < keysPadded; t++)
            {
                s.KeyRows[t] = t < keys ? kBase + (long)(t0 + t) * kvStride : s.Zero;
                if (!padV) s.ValueRows[t] = t < keys ? vBase + (long)(t0 + t) * kvStride : s.Zero;
                else
                {
                    float* dst = s.PaddedV + t * dPadded;
                    new Span<float>(dst, dPadded).Clear();
                    if (t < keys) new Span<float>(vBase + (long)(t0 + t) * kvStride, d).CopyTo(new Span<float>(dst, d));
                    s.ValueRows[t] = dst;
                }
            }
            bool masked = t0 + keysPadded - 1 > minLimit;
            if (!masked) new Span<float>(s.TileMax, rowsPadded).Fill(float.NegativeInfinity);
            Scores(s, keysPadded, rowsPadded, d, trackMax: !masked);
            Softmax(s, t0, keys, keysPadded, rowsPadded, masked);
            AccumulateValues(s, keysPadded, rowsPadded, dPadded);
        }

        for (int r = 0; r < rows; r++) AttentionRows.WriteScaled(_out + s.RowOffset[r], s.O + r * dPadded, 1f / s.L[r], d);
    }

    /// <summary>
    /// S^T[t][r] = sum_d K[t, d] Q^T[d][r] for 4 keys x 4 row vectors at a time. With trackMax (unmasked tiles) the
    /// row maxima are folded into TileMax while the results are still in registers, saving the softmax a pass.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Scores(Scratch s, int keys, int rowsPadded, int d, bool trackMax)
    {
        float* tileMax = s.TileMax;
        float* qt = s.Qt, st = s.St;
        int rowVectors = rowsPadded / V;
        for (int t = 0; t < keys; t += 4)
        {
            float* k0 = s.KeyRows[t], k1 = s.KeyRows[t + 1], k2 = s.KeyRows[t + 2], k3 = s.KeyRows[t + 3];
            int rv = 0;
            for (; rv + 4 <= rowVectors; rv += 4)
            {
                Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
                Vector512<float> b0 = default, b1 = default, b2 = default, b3 = default;
                Vector512<float> c0 = default, c1 = default, c2 = default, c3 = default;
                Vector512<float> e0 = default, e1 = default, e2 = default, e3 = default;
                float* qp = qt + rv * V;
                for (int i = 0; i < d; i++, qp += rowsPadded)
                {
                    var q0 = Vector512.Load(qp); var q1 = Vector512.Load(qp + 16);
                    var q2 = Vector512.Load(qp + 32); var q3 = Vector512.Load(qp + 48);
                    var x = Vector512.Create(k0[i]);
                    a0 = Vector512.FusedMultiplyAdd(x, q0, a0); a1 = Vector512.FusedMultiplyAdd(x, q1, a1);
                    a2 = Vector512.FusedMultiplyAdd(x, q2, a2); a3 = Vector512.FusedMultiplyAdd(x, q3, a3);
                    x = Vector512.Create(k1[i]);
                    b0 = Vector512.FusedMultiplyAdd(x, q0, b0); b1 = Vector512.FusedMultiplyAdd(x, q1, b1);
                    b2 = Vector512.FusedMultiplyAdd(x, q2, b2); b3 = Vector512.FusedMultiplyAdd(x, q3, b3);
                    x = Vector512.Create(k2[i]);
                    c0 = Vector512.FusedMultiplyAdd(x, q0, c0); c1 = Vector512.FusedMultiplyAdd(x, q1, c1);
                    c2 = Vector512.FusedMultiplyAdd(x, q2, c2); c3 = Vector512.FusedMultiplyAdd(x, q3, c3);
                    x = Vector512.Create(k3[i]);
                    e0 = Vector512.FusedMultiplyAdd(x, q0, e0); e1 = Vector512.FusedMultiplyAdd(x, q1, e1);
                    e2 = Vector512.FusedMultiplyAdd(x, q2, e2); e3 = Vector512.FusedMultiplyAdd(x, q3, e3);
                }
                float* o = st + t * rowsPadded + rv * V;
                a0.Store(o); a1.Store(o + 16); a2.Store(o + 32); a3.Store(o + 48); o += rowsPadded;
                b0.Store(o); b1.Store(o + 16); b2.Store(o + 32); b3.Store(o + 48); o += rowsPadded;
                c0.Store(o); c1.Store(o + 16); c2.Store(o + 32); c3.Store(o + 48); o += rowsPadded;
                e0.Store(o); e1.Store(o + 16); e2.Store(o + 32); e3.Store(o + 48);
                if (trackMax)
                {
                    float* mx = tileMax + rv * V;
                    Vector512.Max(Vector512.Load(mx), Vector512.Max(Vector512.Max(a0, b0), Vector512.Max(c0, e0))).Store(mx);
                    Vector512.Max(Vector512.Load(mx + 16), Vector512.Max(Vector512.Max(a1, b1), Vector512.Max(c1, e1))).Store(mx + 16);
                    Vector512.Max(Vector512.Load(mx + 32), Vector512.Max(Vector512.Max(a2, b2), Vector512.Max(c2, e2))).Store(mx + 32);
                    Vector512.Max(Vector512.Load(mx + 48), Vector512.Max(Vector512.Max(a3, b3), Vector512.Max(c3, e3))).Store(mx + 48);
                }
            }
            for (; rv < rowVectors; rv++)
            {
                Vector512<float> a = default, b = default, c = default, e = default;
                float* qp = qt + rv * V;
                for (int i = 0; i < d; i++, qp += rowsPadded)
                {
                    var q0 = Vector512.Load(qp);
                    a = Vector512.FusedMultiplyAdd(Vector512.Create(k0[i]), q0, a);
                    b = Vector512.FusedMultiplyAdd(Vector512.Create(k1[i]), q0, b);
                    c = Vector512.FusedMultiplyAdd(Vector512.Create(k2[i]), q0, c);
                    e = Vector512.FusedMultiplyAdd(Vector512.Create(k3[i]), q0, e);
                }
                float* o = st + t * rowsPadded + rv * V;
                a.Store(o); b.Store(o + rowsPadded); c.Store(o + 2 * rowsPadded); e.Store(o + 3 * rowsPadded);
                if (trackMax)
                {
                    float* mx = tileMax + rv * V;
                    Vector512.Max(Vector512.Load(mx), Vector512.Max(Vector512.Max(a, b), Vector512.Max(c, e))).Store(mx);
                }
            }
        }
    }

    /// <summary>
    /// Masks, then folds the tile into each row's running max M and sum L; leaves P^T = exp(S^T - M) in place and
    /// the factor exp(Mold - Mnew) by which the running output must shrink in <see cref="Scratch.Alpha"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Softmax(Scratch s, int t0, int keys, int keysPadded, int rowsPadded, bool masked)
    {
        float* st = s.St;
        var negInf = Vector512.Create(float.NegativeInfinity);
        for (int rv = 0; rv < rowsPadded; rv += V)
        {
            var mOld = Vector512.Load(s.M + rv);
            var max = negInf;
            if (masked)
            {
                var limit = Vector512.Load(s.Limit + rv);
                for (int t = 0; t < keysPadded; t++)
                {
                    float* p = st + t * rowsPadded + rv;
                    var visible = Vector512.LessThanOrEqual(Vector512.Create(t < keys ? t0 + t : int.MaxValue), limit).AsSingle();
                    var x = Vector512.ConditionalSelect(visible, Vector512.Load(p), negInf);
                    x.Store(p);
                    max = Vector512.Max(max, x);
                }
            }
            else
            {
                max = Vector512.Load(s.TileMax + rv);
            }
            var mNew = Vector512.Max(mOld, max);
            var sum = Vector512<float>.Zero;
            for (int t = 0; t < keysPadded; t++)
            {
                float* p = st + t * rowsPadded + rv;
                var e = VectorMath.Exp(Vector512.Load(p) - mNew);
                e.Store(p);
                sum += e;
            }
            var alpha = VectorMath.Exp(mOld - mNew);
            (Vector512.FusedMultiplyAdd(Vector512.Load(s.L + rv), alpha, sum)).Store(s.L + rv);
            mNew.Store(s.M + rv);
            alpha.Store(s.Alpha + rv);
        }
    }

    /// <summary>O[r, :] = O[r, :] * alpha[r] + sum_t P^T[t][r] V[t, :], 4 rows x 4 vectors of the head at a time.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AccumulateValues(Scratch s, int keys, int rowsPadded, int dPadded)
    {
        float* st = s.St;
        float** vr = s.ValueRows;
        for (int r = 0; r < rowsPadded; r += 4)
        {
            float* o0 = s.O + r * dPadded, o1 = o0 + dPadded, o2 = o1 + dPadded, o3 = o2 + dPadded;
            var al0 = Vector512.Create(s.Alpha[r]); var al1 = Vector512.Create(s.Alpha[r + 1]);
            var al2 = Vector512.Create(s.Alpha[r + 2]); var al3 = Vector512.Create(s.Alpha[r + 3]);
            int dv = 0;
            for (; dv + 4 * V <= dPadded; dv += 4 * V)
            {
                var a0 = Vector512.Load(o0 + dv) * al0; var a1 = Vector512.Load(o0 + dv + 16) * al0;
                var a2 = Vector512.Load(o0 + dv + 32) * al0; var a3 = Vector512.Load(o0 + dv + 48) * al0;
                var b0 = Vector512.Load(o1 + dv) * al1; var b1 = Vector512.Load(o1 + dv + 16) * al1;
                var b2 = Vector512.Load(o1 + dv + 32) * al1; var b3 = Vector512.Load(o1 + dv + 48) * al1;
                var c0 = Vector512.Load(o2 + dv) * al2; var c1 = Vector512.Load(o2 + dv + 16) * al2;
                var c2 = Vector512.Load(o2 + dv + 32) * al2; var c3 = Vector512.Load(o2 + dv + 48) * al2;
                var e0 = Vector512.Load(o3 + dv) * al3; var e1 = Vector512.Load(o3 + dv + 16) * al3;
                var e2 = Vector512.Load(o3 + dv + 32) * al3; var e3 = Vector512.Load(o3 + dv + 48) * al3;
                float* p = st + r;
                for (int t = 0; t < keys; t++, p += rowsPadded)
                {
                    float* vrow = vr[t] + dv;
                    var v0 = Vector512.Load(vrow); var v1 = Vector512.Load(vrow + 16);
                    var v2 = Vector512.Load(vrow + 32); var v3 = Vector512.Load(vrow + 48);
                    var x = Vector512.Create(p[0]);
                    a0 = Vector512.FusedMultiplyAdd(x, v0, a0); a1 = Vector512.FusedMultiplyAdd(x, v1, a1);
                    a2 = Vector512.FusedMultiplyAdd(x, v2, a2); a3 = Vector512.FusedMultiplyAdd(x, v3, a3);
                    x = Vector512.Create(p[1]);
                    b0 = Vector512.FusedMultiplyAdd(x, v0, b0); b1 = Vector512.FusedMultiplyAdd(x, v1, b1);
                    b2 = Vector512.FusedMultiplyAdd(x, v2, b2); b3 = Vector512.FusedMultiplyAdd(x, v3, b3);
                    x = Vector512.Create(p[2]);
                    c0 = Vector512.FusedMultiplyAdd(x, v0, c0); c1 = Vector512.FusedMultiplyAdd(x, v1, c1);
                    c2 = Vector512.FusedMultiplyAdd(x, v2, c2); c3 = Vector512.FusedMultiplyAdd(x, v3, c3);
                    x = Vector512.Create(p[3]);
                    e0 = Vector512.FusedMultiplyAdd(x, v0, e0); e1 = Vector512.FusedMultiplyAdd(x, v1, e1);
                    e2 = Vector512.FusedMultiplyAdd(x, v2, e2); e3 = Vector512.FusedMultiplyAdd(x, v3, e3);
                }
                a0.Store(o0 + dv); a1.Store(o0 + dv + 16); a2.Store(o0 + dv + 32); a3.Store(o0 + dv + 48);
                b0.Store(o1 + dv); b1.Store(o1 + dv + 16); b2.Store(o1 + dv + 32); b3.Store(o1 + dv + 48);
                c0.Store(o2 + dv); c1.Store(o2 + dv + 16); c2.Store(o2 + dv + 32); c3.Store(o2 + dv + 48);
                e0.Store(o3 + dv); e1.Store(o3 + dv + 16); e2.Store(o3 + dv + 32); e3.Store(o3 + dv + 48);
            }
            for (; dv < dPadded; dv += V)
            {
                var a = Vector512.Load(o0 + dv) * al0; var b = Vector512.Load(o1 + dv) * al1;
                var c = Vector512.Load(o2 + dv) * al2; var e = Vector512.Load(o3 + dv) * al3;
                float* p = st + r;
                for (int t = 0; t < keys; t++, p += rowsPadded)
                {
                    var v0 = Vector512.Load(vr[t] + dv);
                    a = Vector512.FusedMultiplyAdd(Vector512.Create(p[0]), v0, a);
                    b = Vector512.FusedMultiplyAdd(Vector512.Create(p[1]), v0, b);
                    c = Vector512.FusedMultiplyAdd(Vector512.Create(p[2]), v0, c);
                    e = Vector512.FusedMultiplyAdd(Vector512.Create(p[3]), v0, e);
                }
                a.Store(o0 + dv); b.Store(o1 + dv); c.Store(o2 + dv); e.Store(o3 + dv);
            }
        }
    }

    /// <summary>
    /// Per-thread buffers, grown on demand and kept (pool threads are persistent), in one <see cref="CacheLineBlock"/>
    /// per thread: the running max / sum / key-row pointers are written at every key tile.
    /// </summary>
    private sealed class Scratch
    {
        private byte[] _block = [];
        private int _rowsPadded = -1, _d = -1, _dPadded = -1;

        public float* Qt, St, O, M, L, Alpha, TileMax, PaddedV, Zero;
        public int* Limit;
        public long* RowOffset; // of a row's query and head in q and the output
        public float** KeyRows, ValueRows;

        public void Ensure(int rowsPadded, int d, int dPadded)
        {
            if (rowsPadded <= _rowsPadded && d <= _d && dPadded <= _dPadded) return;
            _rowsPadded = Math.Max(rowsPadded, _rowsPadded);
            _d = Math.Max(d, _d);
            _dPadded = Math.Max(dPadded, _dPadded);
            int r = _rowsPadded, dp = _dPadded;
            // Float and pointer parts in order; Zero must stay zero (padding rows read it as a key/value row).
            long[] bytes =
            [
                4L * _d * r, 4L * KeyTile * r, 4L * r * dp, 4L * r, 4L * r, 4L * r, 4L * r, 4L * KeyTile * dp, 4L * dp,
                4L * r, (long)sizeof(nint) * KeyTile, (long)sizeof(nint) * KeyTile, 8L * r,
            ];
            var parts = CacheLineBlock.Carve(bytes, out _block);
            Qt = (float*)parts[0]; St = (float*)parts[1]; O = (float*)parts[2]; M = (float*)parts[3]; L = (float*)parts[4];
            Alpha = (float*)parts[5]; TileMax = (float*)parts[6]; PaddedV = (float*)parts[7]; Zero = (float*)parts[8];
            Limit = (int*)parts[9]; KeyRows = (float**)parts[10]; ValueRows = (float**)parts[11];
            RowOffset = (long*)parts[12];
        }
    }
}
