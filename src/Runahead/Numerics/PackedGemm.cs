using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using Runahead.Numerics.Jit;

namespace Runahead.Numerics;

/// <summary>Element type of a packed weight (what the panels hold, not what the file stored).</summary>
internal enum PanelType
{
    F32,
    F16,
    BF16,

    /// <summary>F16 without Inf/NaN (almost every real weight): a cheaper widening.</summary>
    F16Finite,

    /// <summary>BF16 in k pairs ([panel][k/2][32][2], see <see cref="Bf16PairsKernels"/>) for the generated vdpbf16ps kernel.</summary>
    BF16Pairs,
}

/// <summary>
/// Y[M, N] = X[M, K] W^T with W pre-packed in panels of <see cref="GemmMicroKernels.NR"/> output features
/// ([panel][k][NR], zero-padded past N). Blocking follows BLIS: a KC-deep slice of an MC-row block of X is packed
/// into the calling thread's scratch (L2-resident) and multiplied against each weight micro-panel of an NC-wide
/// chunk. Work items are (M block x N chunk) tiles, independent, so no barriers between K slices.
/// For M &lt;= <see cref="SmallM"/> (decode) the weight is streamed once with conversion in registers.
/// </summary>
internal sealed unsafe class PackedGemm : IParallelWork
{
    public const int SmallM = 4;
    // KC x NR x 4 = 32 KiB: one weight micro-panel stays in L1 (48 KiB on Zen 5) while the MC / MR activation
    // micro-panels stream past it; the MC x KC activation block (128-256 KiB) stays in L2. One thread: MC 128 was
    // 0-4 % faster than 256 (KC 192..512 within noise); several threads: MC 256 re-reads the weight half as often
    // and kept 228-235 GFLOP/s per core against 224-230 for MC 128.
    internal const int KC = 256;
    internal const int MaxMC = 256;
    private const int SingleThreadMC = 128;
    // 512: the C block stays in L2 across K slices next to the activation block; measured (MC 128) 2-3 % faster
    // than 1024 at K = 5632 on Zen 5, equal at K = 2048.
    private const int MaxNC = 512;
    // The pairs kernel's K slice: PairsKC x NR x 2 bytes = 32 KiB of weight per micro-panel, the same L1 footprint as
    // the F32 path's KC. The bf16 activation block (at most 252 x 512 x 2 bytes; PairsKC is a whole number of 16-pair
    // groups) fits the F32 activation scratch.
    internal const int PairsKC = 512;
    // 8 MiB: one pass for 512-token chunks up to K = 8192 (TinyLlama's 5632 takes 5.8 MB); kept per calling thread.
    // Tests lower it to exercise several passes.
    internal static long PairsBufferBytes = 8L << 20;
    private const int MR = GemmMicroKernels.MR;
    private const int NR = GemmMicroKernels.NR;

    [ThreadStatic] private static PackedGemm? t_work;
    [ThreadStatic] private static Scratch? t_scratch;

    /// <summary>Most weights one <see cref="RunGroup"/> call multiplies (Q, K and V).</summary>
    public const int MaxOutputs = 3;

    private float* _x;
    private PanelType _type;
    private int _m, _k, _mc, _mBlocks, _nc, _panelsPerItem;
    private bool _small, _chunkFastest, _addToOutput;
    // The outputs of the current call: panels, width and result rows of each weight, and the first work unit (an N chunk
    // of the blocked path, a run of panels of the small path) of each, so that one item list covers all of them.
    private readonly nint[] _outPanels = new nint[MaxOutputs];
    private readonly nint[] _outY = new nint[MaxOutputs];
    private readonly nint[] _outYStart = new nint[MaxOutputs];
    private readonly int[] _outN = new int[MaxOutputs];
    private readonly int[] _outFirst = new int[MaxOutputs + 1];
    private int _outputs;
    // BF16 pairs path: activations rounded once per pass into a shared buffer (slice-major micro-panels).
    private uint[]? _pairsBuffer;
    private uint* _packedA;
    private int _slices, _slicePanelLength, _mPanels;
    private bool _packPhase, _pairsPrepacked;

    /// <summary>Runs the product on <paramref name="pool"/>; panels must stay pinned for the duration.</summary>
    /// <param name="addToOutput">Y += X W^T instead of Y = X W^T (a residual add folded into the product).</param>
    public static void Run(float* x, int m, int k, byte* panels, PanelType type, int n, float* y, ComputePool pool, bool addToOutput = false)
    {
        ReadOnlySpan<GemmOutput> one = [new GemmOutput(panels, n, y)];
        RunGroup(x, m, k, type, one, pool, addToOutput);
    }

    /// <summary>
    /// Y_i[M, N_i] = X[M, K] W_i^T for up to <see cref="MaxOutputs"/> weights of the same panel type and K (Q/K/V,
    /// gate/up): one dispatch, and on the BF16 pairs path one rounding of the activations, for all of them. Each result
    /// goes to its own rows (no fused buffer to copy apart). Panels must stay pinned for the duration.
    /// </summary>
    public static void RunGroup(float* x, int m, int k, PanelType type, ReadOnlySpan<GemmOutput> outputs, ComputePool pool, bool addToOutput = false)
    {
        if (outputs.Length is 0 or > MaxOutputs)
            throw new ArgumentOutOfRangeException(nameof(outputs), $"a product group has 1 to {MaxOutputs} weights, got {outputs.Length}");
        long totalN = 0;
        foreach (var output in outputs)
        {
            if (output.N < 0) throw new ArgumentOutOfRangeException(nameof(outputs), $"output width {output.N} is negative");
            totalN += output.N;
        }
        if (m == 0 || totalN == 0) return;
        if (k == 0)
        {
            if (addToOutput) return;
            foreach (var output in outputs) new Span<float>(output.Y, checked(m * output.N)).Clear();
            return;
        }
        var work = t_work ??= new PackedGemm();
        work._x = x; work._type = type; work._addToOutput = addToOutput;
        work._m = m; work._k = k;
        work._outputs = outputs.Length;
        for (int o = 0; o < outputs.Length; o++)
        {
            work._outPanels[o] = (nint)outputs[o].Panels;
            work._outN[o] = outputs[o].N;
            work._outY[o] = work._outYStart[o] = (nint)outputs[o].Y;
        }
        try
        {
            int items;
            if (m <= SmallM)
            {
                work._small = true;
                // Several items per thread so a slow (shared) core does not hold up the others.
                int wanted = Math.Max(1, 8 * pool.Threads);
                work._panelsPerItem = Math.Max(1, (work.TotalPanels() + wanted - 1) / wanted);
                items = work.SetUnits(work._panelsPerItem);
            }
            else
            {
                work._small = false;
                work._mc = pool.Threads == 1 ? SingleThreadMC : MaxMC;
                work._chunkFastest = pool.Threads > 1;
                work._pairsPrepacked = type == PanelType.BF16Pairs && Bf16Dot.KernelAvailable && !Bf16Dot.ForceWidening;
                if (work._pairsPrepacked)
                {
                    work.RunPairsPrepacked(pool);
                    return;
                }
                items = work.ConfigureBlocks(m, pool.Threads);
            }
            pool.For(items, work);
        }
        finally
        {
            work._x = null;
            work._outPanels.AsSpan().Clear();
            work._outY.AsSpan().Clear();
            work._outYStart.AsSpan().Clear();
            work._outputs = 0;
        }
    }

    private int TotalPanels()
    {
        int panels = 0;
        for (int o = 0; o < _outputs; o++) panels += (_outN[o] + NR - 1) / NR;
        return panels;
    }

    /// <summary>Splits each output's panels into units of <paramref name="panelsPerUnit"/>; returns the unit count of all outputs.</summary>
    private int SetUnits(int panelsPerUnit)
    {
        _outFirst[0] = 0;
        for (int o = 0; o < _outputs; o++)
        {
            int panels = (_outN[o] + NR - 1) / NR;
            _outFirst[o + 1] = _outFirst[o] + (panels + panelsPerUnit - 1) / panelsPerUnit;
        }
        return _outFirst[_outputs];
    }

    /// <summary>The output a unit (N chunk or run of panels) belongs to, and the unit's index within it.</summary>
    private int OutputOf(int unit, out int local)
    {
        int o = 0;
        while (unit >= _outFirst[o + 1]) o++;
        local = unit - _outFirst[o];
        return o;
    }

    /// <summary>Sets the M blocks and N chunks of the blocked path for <paramref name="m"/> rows; returns the item count.</summary>
    private int ConfigureBlocks(int m, int threads)
    {
        _mBlocks = (m + _mc - 1) / _mc;
        int chunksWanted = Math.Max(1, (4 * threads + _mBlocks - 1) / _mBlocks);
        int ncPanels = Math.Clamp((TotalPanels() + chunksWanted - 1) / chunksWanted, 1, MaxNC / NR);
        _nc = ncPanels * NR;
        return _mBlocks * SetUnits(ncPanels);
    }

    /// <summary>
    /// The blocked product on the generated BF16 kernel, in two parallel phases per pass of rows: first every (M block,
    /// K slice) of the activations is rounded to bf16 pairs once into a shared buffer, then the (M block x N chunk)
    /// items multiply from it. Packing per item instead (as the F32 path does) would repeat it for every N chunk, which
    /// cost ~5 % of the time at N chunks of 512 and more for narrow weights: the kernel itself runs twice as fast as the
    /// F32 one, so the packing weighs twice as much. Passes keep the buffer at most <see cref="PairsBufferBytes"/>.
    /// </summary>
    private void RunPairsPrepacked(ComputePool pool)
    {
        // Whole 14-row micro-panels per block: 128 or 256 rows would leave a mostly empty edge tile in every block.
        _mc = _mc / Bf16PairsKernels.MR * Bf16PairsKernels.MR;
        float* x = _x;
        int m = _m;
        _slices = (_k + PairsKC - 1) / PairsKC;
        _slicePanelLength = Bf16PairsKernels.MicroPanelLength(Math.Min(PairsKC, _k + 1) / 2);
        long microPanelBytes = (long)_slices * _slicePanelLength * 4;
        int maxPanels = (int)Math.Max(1, PairsBufferBytes / microPanelBytes);
        int passRows = Math.Max(_mc, maxPanels * Bf16PairsKernels.MR / _mc * _mc);
        for (int m0 = 0; m0 < m; m0 += passRows)
        {
            int rows = Math.Min(passRows, m - m0);
            _x = x + (nint)m0 * _k;
            for (int o = 0; o < _outputs; o++) _outY[o] = _outYStart[o] + (nint)m0 * _outN[o] * sizeof(float);
            _m = rows;
            _mPanels = (rows + Bf16PairsKernels.MR - 1) / Bf16PairsKernels.MR;
            _packedA = PairsBuffer((long)_slices * _mPanels * _slicePanelLength);
            int items = ConfigureBlocks(rows, pool.Threads);
            _packPhase = true;
            try
            {
                pool.For(_mBlocks * _slices, this);
            }
            finally
            {
                _packPhase = false;
            }
            pool.For(items, this);
        }
    }

    private uint* PairsBuffer(long dwords)
    {
        if (_pairsBuffer is null || _pairsBuffer.LongLength < dwords + 16)
            _pairsBuffer = GC.AllocateUninitializedArray<uint>(checked((int)(dwords + 16)), pinned: true);
        var p = (uint*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_pairsBuffer));
        return (uint*)(((nint)p + 63) & ~(nint)63);
    }

    /// <summary>
    /// Start of micro-panel <paramref name="microPanel"/> of K slice <paramref name="slice"/> in the shared activation
    /// buffer: slices are <see cref="_slicePanelLength"/> x micro-panels apart, the micro-panels of a slice
    /// <paramref name="panelLength"/> (shorter for a last, partial slice: what <see cref="Bf16PairsKernels.PackActivations"/> writes).
    /// </summary>
    private uint* PackedPairs(int slice, int microPanel, int panelLength) =>
        _packedA + (nint)slice * _mPanels * _slicePanelLength + (nint)microPanel * panelLength;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void PackPairsItem(int item)
    {
        int mb = item / _slices, slice = item % _slices;
        int m0 = mb * _mc, mc = Math.Min(_mc, _m - m0);
        int k0 = slice * PairsKC, kc = Math.Min(PairsKC, _k - k0);
        int panelLength = Bf16PairsKernels.MicroPanelLength(Bf16PairsKernels.PairCount(kc));
        Bf16PairsKernels.PackActivations(_x + (nint)m0 * _k + k0, _k, mc, kc, PackedPairs(slice, m0 / Bf16PairsKernels.MR, panelLength));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Run(int item, int worker)
    {
        switch (_type)
        {
            case PanelType.F32: RunItem<F32Element>(item); break;
            case PanelType.F16: RunItem<F16Element>(item); break;
            case PanelType.BF16: RunItem<Bf16Element>(item); break;
            case PanelType.F16Finite: RunItem<F16FiniteElement>(item); break;
            case PanelType.BF16Pairs when _packPhase: PackPairsItem(item); break;
            case PanelType.BF16Pairs: RunPairsItem(item); break;
            default: throw new InvalidOperationException($"unknown panel type {_type}");
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void RunItem<T>(int item) where T : struct, IPanelElement
    {
        var s = t_scratch ??= new Scratch();
        if (_small) RunSmall<T>(item, s);
        else RunBlocked<T>(item, s);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void RunSmall<T>(int item, Scratch s) where T : struct, IPanelElement
    {
        int o = SmallItem(item, out int p0, out int p1);
        byte* panels = (byte*)_outPanels[o];
        int n = _outN[o];
        float* y = (float*)_outY[o];
        nint panelBytes = (nint)_k * NR * T.Size;
        for (int p = p0; p < p1; p++)
        {
            int nValid = Math.Min(NR, n - p * NR);
            byte* panel = panels + p * panelBytes;
            if (nValid == NR && !_addToOutput)
            {
                GemmMicroKernels.RowsKernel<T>(_x, _k, _m, panel, _k, y + p * NR, n);
                continue;
            }
            GemmMicroKernels.RowsKernel<T>(_x, _k, _m, panel, _k, s.Tile, NR);
            StoreSmallTile(s.Tile, nValid, y + p * NR, n);
        }
    }

    /// <summary>Copies (or adds, for <see cref="_addToOutput"/>) the valid columns of a small-path tile into the output rows.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void StoreSmallTile(float* tile, int nValid, float* y, int ldy)
    {
        for (int r = 0; r < _m; r++)
        {
            var src = new ReadOnlySpan<float>(tile + r * NR, nValid);
            var dst = new Span<float>(y + (nint)r * ldy, nValid);
            if (_addToOutput) TensorPrimitives.Add(dst, src, dst);
            else src.CopyTo(dst);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void RunBlocked<T>(int item, Scratch s) where T : struct, IPanelElement
    {
        var (o, m0, mc, n0, nEnd) = ItemTile(item);
        byte* panels = (byte*)_outPanels[o];
        int n = _outN[o];
        float* y = (float*)_outY[o];
        bool v512 = GemmMicroKernels.UseVector512;
        nint panelBytes = (nint)_k * NR * T.Size;
        for (int k0 = 0; k0 < _k; k0 += KC)
        {
            int kc = Math.Min(KC, _k - k0);
            bool accumulate = k0 > 0 || _addToOutput;
            PackActivations(_x + (nint)m0 * _k + k0, _k, mc, kc, s.A);
            for (int nb = n0; nb < nEnd; nb += NR)
            {
                byte* stored = panels + (nb / NR) * panelBytes + (nint)k0 * NR * T.Size;
                float* b;
                if (typeof(T) == typeof(F32Element))
                {
                    b = (float*)stored;
                }
                else
                {
                    GemmMicroKernels.WidenPanel<T>(stored, kc, s.B);
                    b = s.B;
                }
                int nValid = Math.Min(NR, n - nb);
                for (int r0 = 0; r0 < mc; r0 += MR)
                {
                    int rows = Math.Min(MR, mc - r0);
                    float* a = s.A + (nint)r0 * kc;
                    float* c = y + (nint)(m0 + r0) * n + nb;
                    if (rows == MR && nValid == NR)
                    {
                        if (v512) GemmMicroKernels.Kernel8x32(a, b, kc, c, n, accumulate);
                        else GemmMicroKernels.Kernel8x32V256(a, b, kc, c, n, accumulate);
                        continue;
                    }
                    // Edge tile: compute the full 8x32 into scratch and copy the valid part.
                    if (accumulate)
                        for (int r = 0; r < rows; r++)
                            new Span<float>(c + (nint)r * n, nValid).CopyTo(new Span<float>(s.Tile + r * NR, nValid));
                    if (v512) GemmMicroKernels.Kernel8x32(a, b, kc, s.Tile, NR, accumulate);
                    else GemmMicroKernels.Kernel8x32V256(a, b, kc, s.Tile, NR, accumulate);
                    for (int r = 0; r < rows; r++)
                        new Span<float>(s.Tile + r * NR, nValid).CopyTo(new Span<float>(c + (nint)r * n, nValid));
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void RunPairsItem(int item)
    {
        var s = t_scratch ??= new Scratch();
        if (_small) RunSmallPairs(item, s);
        else if (_pairsPrepacked) RunBlockedPairs(item, s);
        else RunBlockedPairsWidened(item, s);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void RunSmallPairs(int item, Scratch s)
    {
        int o = SmallItem(item, out int p0, out int p1);
        byte* panels = (byte*)_outPanels[o];
        int n = _outN[o];
        float* y = (float*)_outY[o];
        nint panelBytes = (nint)Bf16PairsKernels.PanelLength(_k) * 2;
        for (int p = p0; p < p1; p++)
        {
            int nValid = Math.Min(NR, n - p * NR);
            var panel = (uint*)(panels + p * panelBytes);
            if (nValid == NR && !_addToOutput)
            {
                Bf16PairsKernels.RowsKernel(_x, _k, _m, panel, _k, y + p * NR, n);
                continue;
            }
            Bf16PairsKernels.RowsKernel(_x, _k, _m, panel, _k, s.Tile, NR);
            StoreSmallTile(s.Tile, nValid, y + p * NR, n);
        }
    }

    /// <summary>
    /// One (M block x N chunk) item on the generated kernel: per K slice, the weight micro-panels of the chunk as stored
    /// (no widening) against the activation micro-panels packed by <see cref="PackPairsItem"/>. Same item order as
    /// <see cref="RunBlocked{T}"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void RunBlockedPairs(int item, Scratch s)
    {
        const int mr = Bf16PairsKernels.MR;
        var (o, m0, mc, n0, nEnd) = ItemTile(item);
        byte* panels = (byte*)_outPanels[o];
        int n = _outN[o];
        float* y = (float*)_outY[o];
        nint panelBytes = (nint)Bf16PairsKernels.PanelLength(_k) * 2;
        nint ldcBytes = (nint)n * 4;
        for (int slice = 0; slice < _slices; slice++)
        {
            int k0 = slice * PairsKC;
            int pairs = Bf16PairsKernels.PairCount(Math.Min(PairsKC, _k - k0));
            int panelLength = Bf16PairsKernels.MicroPanelLength(pairs);
            bool accumulate = slice > 0 || _addToOutput;
            uint* aBlock = PackedPairs(slice, m0 / mr, panelLength);
            for (int nb = n0; nb < nEnd; nb += NR)
            {
                var b = (uint*)(panels + (nb / NR) * panelBytes + (nint)(k0 / 2) * NR * 4);
                int nValid = Math.Min(NR, n - nb);
                for (int r0 = 0; r0 < mc; r0 += mr)
                {
                    int rows = Math.Min(mr, mc - r0);
                    uint* a = aBlock + (nint)(r0 / mr) * panelLength;
                    float* c = y + (nint)(m0 + r0) * n + nb;
                    if (rows == mr && nValid == NR)
                    {
                        Bf16Dot.Kernel(a, b, pairs, c, ldcBytes, accumulate);
                        continue;
                    }
                    if (accumulate)
                        for (int r = 0; r < rows; r++)
                            new Span<float>(c + (nint)r * n, nValid).CopyTo(new Span<float>(s.Tile + r * NR, nValid));
                    Bf16Dot.Kernel(a, b, pairs, s.Tile, NR * 4, accumulate);
                    for (int r = 0; r < rows; r++)
                        new Span<float>(s.Tile + r * NR, nValid).CopyTo(new Span<float>(c + (nint)r * n, nValid));
                }
            }
        }
    }

    /// <summary>Pairs panels without the generated kernel (not expected: they are only packed when it exists): widen and use the F32 kernels.</summary>
    private void RunBlockedPairsWidened(int item, Scratch s)
    {
        var (o, m0, mc, n0, nEnd) = ItemTile(item);
        byte* panels = (byte*)_outPanels[o];
        int n = _outN[o];
        float* y = (float*)_outY[o];
        nint panelBytes = (nint)Bf16PairsKernels.PanelLength(_k) * 2;
        for (int k0 = 0; k0 < _k; k0 += KC)
        {
            int kc = Math.Min(KC, _k - k0);
            bool accumulate = k0 > 0 || _addToOutput;
            PackActivations(_x + (nint)m0 * _k + k0, _k, mc, kc, s.A);
            for (int nb = n0; nb < nEnd; nb += NR)
            {
                Bf16PairsKernels.WidenPanel((uint*)(panels + (nb / NR) * panelBytes + (nint)(k0 / 2) * NR * 4), kc, s.B);
                int nValid = Math.Min(NR, n - nb);
                for (int r0 = 0; r0 < mc; r0 += MR)
                {
                    int rows = Math.Min(MR, mc - r0);
                    float* c = y + (nint)(m0 + r0) * n + nb;
                    if (accumulate)
                        for (int r = 0; r < rows; r++)
                            new Span<float>(c + (nint)r * n, nValid).CopyTo(new Span<float>(s.Tile + r * NR, nValid));
                    GemmMicroKernels.Kernel8x32V256(s.A + (nint)r0 * kc, s.B, kc, s.Tile, NR, accumulate);
                    for (int r = 0; r < rows; r++)
                        new Span<float>(s.Tile + r * NR, nValid).CopyTo(new Span<float>(c + (nint)r * n, nValid));
                }
            }
        }
    }

    /// <summary>
    /// The (M block x N chunk) tile of a blocked item: rows [m0, m0 + mc), output features [n0, nEnd). One thread:
    /// consecutive items take the same weight chunk for successive M blocks, so the chunk is still in L3. Several
    /// threads: consecutive items share an M block and take different chunks, which measured 94 % of OpenBLAS's
    /// two-thread speed against 86 % for the other order (quiet machine, MC 128).
    /// </summary>
    private (int Output, int M0, int Mc, int N0, int NEnd) ItemTile(int item)
    {
        int nChunks = _outFirst[_outputs];
        int mb = _chunkFastest ? item / nChunks : item % _mBlocks;
        int chunk = _chunkFastest ? item % nChunks : item / _mBlocks;
        int o = OutputOf(chunk, out int local);
        int m0 = mb * _mc, n0 = local * _nc;
        return (o, m0, Math.Min(_mc, _m - m0), n0, Math.Min(_outN[o], n0 + _nc));
    }

    /// <summary>The output and the panel range [p0, p1) of a small-path item.</summary>
    private int SmallItem(int item, out int p0, out int p1)
    {
        int o = OutputOf(item, out int local);
        p0 = local * _panelsPerItem;
        p1 = Math.Min(p0 + _panelsPerItem, (_outN[o] + NR - 1) / NR);
        return o;
    }

    /// <summary>Packs rows [0, mc) x columns [0, kc) of x (row stride ldx) into MR-row micro-panels, zero-padding rows.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void PackActivations(float* x, nint ldx, int mc, int kc, float* dst)
    {
        for (int r0 = 0; r0 < mc; r0 += MR)
        {
            int rows = Math.Min(MR, mc - r0);
            float* panel = dst + (nint)r0 * kc;
            if (rows == MR)
            {
                float* s0 = x + r0 * ldx;
                int k = 0;
                if (Avx.IsSupported)
                {
                    for (; k + 8 <= kc; k += 8, panel += 8 * MR) Transpose8x8(s0 + k, ldx, panel);
                }
                float* s1 = s0 + ldx, s2 = s1 + ldx, s3 = s2 + ldx;
                float* s4 = s3 + ldx, s5 = s4 + ldx, s6 = s5 + ldx, s7 = s6 + ldx;
                for (; k < kc; k++, panel += MR)
                {
                    panel[0] = s0[k]; panel[1] = s1[k]; panel[2] = s2[k]; panel[3] = s3[k];
                    panel[4] = s4[k]; panel[5] = s5[k]; panel[6] = s6[k]; panel[7] = s7[k];
                }
                continue;
            }
            for (int k = 0; k < kc; k++, panel += MR)
            {
                for (int r = 0; r < MR; r++) panel[r] = r < rows ? x[(r0 + r) * ldx + k] : 0f;
            }
        }
    }

    /// <summary>dst[c * 8 + r] = src[r * ld + c] for an 8x8 block (unpack / shuffle / lane-permute network).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose8x8(float* src, nint ld, float* dst)
    {
        var r0 = Avx.LoadVector256(src); var r1 = Avx.LoadVector256(src + ld);
        var r2 = Avx.LoadVector256(src + 2 * ld); var r3 = Avx.LoadVector256(src + 3 * ld);
        var r4 = Avx.LoadVector256(src + 4 * ld); var r5 = Avx.LoadVector256(src + 5 * ld);
        var r6 = Avx.LoadVector256(src + 6 * ld); var r7 = Avx.LoadVector256(src + 7 * ld);
        var t0 = Avx.UnpackLow(r0, r1); var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3); var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5); var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7); var t7 = Avx.UnpackHigh(r6, r7);
        var u0 = Avx.Shuffle(t0, t2, 0x44); var u1 = Avx.Shuffle(t0, t2, 0xEE);
        var u2 = Avx.Shuffle(t1, t3, 0x44); var u3 = Avx.Shuffle(t1, t3, 0xEE);
        var u4 = Avx.Shuffle(t4, t6, 0x44); var u5 = Avx.Shuffle(t4, t6, 0xEE);
        var u6 = Avx.Shuffle(t5, t7, 0x44); var u7 = Avx.Shuffle(t5, t7, 0xEE);
        Avx.Store(dst, Avx.Permute2x128(u0, u4, 0x20));
        Avx.Store(dst + 8, Avx.Permute2x128(u1, u5, 0x20));
        Avx.Store(dst + 16, Avx.Permute2x128(u2, u6, 0x20));
        Avx.Store(dst + 24, Avx.Permute2x128(u3, u7, 0x20));
        Avx.Store(dst + 32, Avx.Permute2x128(u0, u4, 0x31));
        Avx.Store(dst + 40, Avx.Permute2x128(u1, u5, 0x31));
        Avx.Store(dst + 48, Avx.Permute2x128(u2, u6, 0x31));
        Avx.Store(dst + 56, Avx.Permute2x128(u3, u7, 0x31));
    }

    /// <summary>Per-thread buffers on the pinned heap; pool threads are persistent, so these are allocated once.</summary>
    private sealed class Scratch
    {
        private readonly float[] _a = GC.AllocateUninitializedArray<float>(MaxMC * KC + 16, pinned: true);
        private readonly float[] _b = GC.AllocateUninitializedArray<float>(KC * NR + 16, pinned: true);
        private readonly float[] _tile = GC.AllocateUninitializedArray<float>(Math.Max(MR, Bf16PairsKernels.MR) * NR + 16, pinned: true);

        public float* A => Aligned(_a);
        public float* B => Aligned(_b);
        public float* Tile => Aligned(_tile);

        private static float* Aligned(float[] array)
        {
            var p = (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(array));
            return (float*)(((nint)p + 63) & ~(nint)63);
        }
    }
}
