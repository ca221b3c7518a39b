using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Runahead.Numerics;

/// <summary>
/// How a packed weight panel stores its elements and how to widen 32 of them (one panel row) to float.
/// Implemented by structs so each GEMM loop is compiled once per element type with the conversion inlined.
/// </summary>
internal interface IPanelElement
{
    /// <summary>Bytes per stored element.</summary>
    static abstract int Size { get; }

    /// <summary>Loads panel row elements [0, 16) and [16, 32) at <paramref name="p"/> as floats.</summary>
    static abstract unsafe void Load32(byte* p, out Vector512<float> lo, out Vector512<float> hi);

    /// <summary>Loads 8 elements at <paramref name="p"/> as floats (the Vector256 path).</summary>
    static abstract unsafe Vector256<float> Load8(byte* p);
}

internal readonly struct F32Element : IPanelElement
{
    public static int Size => 4;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void Load32(byte* p, out Vector512<float> lo, out Vector512<float> hi)
    {
        lo = Vector512.Load((float*)p);
        hi = Vector512.Load((float*)p + 16);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe Vector256<float> Load8(byte* p) => Vector256.Load((float*)p);
}

/// <summary>bfloat16: the high half of an IEEE float, so widening is a zero-extend and a shift.</summary>
internal readonly struct Bf16Element : IPanelElement
{
    public static int Size => 2;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void Load32(byte* p, out Vector512<float> lo, out Vector512<float> hi)
    {
        var v = Vector512.Load((ushort*)p);
        lo = Vector512.ShiftLeft(Vector512.WidenLower(v), 16).AsSingle();
        hi = Vector512.ShiftLeft(Vector512.WidenUpper(v), 16).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe Vector256<float> Load8(byte* p) =>
        Vector256.ShiftLeft(Vector256.WidenLower(Vector256.Create(Vector128.Load((ushort*)p), Vector128<ushort>.Zero)), 16).AsSingle();
}

/// <summary>
/// IEEE half. .NET 10 exposes no 512-bit vcvtph2ps, so the conversion is done with integer ops: moving the
/// exponent/mantissa into float position and multiplying by 2^112 (float bits 0x77800000) rebiases normals and subnormals alike;
/// Inf/NaN get the float's all-ones exponent.
/// </summary>
internal readonly struct F16Element : IPanelElement
{
    public static int Size => 2;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void Load32(byte* p, out Vector512<float> lo, out Vector512<float> hi)
    {
        var v = Vector512.Load((ushort*)p);
        lo = Widen(Vector512.WidenLower(v));
        hi = Widen(Vector512.WidenUpper(v));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Widen(Vector512<uint> h)
    {
        var em = h & Vector512.Create(0x7fffu);
        var sign = Vector512.ShiftLeft(h & Vector512.Create(0x8000u), 16);
        var scaled = (Vector512.ShiftLeft(em, 13).AsSingle() * Vector512.Create(0x77800000u).AsSingle()).AsUInt32();
        var special = Vector512.GreaterThanOrEqual(em, Vector512.Create(0x7c00u));
        var infNan = Vector512.ShiftLeft(em, 13) | Vector512.Create(0x7f800000u);
        return (Vector512.ConditionalSelect(special, infNan, scaled) | sign).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe Vector256<float> Load8(byte* p)
    {
        var h = Vector256.WidenLower(Vector256.Create(Vector128.Load((ushort*)p), Vector128<ushort>.Zero));
        var em = h & Vector256.Create(0x7fffu);
        var sign = Vector256.ShiftLeft(h & Vector256.Create(0x8000u), 16);
        var scaled = (Vector256.ShiftLeft(em, 13).AsSingle() * Vector256.Create(0x77800000u).AsSingle()).AsUInt32();
        var special = Vector256.GreaterThanOrEqual(em, Vector256.Create(0x7c00u));
        var infNan = Vector256.ShiftLeft(em, 13) | Vector256.Create(0x7f800000u);
        return (Vector256.ConditionalSelect(special, infNan, scaled) | sign).AsSingle();
    }
}

/// <summary>
/// IEEE half for weights known (checked at load) to hold no Inf/NaN: sign-extending to 32 bits and shifting by 13
/// lines sign, exponent and mantissa up with float's; one mask and the 2^112 rebias finish it (normals and
/// subnormals alike), half the work of <see cref="F16Element"/>. The decode loop is bound by this conversion.
/// </summary>
internal readonly struct F16FiniteElement : IPanelElement
{
    public static int Size => 2;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void Load32(byte* p, out Vector512<float> lo, out Vector512<float> hi)
    {
        var v = Vector512.Load((short*)p);
        lo = Widen(Vector512.WidenLower(v));
        hi = Widen(Vector512.WidenUpper(v));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Widen(Vector512<int> h) =>
        (Vector512.ShiftLeft(h, 13) & Vector512.Create(unchecked((int)0x8FFFE000))).AsSingle() * Vector512.Create(0x77800000).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe Vector256<float> Load8(byte* p) => F16Element.Load8(p);
}
