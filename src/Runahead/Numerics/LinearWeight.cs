using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Runahead.Formats;
using Runahead.Numerics.Jit;

namespace Runahead.Numerics;

/// <summary>
/// The weight of a linear layer, W [out, in] as model files store it, packed once at load for Y = X W^T into panels
/// of 32 output features ([panel][in][32], see <see cref="PackedGemm"/>). F32 and Q8_0 (dequantised while packing)
/// become F32 panels; F16 and BF16 stay 16-bit (half the memory traffic) and are widened inside the GEMM, except BF16
/// where the generated vdpbf16ps kernel is available (<see cref="Bf16Dot"/>): then its panels hold k pairs
/// (<see cref="PanelType.BF16Pairs"/>) and products round the activations to bf16.
/// The panels live either in this object's pinned arrays or in a read-only mapping of a packed-weight cache file
/// (<see cref="Runahead.Models.PackedWeightCache"/>) that several processes share.
/// </summary>
public sealed class LinearWeight
{
    private const int NR = GemmMicroKernels.NR;

    // Pinned-heap arrays: the GEMM reads them through raw pointers from several threads.
    private readonly float[]? _f32;
    private readonly ushort[]? _u16;
    private readonly PanelType _panelType;
    // Shared panels: bytes [_mappedOffset, +MemoryBytes) of a cache file mapping the model owns and outlives us.
    private readonly MappedPanels? _mapped;
    private readonly long _mappedOffset;

    public int OutFeatures { get; }
    public int InFeatures { get; }
    public TensorType StoredType { get; }

    /// <summary>Bytes of the packed panels (what this weight costs in memory; shared with other processes when <see cref="IsMapped"/>).</summary>
    public long MemoryBytes { get; }

    /// <summary>Whether the panels are in a shared read-only mapping (a packed-weight cache) rather than private arrays.</summary>
    public bool IsMapped => _mapped is not null;

    internal PanelType PanelType => _panelType;

    /// <summary>The private panels' bytes (what a packed-weight cache stores); empty for a mapped weight.</summary>
    internal ReadOnlySpan<byte> PrivatePanelBytes =>
        _f32 is not null ? MemoryMarshal.AsBytes(_f32.AsSpan()) : _u16 is not null ? MemoryMarshal.AsBytes(_u16.AsSpan()) : default;

    private LinearWeight(float[]? f32, ushort[]? u16, PanelType panelType, int outFeatures, int inFeatures, TensorType type)
    {
        _f32 = f32;
        _u16 = u16;
        _panelType = panelType;
        OutFeatures = outFeatures;
        InFeatures = inFeatures;
        StoredType = type;
        MemoryBytes = f32 is not null ? (long)f32.Length * 4 : (long)u16!.Length * 2;
    }

    private LinearWeight(MappedPanels mapped, long offset, PanelType panelType, int outFeatures, int inFeatures, TensorType type)
    {
        _mapped = mapped;
        _mappedOffset = offset;
        _panelType = panelType;
        OutFeatures = outFeatures;
        InFeatures = inFeatures;
        StoredType = type;
        MemoryBytes = PackedBytes(panelType, outFeatures, inFeatures);
    }

    /// <summary>
    /// A weight whose panels are the <see cref="PackedBytes"/> bytes at <paramref name="offset"/> (64-byte aligned) of
    /// <paramref name="mapped"/>, laid out exactly as <see cref="FromStored"/> packs them.
    /// </summary>
    internal static LinearWeight FromMapped(MappedPanels mapped, long offset, PanelType panelType, int outFeatures, int inFeatures, TensorType type)
    {
        ArgumentNullException.ThrowIfNull(mapped);
        if (outFeatures < 0 || inFeatures < 0)
            throw new ArgumentOutOfRangeException(nameof(outFeatures), $"weight shape [{outFeatures}, {inFeatures}] is negative");
        if (offset < 0 || offset % 64 != 0) throw new ArgumentOutOfRangeException(nameof(offset), $"panel offset {offset} is not 64-byte aligned");
        return new LinearWeight(mapped, offset, panelType, outFeatures, inFeatures, type);
    }

    /// <summary>Bytes the panels of a [outFeatures, inFeatures] weight take as <paramref name="panelType"/>.</summary>
    internal static long PackedBytes(PanelType panelType, int outFeatures, int inFeatures) => panelType switch
    {
        PanelType.F32 => PackedLength(outFeatures, inFeatures) * 4,
        PanelType.BF16Pairs => PairsLength(outFeatures, inFeatures) * 2,
        _ => PackedLength(outFeatures, inFeatures) * 2,
    };

    /// <summary>Prepares a weight from its stored bytes (row-major [outFeatures, inFeatures]).</summary>
    public static LinearWeight FromStored(ReadOnlySpan<byte> stored, TensorType type, int outFeatures, int inFeatures)
    {
        if (outFeatures < 0 || inFeatures < 0)
            throw new ArgumentOutOfRangeException(nameof(outFeatures), $"weight shape [{outFeatures}, {inFeatures}] is negative");
        int block = TensorTypeInfo.BlockSize(type);
        if (inFeatures % block != 0)
            throw new ArgumentException($"{type} weight rows must be a multiple of {block} elements, got {inFeatures}");
        long need = TensorTypeInfo.ByteSize(type, (long)outFeatures * inFeatures);
        if (need < 0 || stored.Length < need)
            throw new ArgumentException($"{stored.Length} bytes cannot hold a [{outFeatures}, {inFeatures}] {type} weight");
        long packedElements = PackedLength(outFeatures, inFeatures);
        if (packedElements > Array.MaxLength)
            throw new ArgumentException($"a [{outFeatures}, {inFeatures}] weight is too large to pack ({packedElements} elements)");
        switch (type)
        {
            case TensorType.F32:
            {
                var panels = GC.AllocateUninitializedArray<float>((int)packedElements, pinned: true);
                PackRows(MemoryMarshal.Cast<byte, float>(stored), outFeatures, inFeatures, panels);
                return new LinearWeight(panels, null, PanelType.F32, outFeatures, inFeatures, type);
            }
            case TensorType.BF16 when Bf16Dot.Enabled:
            {
                long pairsLength = PairsLength(outFeatures, inFeatures);
                if (pairsLength > Array.MaxLength)
                    throw new ArgumentException($"a [{outFeatures}, {inFeatures}] weight is too large to pack ({pairsLength} elements)");
                var panels = GC.AllocateUninitializedArray<ushort>((int)pairsLength, pinned: true);
                PackPairs(MemoryMarshal.Cast<byte, ushort>(stored), outFeatures, inFeatures, panels);
                return new LinearWeight(null, panels, PanelType.BF16Pairs, outFeatures, inFeatures, type);
            }
            case TensorType.F16:
            case TensorType.BF16:
            {
                var panels = GC.AllocateUninitializedArray<ushort>((int)packedElements, pinned: true);
                PackRows(MemoryMarshal.Cast<byte, ushort>(stored), outFeatures, inFeatures, panels);
                var panelType = type == TensorType.BF16 ? PanelType.BF16 : HasInfOrNaN(panels) ? PanelType.F16 : PanelType.F16Finite;
                return new LinearWeight(null, panels, panelType, outFeatures, inFeatures, type);
            }
            case var q when TensorTypeInfo.IsQuantized(q):
            {
                var panels = GC.AllocateUninitializedArray<float>((int)packedElements, pinned: true);
                int rowBytes = (int)TensorTypeInfo.ByteSize(type, inFeatures);
                var row = new float[inFeatures];
                int panelCount = (outFeatures + NR - 1) / NR;
                for (int o = 0; o < panelCount * NR; o++)
                {
                    if (o < outFeatures) DType.ToFloat32(stored.Slice(o * rowBytes, rowBytes), type, row);
                    else row.AsSpan().Clear();
                    ScatterRow(row, o, inFeatures, panels);
                }
                return new LinearWeight(panels, null, PanelType.F32, outFeatures, inFeatures, type);
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(type), $"unsupported weight type {type}");
        }
    }

    public static LinearWeight FromFloat32(float[] w, int outFeatures, int inFeatures) =>
        FromStored(MemoryMarshal.AsBytes(w.AsSpan()), TensorType.F32, outFeatures, inFeatures);

    /// <summary>y[t, o] = sum_i x[t, i] * W[o, i] for t in [0, tokens).</summary>
    public void Forward(ReadOnlySpan<float> x, int tokens, Span<float> y, ComputePool pool) => Forward(x, tokens, y, pool, addToOutput: false);

    /// <summary>y[t, o] (+)= sum_i x[t, i] * W[o, i]: with <paramref name="addToOutput"/> the product is added to y (a residual add inside the product).</summary>
    public unsafe void Forward(ReadOnlySpan<float> x, int tokens, Span<float> y, ComputePool pool, bool addToOutput)
    {
        ArgumentNullException.ThrowIfNull(pool);
        CheckInput(x, tokens, InFeatures);
        CheckOutput(y, tokens, OutFeatures, nameof(y));
        byte* panels = AcquirePanels();
        try
        {
            fixed (float* xp = x)
            fixed (float* yp = y)
                PackedGemm.Run(xp, tokens, InFeatures, panels, _panelType, OutFeatures, yp, pool, addToOutput);
        }
        finally
        {
            ReleasePanels();
        }
    }

    /// <summary>Whether <paramref name="a"/> and <paramref name="b"/> can share one product group (<see cref="ForwardGroup"/>).</summary>
    internal static bool CanGroup(LinearWeight a, LinearWeight b) => a.InFeatures == b.InFeatures && a._panelType == b._panelType;

    /// <summary>
    /// y_i[t, o] = sum_j x[t, j] * W_i[o, j] for two or three weights over the same activations (Q/K/V, gate/up) as one
    /// product group: one pool dispatch and, for BF16 pairs, one rounding of x instead of one per weight. Results equal
    /// separate <see cref="Forward"/> calls bit for bit. <paramref name="w2"/> null: two weights.
    /// </summary>
    internal static unsafe void ForwardGroup(ReadOnlySpan<float> x, int tokens, LinearWeight w0, Span<float> y0,
        LinearWeight w1, Span<float> y1, LinearWeight? w2, Span<float> y2, ComputePool pool)
    {
        ArgumentNullException.ThrowIfNull(w0);
        ArgumentNullException.ThrowIfNull(w1);
        ArgumentNullException.ThrowIfNull(pool);
        if (!CanGroup(w0, w1) || (w2 is not null && !CanGroup(w0, w2)))
            throw new ArgumentException("grouped weights need the same input width and panel type");
        int k = w0.InFeatures;
        CheckInput(x, tokens, k);
        CheckOutput(y0, tokens, w0.OutFeatures, nameof(y0));
        CheckOutput(y1, tokens, w1.OutFeatures, nameof(y1));
        if (w2 is not null) CheckOutput(y2, tokens, w2.OutFeatures, nameof(y2));
        byte* p0 = null, p1 = null, p2 = null;
        try
        {
            p0 = w0.AcquirePanels();
            p1 = w1.AcquirePanels();
            if (w2 is not null) p2 = w2.AcquirePanels();
            fixed (float* xp = x)
            fixed (float* a = y0)
            fixed (float* b = y1)
            fixed (float* c = y2)
            {
                ReadOnlySpan<GemmOutput> outputs = [new(p0, w0.OutFeatures, a), new(p1, w1.OutFeatures, b), new(p2, w2?.OutFeatures ?? 0, c)];
                PackedGemm.RunGroup(xp, tokens, k, w0._panelType, outputs[..(w2 is null ? 2 : 3)], pool);
            }
        }
        finally
        {
            if (p2 != null) w2!.ReleasePanels();
            if (p1 != null) w1.ReleasePanels();
            if (p0 != null) w0.ReleasePanels();
        }
    }

    /// <summary>Whether <see cref="ForwardSplit"/> can cut the outputs after <paramref name="n0"/> and <paramref name="n0"/> + <paramref name="n1"/> features (panel boundaries).</summary>
    internal bool CanSplit(int n0, int n1) => n0 % NR == 0 && n1 % NR == 0 && n0 >= 0 && n1 >= 0 && (long)n0 + n1 <= OutFeatures;

    /// <summary>
    /// The product of a fused weight (Falcon's Q/K/V rows) written apart: features [0, n0) to <paramref name="y0"/>,
    /// [n0, n0 + n1) to <paramref name="y1"/> and the rest to <paramref name="y2"/>, each with its own row stride, so
    /// no fused buffer is copied apart. The cuts must be on panel boundaries (<see cref="CanSplit"/>).
    /// </summary>
    internal unsafe void ForwardSplit(ReadOnlySpan<float> x, int tokens, int n0, Span<float> y0, int n1, Span<float> y1, Span<float> y2, ComputePool pool)
    {
        ArgumentNullException.ThrowIfNull(pool);
        if (!CanSplit(n0, n1))
            throw new ArgumentException($"cannot cut a weight of {OutFeatures} outputs at {n0} and {n0 + n1} (multiples of {NR} needed)");
        int n2 = OutFeatures - n0 - n1, k = InFeatures;
        CheckInput(x, tokens, k);
        CheckOutput(y0, tokens, n0, nameof(y0));
        CheckOutput(y1, tokens, n1, nameof(y1));
        CheckOutput(y2, tokens, n2, nameof(y2));
        byte* panels = AcquirePanels();
        try
        {
            fixed (float* xp = x)
            fixed (float* a = y0)
            fixed (float* b = y1)
            fixed (float* c = y2)
            {
                ReadOnlySpan<GemmOutput> outputs =
                [
                    new(panels, n0, a),
                    new(panels + PackedBytes(_panelType, n0, k), n1, b),
                    new(panels + PackedBytes(_panelType, n0 + n1, k), n2, c),
                ];
                PackedGemm.RunGroup(xp, tokens, k, _panelType, outputs, pool);
            }
        }
        finally
        {
            ReleasePanels();
        }
    }

    private static void CheckInput(ReadOnlySpan<float> x, int tokens, int k)
    {
        if (tokens < 0) throw new ArgumentOutOfRangeException(nameof(tokens));
        if (x.Length < (long)tokens * k) throw new ArgumentException($"x holds {x.Length} floats, {tokens}x{k} needed", nameof(x));
    }

    private static void CheckOutput(Span<float> y, int tokens, int outFeatures, string name)
    {
        if (y.Length < (long)tokens * outFeatures) throw new ArgumentException($"{name} holds {y.Length} floats, {tokens}x{outFeatures} needed", name);
    }

    /// <summary>
    /// The panels' address until <see cref="ReleasePanels"/>: a mapped weight holds its mapping's pages in place (even if
    /// the model is disposed meanwhile); private panels are on the pinned heap, and ReleasePanels' KeepAlive keeps this
    /// weight, and so them, reachable until the product is done.
    /// </summary>
    private unsafe byte* AcquirePanels()
    {
        if (_mapped is not null) return _mapped.Acquire() + _mappedOffset;
        return _f32 is not null
            ? (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_f32))
            : (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_u16!));
    }

    private void ReleasePanels()
    {
        _mapped?.Release();
        GC.KeepAlive(this);
    }

    private static bool HasInfOrNaN(ushort[] halves)
    {
        foreach (ushort h in halves)
            if ((h & 0x7c00) == 0x7c00) return true;
        return false;
    }

    private static long PackedLength(int outFeatures, int inFeatures) =>
        (long)((outFeatures + NR - 1) / NR) * NR * inFeatures;

    private static long PairsLength(int outFeatures, int inFeatures) =>
        (long)((outFeatures + NR - 1) / NR) * Bf16PairsKernels.PanelLength(inFeatures);

    private static unsafe void PackPairs(ReadOnlySpan<ushort> w, int outFeatures, int inFeatures, ushort[] panels)
    {
        int panelCount = (outFeatures + NR - 1) / NR;
        fixed (ushort* src = w)
        fixed (ushort* dst = panels)
        {
            nint s = (nint)src, d = (nint)dst;
            if (panels.LongLength < 1 << 20)
            {
                for (int p = 0; p < panelCount; p++) Bf16PairsKernels.PackPanel((ushort*)s, (ushort*)d, p, outFeatures, inFeatures);
            }
            else
            {
                Parallel.For(0, panelCount, p => Bf16PairsKernels.PackPanel((ushort*)s, (ushort*)d, p, outFeatures, inFeatures));
            }
        }
    }

    /// <summary>Transposes rows into panels; panels are independent, so large weights are packed in parallel.</summary>
    private static unsafe void PackRows<T>(ReadOnlySpan<T> w, int outFeatures, int inFeatures, T[] panels) where T : unmanaged
    {
        int panelCount = (outFeatures + NR - 1) / NR;
        fixed (T* src = w)
        fixed (T* dst = panels)
        {
            nint s = (nint)src, d = (nint)dst;
            if ((long)panelCount * NR * inFeatures < 1 << 20)
            {
                for (int p = 0; p < panelCount; p++) PackPanel((T*)s, (T*)d, p, outFeatures, inFeatures);
            }
            else
            {
                // Load time only; Parallel.For is fine here (the compute pool is for the hot path).
                Parallel.For(0, panelCount, p => PackPanel((T*)s, (T*)d, p, outFeatures, inFeatures));
            }
        }
    }

    private static unsafe void PackPanel<T>(T* src, T* dst, int panel, int outFeatures, int inFeatures) where T : unmanaged
    {
        T* panelStart = dst + (long)panel * NR * inFeatures;
        for (int c = 0; c < NR; c++)
        {
            int o = panel * NR + c;
            T* d = panelStart + c;
            if (o >= outFeatures)
            {
                for (int i = 0; i < inFeatures; i++) d[(long)i * NR] = default;
                continue;
            }
            T* row = src + (long)o * inFeatures;
            for (int i = 0; i < inFeatures; i++) d[(long)i * NR] = row[i];
        }
    }

    private static void ScatterRow<T>(ReadOnlySpan<T> row, int o, int inFeatures, T[] panels)
    {
        long baseIndex = (long)(o / NR) * NR * inFeatures + o % NR;
        for (int i = 0; i < inFeatures; i++) panels[baseIndex + (long)i * NR] = row[i];
    }
}
