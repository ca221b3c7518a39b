using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Runahead.Numerics;

/// <summary>
/// Vectorised transcendental functions for the kernels. Vector512.Exp exists in .NET 10 but is far slower than a
/// Cephes-style range reduction + polynomial, which is accurate to ~2 ulp on the range attention and activations use.
/// </summary>
internal static class VectorMath
{
    /// <summary>
    /// e^x with ~2 ulp error for results in the normal range; below it (x &lt; ~-87.3, -inf included) the result is 0, above
    /// ~88.7 it is +inf. Results that would be subnormal are flushed to 0 on purpose: producing a subnormal costs a
    /// microcode assist of ~100+ cycles per instruction on Intel cores, and attention's masked scores (-inf, most of the
    /// score block of TSP's early ranks) would all take it; a term below 1e-38 of the row maximum changes no softmax.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Exp(Vector512<float> x)
    {
        if (Avx512F.IsSupported)
        {
            // vscalefps applies 2^n with IEEE overflow; the clamp keeps the result normal, the mask then zeroes it.
            var underflow = Vector512.LessThan(x, Vector512.Create(SmallestNormalExponent));
            x = Vector512.Max(x, Vector512.Create(SmallestNormalExponent));
            var n = Vector512.Round(x * Vector512.Create(1.44269504088896341f));
            return Vector512.AndNot(Avx512F.Scale(Polynomial(Reduce(x, n)), n), underflow.AsSingle());
        }
        return ExpPortable(x);
    }

    /// <summary>A little above ln 2^-126 (-87.3365, the smallest normal float), so that e^x stays normal despite rounding.</summary>
    private const float SmallestNormalExponent = -87.3f;

    /// <summary>The same e^x without vscalefps (2^n built in the exponent bits); above ~88 it saturates near 2^127.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> ExpPortable(Vector512<float> x)
    {
        var underflow = Vector512.LessThan(x, Vector512.Create(SmallestNormalExponent));
        x = Vector512.Min(x, Vector512.Create(88.02f));
        x = Vector512.Max(x, Vector512.Create(SmallestNormalExponent));
        return Vector512.AndNot(ExpReduced(x, Vector512<float>.Zero), underflow.AsSingle());
    }

    /// <summary>r = x - n ln2 in two FMAs (Cody-Waite split of ln2).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Reduce(Vector512<float> x, Vector512<float> n)
    {
        var r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-0.693359375f), x);
        return Vector512.FusedMultiplyAdd(n, Vector512.Create(2.12194440e-4f), r);
    }

    /// <summary>e^r for |r| &lt;= ln2/2 (Cephes expf minimax coefficients).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Polynomial(Vector512<float> r)
    {
        var p = Vector512.Create(1.9875691500E-4f);
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1.3981999507E-3f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(8.3334519073E-3f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(4.1665795894E-2f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1.6666665459E-1f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(5.0000001201E-1f));
        return Vector512.FusedMultiplyAdd(p * r, r, r) + Vector512<float>.One;
    }

    /// <summary>
    /// e^(a + b) where a is exact and b a correction: n comes from a + b, but r = a - n ln2 + b is formed with a
    /// unrounded, so a large a keeps full accuracy.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> ExpReduced(Vector512<float> a, Vector512<float> b)
    {
        var n = Vector512.Round((a + b) * Vector512.Create(1.44269504088896341f));
        var p = Polynomial(Reduce(a, n) + b);
        var scale = Vector512.ShiftLeft(Vector512.ConvertToInt32(n) + Vector512.Create(127), 23).AsSingle();
        return p * scale;
    }

    /// <summary>
    /// GELU(v) = v/2 erfc(-v/sqrt2) with relative error ~1e-7 (Numerical Recipes' erfc Chebyshev fit, whose
    /// fractional error is below 1.2e-7 everywhere). z^2 = v^2/2 is formed from v exactly (head + FMA tail), because
    /// rounding z = v/sqrt2 first would cost ~1e-5 relative in e^(-z^2) far in the negative tail.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Gelu(Vector512<float> v)
    {
        var z = Vector512.Abs(v) * Vector512.Create(0.70710678118654752f);
        var t = Vector512<float>.One / Vector512.FusedMultiplyAdd(Vector512.Create(0.5f), z, Vector512<float>.One);
        var poly = Vector512.Create(0.17087277f);
        poly = Vector512.FusedMultiplyAdd(poly, t, Vector512.Create(-0.82215223f));
        poly = Vector512.FusedMultiplyAdd(poly, t, Vector512.Create(1.48851587f));
        poly = Vector512.FusedMultiplyAdd(poly, t, Vector512.Create(-1.13520398f));
        poly = Vector512.FusedMultiplyAdd(poly, t, Vector512.Create(0.27886807f));
        poly = Vector512.FusedMultiplyAdd(poly, t, Vector512.Create(-0.18628806f));
        poly = Vector512.FusedMultiplyAdd(poly, t, Vector512.Create(0.09678418f));
        poly = Vector512.FusedMultiplyAdd(poly, t, Vector512.Create(0.37409196f));
        poly = Vector512.FusedMultiplyAdd(poly, t, Vector512.Create(1.00002368f));
        poly = Vector512.FusedMultiplyAdd(poly, t, Vector512.Create(-1.26551223f));
        // erfc(9.1) ~ 1e-37 is the last normal float result: beyond it use 0, and clamp so 2^n stays representable.
        var clamped = Vector512.Min(Vector512.Abs(v), Vector512.Create(12.87f));
        var tiny = Vector512.GreaterThan(Vector512.Abs(v), Vector512.Create(12.87f));
        var vv = clamped * clamped;
        var vvTail = Vector512.FusedMultiplyAdd(clamped, clamped, -vv);
        var half = Vector512.Create(0.5f);
        var r = Vector512.AndNot(t * ExpReduced(-vv * half, poly - vvTail * half), tiny.AsSingle());
        // r = erfc(|v|/sqrt2); erfc(-v/sqrt2) is r for v < 0 and 2 - r for v >= 0.
        var erfc = Vector512.ConditionalSelect(Vector512.LessThan(v, Vector512<float>.Zero), r, Vector512.Create(2f) - r);
        return half * v * erfc;
    }
}
