using System.Buffers;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Runahead.Numerics.Jit;

namespace Runahead.Numerics;

/// <summary>
/// Attention with both products on the generated vdpbf16ps kernel (<see cref="Bf16Dot"/>), for models whose weights
/// run on it: C[14, 32] (+)= A B with A = 14 rows of bf16 pairs and B = 32 columns of bf16 pairs.
/// One work item is (a block of queries) x (one KV head), its rows all query heads of the group for those queries
/// (GQA/MQA read each K/V block once per item), cut into panels of 14 rows. Per block of 32 keys and panel:
/// S[14][32] = Q K^T (A = the panel's pre-scaled queries, B = K^T of the block), an online softmax on the rows of S,
/// then O[14][d] += P V (A = P, one 16-dword store per row, B = V of the block, one call per 32 dimensions).
/// K and V are rounded and packed to their B layouts once per call, shared by all query blocks; the F32 K/V rows
/// (the KV cache) are untouched. Key blocks start at key 0 whatever the chunk, so a KV-Runahead rank computes each
/// of its rows exactly as single prefill does.
/// The softmax works in base 2 (log2 e folded into the query scale) and moves a row's reference maximum only when a
/// score exceeds it by more than <see cref="RescaleThreshold"/> (base-2 units: P then stays below 2^8, harmless in F32
/// and exact in bf16's exponent), tested once per panel, so the horizontal maximum and the rescaling of O are rare
/// instead of once per block.
/// </summary>
internal sealed unsafe class FlashAttentionBf16 : IParallelWork
{
    private const int MR = Bf16Dot.MR;
    private const int KeyBlock = 32;                          // one kernel call's columns
    private const int PairGroup = Bf16KernelGenerator.Group;  // k pairs per group of the A layout
    private const int PanelPairs = PairGroup * MR;            // dwords of one group of an A panel
    private const int TargetRows = 84;
    private const int PackBlocks = 8;                          // key blocks per packing item
    private const float RescaleThreshold = 8f;
    private const float Log2E = 1.44269504088896341f;
    private const int V = 16;

    [ThreadStatic] private static FlashAttentionBf16? t_work;
    [ThreadStatic] private static Scratch? t_scratch;

    private float* _q, _k, _v, _out;
    private uint* _kPacked, _vPacked;
    private long _kHeadStride, _vHeadStride, _vChunkStride;
    private int _queries, _queryStart, _totalKeys, _packKeys, _heads, _kvHeads, _headDim, _group, _blockQueries, _queryBlocks;
    private int _dPairs, _dChunks, _keyBlocks, _packSpans;
    private float _scale;
    private bool _packing;
    private AttentionMask _mask;

    /// <summary>The query count of an item: about <see cref="TargetRows"/> rows, as few padding rows in the last panel as possible.</summary>
    internal static int BlockQueries(int group)
    {
        int most = Math.Max(1, TargetRows / group);
        int best = most, bestPadding = int.MaxValue;
        for (int n = most; n >= Math.Max(1, most / 2); n--)
        {
            int rows = n * group, padding = (rows + MR - 1) / MR * MR - rows;
            if (padding * best < bestPadding * n) { best = n; bestPadding = padding; }
        }
        return best;
    }

    /// <summary>Keys packed for a call: those a query can see (PrefixCausal) or all of them (DenseThenMask).</summary>
    private static int PackedKeys(int queries, int queryStart, int totalKeys, AttentionMask mask) =>
        mask == AttentionMask.PrefixCausal ? queryStart + queries : totalKeys;

    /// <summary>Bytes of the packed K and V buffer of a call (with its alignment slack).</summary>
    internal static long PackedBytes(int queries, int queryStart, int totalKeys, int kvHeads, int headDim, AttentionMask mask)
    {
        long keyBlocks = (PackedKeys(queries, queryStart, totalKeys, mask) + KeyBlock - 1) / KeyBlock;
        long perHead = keyBlocks * KeyBlock * ((headDim + 1) / 2 + (headDim + KeyBlock - 1) / KeyBlock * (KeyBlock / 2));
        return 4 * kvHeads * perHead + 64;
    }

    public static void Run(float* q, float* k, float* v, float* output, int queries, int queryStart, int totalKeys,
        int heads, int kvHeads, int headDim, ComputePool pool, AttentionMask mask)
    {
        var w = t_work ??= new FlashAttentionBf16();
        w._q = q; w._k = k; w._v = v; w._out = output;
        w._queries = queries; w._queryStart = queryStart; w._totalKeys = totalKeys;
        w._heads = heads; w._kvHeads = kvHeads; w._headDim = headDim; w._mask = mask;
        w._group = heads / kvHeads;
        w._blockQueries = BlockQueries(w._group);
        w._queryBlocks = (queries + w._blockQueries - 1) / w._blockQueries;
        w._scale = Log2E / MathF.Sqrt(headDim);
        w._packKeys = PackedKeys(queries, queryStart, totalKeys, mask);
        w._dPairs = (headDim + 1) / 2;
        w._dChunks = (headDim + KeyBlock - 1) / KeyBlock;
        w._keyBlocks = (w._packKeys + KeyBlock - 1) / KeyBlock;
        w._packSpans = (w._keyBlocks + PackBlocks - 1) / PackBlocks;
        w._kHeadStride = (long)w._keyBlocks * w._dPairs * KeyBlock;
        w._vChunkStride = (long)w._keyBlocks * (KeyBlock / 2) * KeyBlock;
        w._vHeadStride = w._dChunks * w._vChunkStride;
        long bytes = PackedBytes(queries, queryStart, totalKeys, kvHeads, headDim, mask);
        Debug.Assert(bytes == 4 * kvHeads * (w._kHeadStride + w._vHeadStride) + 64);
        byte[] packed = ArrayPool<byte>.Shared.Rent(checked((int)bytes));
        try
        {
            fixed (byte* p = packed)
            {
                var aligned = (uint*)(((nint)p + 63) & ~(nint)63);
                w._kPacked = aligned;
                w._vPacked = aligned + kvHeads * w._kHeadStride;
                w._packing = true;
                pool.For(kvHeads * w._packSpans, w);
                w._packing = false;
                pool.For(w._queryBlocks * kvHeads, w);
            }
        }
        finally
        {
            w._q = w._k = w._v = w._out = null;
            w._kPacked = w._vPacked = null;
            ArrayPool<byte>.Shared.Return(packed);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Run(int item, int worker)
    {
        if (_packing) Pack(item);
        else Attend(item);
    }

    /// <summary>Rounds and packs key blocks of one KV head: K^T to [dPairs][32 keys], V to [d/32][key pairs][32 dims].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Pack(int item)
    {
        int kvHead = item % _kvHeads, span = item / _kvHeads;
        int d = _headDim, dPairs = _dPairs, kvStride = _kvHeads * d;
        int b0 = span * PackBlocks, b1 = Math.Min(_keyBlocks, b0 + PackBlocks);
        int tileStride = (dPairs + V - 1) / V * V;
        uint* tile = (t_scratch ??= new Scratch()).PackTile(KeyBlock * tileStride);
        float* partial = stackalloc float[V];
        var rows = stackalloc Vector512<uint>[V];
        for (int b = b0; b < b1; b++)
        {
            // K rows to pair dwords in a [32 keys][tileStride] tile (vector stores), then 16x16 transposes into K^T.
            for (int i = 0; i < KeyBlock; i++)
            {
                int key = b * KeyBlock + i;
                uint* t = tile + i * tileStride;
                if (key >= _packKeys)
                {
                    new Span<uint>(t, tileStride).Clear();
                    continue;
                }
                float* row = _k + (long)key * kvStride + kvHead * d;
                int p0 = 0;
                for (; 2 * p0 + 2 * V <= d; p0 += V)
                {
                    var lo = Bf16PairsKernels.RoundToBf16Bits(Vector512.Load(row + 2 * p0));
                    var hi = Bf16PairsKernels.RoundToBf16Bits(Vector512.Load(row + 2 * p0 + V));
                    Vector512.Narrow(lo, hi).AsUInt32().Store(t + p0);
                }
                for (; p0 < tileStride; p0++)
                {
                    uint pair = 2 * p0 < d ? DType.FloatToBf16(row[2 * p0]) : 0u;
                    if (2 * p0 + 1 < d) pair |= (uint)DType.FloatToBf16(row[2 * p0 + 1]) << 16;
                    t[p0] = pair;
                }
            }
            uint* kDst = _kPacked + kvHead * _kHeadStride + (long)b * dPairs * KeyBlock;
            for (int p0 = 0; p0 < dPairs; p0 += V)
                for (int i0 = 0; i0 < KeyBlock; i0 += V)
                {
                    for (int r = 0; r < V; r++) rows[r] = Vector512.Load(tile + (i0 + r) * tileStride + p0);
                    TileTranspose.Transpose(rows, kDst + p0 * KeyBlock + i0, KeyBlock, Math.Min(V, dPairs - p0));
                }

            for (int kp = 0; kp < KeyBlock / 2; kp++)
            {
                int key0 = b * KeyBlock + 2 * kp;
                float* row0 = key0 < _packKeys ? _v + (long)key0 * kvStride + kvHead * d : null;
                float* row1 = key0 + 1 < _packKeys ? _v + (long)(key0 + 1) * kvStride + kvHead * d : null;
                for (int c = 0; c < _dChunks; c++)
                {
                    uint* dst = _vPacked + kvHead * _vHeadStride + c * _vChunkStride + (long)(b * (KeyBlock / 2) + kp) * KeyBlock;
                    for (int half = 0; half < 2; half++)
                    {
                        int dim0 = c * KeyBlock + half * V;
                        var lo = Bf16PairsKernels.RoundToBf16Bits(LoadDims(row0, dim0, d, partial));
                        var hi = Bf16PairsKernels.RoundToBf16Bits(LoadDims(row1, dim0, d, partial));
                        (lo | Vector512.ShiftLeft(hi, 16)).Store(dst + half * V);
                    }
                }
            }
        }
    }

    /// <summary>Dimensions [dim0, dim0 + 16) of a row, zero past the head size or for a missing (padding) key.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> LoadDims(float* row, int dim0, int d, float* partial)
    {
        if (row == null || dim0 >= d) return Vector512<float>.Zero;
        if (dim0 + V <= d) return Vector512.Load(row + dim0);
        new Span<float>(partial, V).Clear();
        new Span<float>(row + dim0, d - dim0).CopyTo(new Span<float>(partial, V));
        return Vector512.Load(partial);
    }

    // Fully optimised from the first call: a prompt's first prefill is the one that is timed (TTFT).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Attend(int item)
    {
        // Later query blocks see more keys: hand them out first so the tail of the job is short items.
        int queryBlock = _queryBlocks - 1 - item / _kvHeads;
        int kvHead = item % _kvHeads;
        int j0 = queryBlock * _blockQueries;
        int jn = Math.Min(_blockQueries, _queries - j0);
        int rows = jn * _group;
        int panels = (rows + MR - 1) / MR, rowsPadded = panels * MR;
        int d = _headDim, dPairs = _dPairs, dChunks = _dChunks, dPadded = dChunks * KeyBlock;
        int qGroups = (dPairs + PairGroup - 1) / PairGroup, qPanel = qGroups * PanelPairs;
        var s = t_scratch ??= new Scratch();
        s.Ensure(rowsPadded, qPanel, dPadded);

        AttentionRows.Lay(s.Limit, s.RowOffset, rows, rowsPadded, _queryStart, j0, kvHead, _group, _heads, d);
        PackQueries(s, rows, rowsPadded, qGroups, qPanel);
        new Span<float>(s.O, rowsPadded * dPadded).Clear();
        new Span<float>(s.M, rowsPadded).Fill(float.NegativeInfinity);
        new Span<float>(s.L, rowsPadded * V).Clear();

        bool causal = _mask == AttentionMask.PrefixCausal;
        int keyEnd = causal ? _queryStart + j0 + jn : _totalKeys;
        uint* kHead = _kPacked + kvHead * _kHeadStride, vHead = _vPacked + kvHead * _vHeadStride;
        nint oStrideBytes = dPadded * sizeof(float);
        for (int t0 = 0, b = 0; t0 < keyEnd; t0 += KeyBlock, b++)
        {
            uint* kBlock = kHead + (long)b * dPairs * KeyBlock;
            uint* vBlock = vHead + (long)b * (KeyBlock / 2) * KeyBlock;
            for (int p = 0; p < panels; p++)
            {
                int r0 = p * MR;
                // A panel whose real rows see none of these keys (its padding rows do not matter) skips the block.
                if (causal && t0 > s.Limit[Math.Min(rows, r0 + MR) - 1]) continue;
                Bf16Dot.Kernel(s.Qa + p * qPanel, kBlock, dPairs, s.S, KeyBlock * sizeof(float), accumulate: false);
                Softmax(s, r0, t0, dPadded, masked: t0 + KeyBlock - 1 > s.Limit[r0]);
                float* o = s.O + r0 * dPadded;
                for (int c = 0; c < dChunks; c++)
                    Bf16Dot.Kernel(s.P, vBlock + c * _vChunkStride, KeyBlock / 2, o + c * KeyBlock, oStrideBytes, accumulate: true);
            }
        }

        for (int r = 0; r < rows; r++)
            AttentionRows.WriteScaled(_out + s.RowOffset[r], s.O + r * dPadded, 1f / Vector512.Sum(Vector512.Load(s.L + r * V)), d);
    }

    /// <summary>The item's query rows, scaled by log2(e)/sqrt(d), rounded to bf16 pairs in the kernel's A layout; padding rows and pairs zero.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void PackQueries(Scratch s, int rows, int rowsPadded, int qGroups, int qPanel)
    {
        int d = _headDim;
        var scale = Vector512.Create(_scale);
        for (int r = 0; r < rowsPadded; r++)
        {
            uint* dst = s.Qa + r / MR * qPanel + r % MR * PairGroup;
            if (r >= rows)
            {
                for (int g = 0; g < qGroups; g++) new Span<uint>(dst + g * PanelPairs, PairGroup).Clear();
                continue;
            }
            float* src = _q + s.RowOffset[r];
            int g0 = 0;
            for (; (g0 + 1) * 2 * PairGroup <= d; g0++)
            {
                float* x = src + g0 * 2 * PairGroup;
                var lo = Bf16PairsKernels.RoundToBf16Bits(Vector512.Load(x) * scale);
                var hi = Bf16PairsKernels.RoundToBf16Bits(Vector512.Load(x + V) * scale);
                Vector512.Narrow(lo, hi).AsUInt32().Store(dst + g0 * PanelPairs);
            }
            for (int g = g0; g < qGroups; g++)
            {
                uint* gd = dst + g * PanelPairs;
                for (int j = 0; j < PairGroup; j++)
                {
                    int i = 2 * (g * PairGroup + j);
                    uint pair = i < d ? DType.FloatToBf16(src[i] * _scale) : 0u;
                    if (i + 1 < d) pair |= (uint)DType.FloatToBf16(src[i + 1] * _scale) << 16;
                    gd[j] = pair;
                }
            }
        }
    }

    /// <summary>
    /// The online softmax of one panel's score rows (base 2): masks, moves a row's reference maximum M only past the
    /// threshold (rescaling that row's O and sum), adds P = 2^(S - M) to the row's lane sums L and packs P as the A
    /// panel of the value product (16 key pairs = one group per row).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Softmax(Scratch s, int r0, int t0, int dPadded, bool masked)
    {
        if (!masked)
        {
            // One test for the panel instead of a data-dependent branch per row: usually no row moves its maximum.
            var exceeds = Vector512<float>.Zero;
            for (int rr = 0; rr < MR; rr++)
            {
                float* row = s.S + rr * KeyBlock;
                var x = Vector512.Max(Vector512.Load(row), Vector512.Load(row + V));
                exceeds |= Vector512.GreaterThan(x, Vector512.Create(s.M[r0 + rr] + RescaleThreshold));
            }
            if (exceeds == Vector512<float>.Zero)
            {
                for (int rr = 0; rr < MR; rr++)
                {
                    float* row = s.S + rr * KeyBlock;
                    var mv = Vector512.Create(s.M[r0 + rr]);
                    var e0 = Exp2(Vector512.Load(row) - mv);
                    var e1 = Exp2(Vector512.Load(row + V) - mv);
                    StoreProbabilities(e0, e1, s.L + (r0 + rr) * V, s.P + rr * PairGroup);
                }
                return;
            }
        }
        var negInf = Vector512.Create(float.NegativeInfinity);
        var keys0 = Vector512.Create(t0) + Vector512<int>.Indices;
        var keys1 = keys0 + Vector512.Create(V);
        for (int rr = 0; rr < MR; rr++)
        {
            int r = r0 + rr;
            float* row = s.S + rr * KeyBlock;
            var s0 = Vector512.Load(row);
            var s1 = Vector512.Load(row + V);
            if (masked)
            {
                var limit = Vector512.Create(s.Limit[r]);
                s0 = Vector512.ConditionalSelect(Vector512.LessThanOrEqual(keys0, limit).AsSingle(), s0, negInf);
                s1 = Vector512.ConditionalSelect(Vector512.LessThanOrEqual(keys1, limit).AsSingle(), s1, negInf);
            }
            float m = s.M[r];
            var x = Vector512.Max(s0, s1);
            float* l = s.L + r * V;
            if (Vector512.GreaterThanAny(x, Vector512.Create(m + RescaleThreshold)))
            {
                float mNew = HorizontalMax(x);
                if (m != float.NegativeInfinity)
                {
                    float diff = m - mNew;
                    var alpha = Vector512.Create(diff < -125f ? 0f : float.Exp2(diff));
                    (Vector512.Load(l) * alpha).Store(l);
                    float* o = s.O + r * dPadded;
                    for (int i = 0; i < dPadded; i += V) (Vector512.Load(o + i) * alpha).Store(o + i);
                }
                s.M[r] = m = mNew;
            }
            var mv = Vector512.Create(m);
            var e0 = Exp2(s0 - mv);
            var e1 = Exp2(s1 - mv);
            StoreProbabilities(e0, e1, l, s.P + rr * PairGroup);
        }
    }

    /// <summary>
    /// One row's 32 probabilities to bf16 pairs (one A-panel group) and into the row's lane sums. Truncated, not
    /// rounded: the sum is taken of the same truncated values, so their downward bias cancels in the normalisation and
    /// the relative spread is 2^-8 as with rounding (measured worst output error 5e-3 against 4e-3 rounded, on
    /// AttentionBf16Tests' cases), for 3 instructions instead of 11 (4 % of attention time).
    /// Both softmax paths use this, so a row's numbers never depend on which path its panel took.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreProbabilities(Vector512<float> e0, Vector512<float> e1, float* l, uint* p)
    {
        var hi = Vector512.Create(0xffff0000u).AsSingle();
        e0 &= hi;
        e1 &= hi;
        (Vector512.Load(l) + (e0 + e1)).Store(l);
        if (Avx512BW.IsSupported)
            Avx512BW.PermuteVar32x16x2(e0.AsUInt16(), Vector512.Create((ushort)1) + Vector512<ushort>.Indices * 2, e1.AsUInt16()).AsUInt32().Store(p);
        else
            Vector512.Narrow(Vector512.ShiftRightLogical(e0.AsUInt32(), 16), Vector512.ShiftRightLogical(e1.AsUInt32(), 16)).AsUInt32().Store(p);
    }

    private static float HorizontalMax(Vector512<float> x)
    {
        var h = Vector256.Max(x.GetLower(), x.GetUpper());
        var q = Vector128.Max(h.GetLower(), h.GetUpper());
        return MathF.Max(MathF.Max(q.GetElement(0), q.GetElement(1)), MathF.Max(q.GetElement(2), q.GetElement(3)));
    }

    /// <summary>
    /// 2^x for x &lt;= ~8 to ~1e-4 relative (P keeps 8 significant bits next, so a cubic suffices); below 2^-126
    /// (-inf included) the result is 0, as <see cref="VectorMath.Exp"/> flushes what would be subnormal.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> Exp2(Vector512<float> x)
    {
        var underflow = Vector512.LessThan(x, Vector512.Create(-126f));
        // f = x - floor(x) in [0, 1) in one vreduceps, and p 2^floor(x) in one vscalefps; lanes flushed by the mask
        // may hold anything (-inf gives NaN here), the AndNot clears their bits.
        var f = Avx512DQ.IsSupported ? Avx512DQ.Reduce(x, 0x09) : x - Vector512.Floor(x);
        // Relative minimax (Lawson) cubic for 2^f on [0, 1): max error 7.5e-5.
        var p = Vector512.FusedMultiplyAdd(Vector512.Create(0.07802444673706174f), f, Vector512.Create(0.22606799644223494f));
        p = Vector512.FusedMultiplyAdd(p, f, Vector512.Create(0.6958328241560334f));
        p = Vector512.FusedMultiplyAdd(p, f, Vector512.Create(0.9999253344154354f));
        return Vector512.AndNot(Avx512F.Scale(p, x), underflow.AsSingle());
    }

    /// <summary>Per-thread buffers (pool threads are persistent), one pinned block with every part on its own cache lines.</summary>
    private sealed class Scratch
    {
        private byte[] _block = [];
        private int _rowsPadded = -1, _qPanel = -1, _dPadded = -1;

        private uint[] _packTile = [];

        public uint* Qa, P;

        /// <summary>A pinned buffer of at least <paramref name="dwords"/> for one key block's K pairs before transposing.</summary>
        public uint* PackTile(int dwords)
        {
            if (_packTile.Length < dwords) _packTile = GC.AllocateArray<uint>(dwords + V, pinned: true);
            return (uint*)(((nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_packTile)) + 63) & ~(nint)63);
        }
        public float* S, O, M, L;
        public int* Limit;
        public long* RowOffset; // of a row's query and head in q and the output

        public void Ensure(int rowsPadded, int qPanel, int dPadded)
        {
            if (rowsPadded <= _rowsPadded && qPanel <= _qPanel && dPadded <= _dPadded) return;
            _rowsPadded = Math.Max(rowsPadded, _rowsPadded);
            _qPanel = Math.Max(qPanel, _qPanel);
            _dPadded = Math.Max(dPadded, _dPadded);
            int r = _rowsPadded;
            long[] bytes =
            [
                4L * r / MR * _qPanel, 4L * MR * PairGroup, 4L * MR * KeyBlock, 4L * r * _dPadded, 4L * r, 4L * r * V, 4L * r, 8L * r,
            ];
            var parts = CacheLineBlock.Carve(bytes, out _block);
            Qa = (uint*)parts[0]; P = (uint*)parts[1]; S = (float*)parts[2]; O = (float*)parts[3];
            M = (float*)parts[4]; L = (float*)parts[5]; Limit = (int*)parts[6]; RowOffset = (long*)parts[7];
        }
    }
}
