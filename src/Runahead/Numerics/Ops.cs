using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Runahead.Models;

namespace Runahead.Numerics;

/// <summary>
/// Row-wise operations on [tokens, width] activations, vectorised (TensorPrimitives where it has the operation).
/// <see cref="OpsReference"/> holds the plain definitions.
/// </summary>
public static class Ops
{
    private const int V = 16;

    /// <summary>out[t] = x[t] / rms(x[t]) * weight.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void RmsNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, Span<float> output, int tokens, int width, float eps)
    {
        CheckRows(x.Length, output.Length, tokens, width);
        if (weight.Length < width) throw new ArgumentException($"weight holds {weight.Length} floats, {width} needed", nameof(weight));
        for (int t = 0; t < tokens; t++)
        {
            var xr = x.Slice(t * width, width);
            float scale = 1f / MathF.Sqrt(TensorPrimitives.SumOfSquares(xr) / width + eps);
            ScaleMultiply(xr, scale, weight[..width], output.Slice(t * width, width));
        }
    }

    /// <summary>RMSNorm with the tokens split over <paramref name="pool"/> (worth it from ~32K elements).</summary>
    public static unsafe void RmsNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, Span<float> output, int tokens, int width, float eps, ComputePool pool)
    {
        ArgumentNullException.ThrowIfNull(pool);
        CheckRows(x.Length, output.Length, tokens, width);
        if (weight.Length < width) throw new ArgumentException($"weight holds {weight.Length} floats, {width} needed", nameof(weight));
        if (pool.Threads == 1 || (long)tokens * width < ParallelOps.MinParallelElements || tokens < 2)
        {
            RmsNorm(x, weight, output, tokens, width, eps);
            return;
        }
        fixed (float* xp = x)
        fixed (float* wp = weight)
        fixed (float* op = output)
        {
            ParallelOps.RmsNorm(xp, wp, op, tokens, width, eps, pool);
        }
    }

    /// <summary>out[t] = (x[t] - mean) / sqrt(var + eps) * weight + bias (bias may be empty).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void LayerNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, Span<float> output, int tokens, int width, float eps)
    {
        CheckRows(x.Length, output.Length, tokens, width);
        if (weight.Length < width) throw new ArgumentException($"weight holds {weight.Length} floats, {width} needed", nameof(weight));
        if (!bias.IsEmpty && bias.Length < width) throw new ArgumentException($"bias holds {bias.Length} floats, {width} needed", nameof(bias));
        for (int t = 0; t < tokens; t++)
        {
            var xr = x.Slice(t * width, width);
            var o = output.Slice(t * width, width);
            float mean = TensorPrimitives.Sum(xr) / width;
            // Two-pass variance: the one-pass E[x^2] - mean^2 loses digits when |mean| >> std.
            TensorPrimitives.Subtract(xr, mean, o);
            float inv = 1f / MathF.Sqrt(TensorPrimitives.SumOfSquares(o) / width + eps);
            ScaleMultiply(o, inv, weight[..width], o);
            if (!bias.IsEmpty) TensorPrimitives.Add(o, bias[..width], o);
        }
    }

    /// <summary>LayerNorm with the tokens split over <paramref name="pool"/> (bias may be empty).</summary>
    public static unsafe void LayerNorm(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, Span<float> output,
        int tokens, int width, float eps, ComputePool pool)
    {
        ArgumentNullException.ThrowIfNull(pool);
        CheckRows(x.Length, output.Length, tokens, width);
        if (weight.Length < width) throw new ArgumentException($"weight holds {weight.Length} floats, {width} needed", nameof(weight));
        if (!bias.IsEmpty && bias.Length < width) throw new ArgumentException($"bias holds {bias.Length} floats, {width} needed", nameof(bias));
        if (pool.Threads == 1 || (long)tokens * width < ParallelOps.MinParallelElements || tokens < 2)
        {
            LayerNorm(x, weight, bias, output, tokens, width, eps);
            return;
        }
        fixed (float* xp = x)
        fixed (float* wp = weight)
        fixed (float* bp = bias)
        fixed (float* op = output)
        {
            ParallelOps.LayerNorm(xp, wp, bias.IsEmpty ? null : bp, op, tokens, width, eps, pool);
        }
    }

    /// <summary>o[i] = x[i] * scale * w[i] (the reference's rounding order).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ScaleMultiply(ReadOnlySpan<float> x, float scale, ReadOnlySpan<float> w, Span<float> o)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var s = Vector512.Create(scale);
            ref float xr = ref MemoryMarshal.GetReference(x), wr = ref MemoryMarshal.GetReference(w), orf = ref MemoryMarshal.GetReference(o);
            for (; i + V <= x.Length; i += V)
                (Vector512.LoadUnsafe(ref xr, (nuint)i) * s * Vector512.LoadUnsafe(ref wr, (nuint)i)).StoreUnsafe(ref orf, (nuint)i);
        }
        for (; i < x.Length; i++) o[i] = x[i] * scale * w[i];
    }

    /// <summary>
    /// Rotates heads of x ([tokens, heads * headDim]) in place; token t is at global position startPos + t.
    /// cos/sin come from a per-(theta, headDim) table computed once in double precision.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Rope(Span<float> x, int tokens, int heads, int headDim, int startPos, float theta, RopeStyle style)
    {
        if (headDim < 2 || headDim % 2 != 0) throw new ArgumentException($"RoPE needs an even head size, got {headDim}", nameof(headDim));
        if (startPos < 0 || (long)startPos + tokens > int.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(startPos), $"positions [{startPos}, {(long)startPos + tokens}) are out of range");
        if (x.Length < (long)tokens * heads * headDim) throw new ArgumentException($"x holds {x.Length} floats, {tokens}x{heads}x{headDim} needed", nameof(x));
        int half = headDim / 2;
        var table = RopeTable.For(theta, headDim);
        float[]? rented = null;
        for (int t = 0; t < tokens; t++)
        {
            int pos = startPos + t;
            ReadOnlySpan<float> cos, sin;
            if (!table.TryGet(pos, out cos, out sin))
            {
                rented ??= System.Buffers.ArrayPool<float>.Shared.Rent(headDim);
                table.Compute(pos, rented.AsSpan(0, half), rented.AsSpan(half, half));
                cos = rented.AsSpan(0, half);
                sin = rented.AsSpan(half, half);
            }
            for (int h = 0; h < heads; h++)
            {
                var head = x.Slice((t * heads + h) * headDim, headDim);
                if (style == RopeStyle.NeoX) RotateHalves(head, cos, sin);
                else RotatePairs(head, cos, sin);
            }
        }
        if (rented is not null) System.Buffers.ArrayPool<float>.Shared.Return(rented);
    }

    /// <summary>RoPE with the tokens split over <paramref name="pool"/>.</summary>
    public static unsafe void Rope(Span<float> x, int tokens, int heads, int headDim, int startPos, float theta, RopeStyle style, ComputePool pool)
    {
        ArgumentNullException.ThrowIfNull(pool);
        if (pool.Threads == 1 || (long)tokens * heads * headDim < ParallelOps.MinParallelElements || tokens < 2)
        {
            Rope(x, tokens, heads, headDim, startPos, theta, style);
            return;
        }
        if (headDim < 2 || headDim % 2 != 0) throw new ArgumentException($"RoPE needs an even head size, got {headDim}", nameof(headDim));
        if (startPos < 0 || (long)startPos + tokens > int.MaxValue) throw new ArgumentOutOfRangeException(nameof(startPos), $"positions [{startPos}, {(long)startPos + tokens}) are out of range");
        if (x.Length < (long)tokens * heads * headDim) throw new ArgumentException($"x holds {x.Length} floats, {tokens}x{heads}x{headDim} needed", nameof(x));
        fixed (float* xp = x)
        {
            ParallelOps.Rope(xp, tokens, heads, headDim, startPos, theta, style, pool);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RotateHalves(Span<float> head, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin)
    {
        int half = cos.Length;
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            ref float h = ref MemoryMarshal.GetReference(head);
            ref float c = ref MemoryMarshal.GetReference(cos), s = ref MemoryMarshal.GetReference(sin);
            for (; i + V <= half; i += V)
            {
                var a0 = Vector512.LoadUnsafe(ref h, (nuint)i);
                var a1 = Vector512.LoadUnsafe(ref h, (nuint)(i + half));
                var cv = Vector512.LoadUnsafe(ref c, (nuint)i);
                var sv = Vector512.LoadUnsafe(ref s, (nuint)i);
                (a0 * cv - a1 * sv).StoreUnsafe(ref h, (nuint)i);
                (a0 * sv + a1 * cv).StoreUnsafe(ref h, (nuint)(i + half));
            }
        }
        for (; i < half; i++)
        {
            float a0 = head[i], a1 = head[i + half];
            head[i] = a0 * cos[i] - a1 * sin[i];
            head[i + half] = a0 * sin[i] + a1 * cos[i];
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RotatePairs(Span<float> head, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin)
    {
        int half = cos.Length;
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            ref float h = ref MemoryMarshal.GetReference(head);
            ref float c = ref MemoryMarshal.GetReference(cos), s = ref MemoryMarshal.GetReference(sin);
            var dup = Vector512.Create(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
            var swap = Vector512.Create(1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
            var sign = Vector512.Create(-1f, 1f, -1f, 1f, -1f, 1f, -1f, 1f, -1f, 1f, -1f, 1f, -1f, 1f, -1f, 1f);
            // 8 pairs per vector: element 2i gets a0 c - a1 s, element 2i+1 gets a1 c + a0 s.
            for (; i + 8 <= half; i += 8)
            {
                var a = Vector512.LoadUnsafe(ref h, (nuint)(2 * i));
                var cv = Vector512.Shuffle(Vector512.Create(Vector256.LoadUnsafe(ref c, (nuint)i), Vector256<float>.Zero), dup);
                var sv = Vector512.Shuffle(Vector512.Create(Vector256.LoadUnsafe(ref s, (nuint)i), Vector256<float>.Zero), dup) * sign;
                (a * cv + Vector512.Shuffle(a, swap) * sv).StoreUnsafe(ref h, (nuint)(2 * i));
            }
        }
        for (; i < half; i++)
        {
            float a0 = head[2 * i], a1 = head[2 * i + 1];
            head[2 * i] = a0 * cos[i] - a1 * sin[i];
            head[2 * i + 1] = a0 * sin[i] + a1 * cos[i];
        }
    }

    /// <summary>gate[i] = silu(gate[i]) * up[i].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void SwiGlu(Span<float> gate, ReadOnlySpan<float> up)
    {
        if (up.Length < gate.Length) throw new ArgumentException($"up holds {up.Length} floats, {gate.Length} needed", nameof(up));
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            ref float g = ref MemoryMarshal.GetReference(gate);
            ref float u = ref MemoryMarshal.GetReference(up);
            for (; i + V <= gate.Length; i += V)
            {
                var x = Vector512.LoadUnsafe(ref g, (nuint)i);
                (x / (Vector512<float>.One + VectorMath.Exp(-x)) * Vector512.LoadUnsafe(ref u, (nuint)i)).StoreUnsafe(ref g, (nuint)i);
            }
        }
        for (; i < gate.Length; i++)
        {
            float x = gate[i];
            gate[i] = x / (1f + MathF.Exp(-x)) * up[i];
        }
    }

    /// <summary>SwiGLU with the elements split over <paramref name="pool"/>.</summary>
    public static unsafe void SwiGlu(Span<float> gate, ReadOnlySpan<float> up, ComputePool pool)
    {
        ArgumentNullException.ThrowIfNull(pool);
        if (pool.Threads == 1 || gate.Length < ParallelOps.MinParallelElements)
        {
            SwiGlu(gate, up);
            return;
        }
        if (up.Length < gate.Length) throw new ArgumentException($"up holds {up.Length} floats, {gate.Length} needed", nameof(up));
        fixed (float* g = gate)
        fixed (float* u = up)
        {
            ParallelOps.SwiGlu(g, u, gate.Length, pool);
        }
    }

    /// <summary>x[i] = silu(x[i]) = x / (1 + e^-x).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Silu(Span<float> x)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            ref float g = ref MemoryMarshal.GetReference(x);
            for (; i + V <= x.Length; i += V)
            {
                var v = Vector512.LoadUnsafe(ref g, (nuint)i);
                (v / (Vector512<float>.One + VectorMath.Exp(-v))).StoreUnsafe(ref g, (nuint)i);
            }
        }
        for (; i < x.Length; i++) x[i] = x[i] / (1f + MathF.Exp(-x[i]));
    }

    /// <summary>Exact GELU (erf form), as Hugging Face's "gelu": 0.5 x erfc(-x / sqrt 2), accurate to ~1e-7 relative.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Gelu(Span<float> x)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            ref float r = ref MemoryMarshal.GetReference(x);
            for (; i + V <= x.Length; i += V)
            {
                var v = Vector512.LoadUnsafe(ref r, (nuint)i);
                VectorMath.Gelu(v).StoreUnsafe(ref r, (nuint)i);
            }
        }
        for (; i < x.Length; i++) x[i] = (float)(0.5 * x[i] * Erfc(-x[i] / Math.Sqrt(2.0)));
    }

    /// <summary>GELU with the elements split over <paramref name="pool"/>.</summary>
    public static unsafe void Gelu(Span<float> x, ComputePool pool)
    {
        ArgumentNullException.ThrowIfNull(pool);
        if (pool.Threads == 1 || x.Length < ParallelOps.MinParallelElements)
        {
            Gelu(x);
            return;
        }
        fixed (float* p = x)
        {
            ParallelOps.Gelu(p, x.Length, pool);
        }
    }

    /// <summary>
    /// erfc with fractional error &lt; 1.2e-7 everywhere (Numerical Recipes' Chebyshev fit): unlike 1 + erf(x) it keeps
    /// relative accuracy in the negative tail, where GELU is tiny.
    /// </summary>
    private static double Erfc(double x)
    {
        double z = Math.Abs(x);
        double t = 1.0 / (1.0 + 0.5 * z);
        double r = t * Math.Exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
            t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
        return x >= 0 ? r : 2 - r;
    }

    /// <summary>erf with |error| &lt; 1.2e-7 (Numerical Recipes erfc Chebyshev fit).</summary>
    public static double Erf(double x) => OpsReference.Erf(x);

    /// <summary>In-place softmax; an all -inf input gives NaN, as the definition does.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Softmax(Span<float> x)
    {
        if (x.IsEmpty) return;
        float max = TensorPrimitives.Max(x);
        float sum = 0;
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            ref float r = ref MemoryMarshal.GetReference(x);
            var m = Vector512.Create(max);
            var acc = Vector512<float>.Zero;
            for (; i + V <= x.Length; i += V)
            {
                var e = VectorMath.Exp(Vector512.LoadUnsafe(ref r, (nuint)i) - m);
                e.StoreUnsafe(ref r, (nuint)i);
                acc += e;
            }
            sum = Vector512.Sum(acc);
        }
        for (; i < x.Length; i++)
        {
            x[i] = MathF.Exp(x[i] - max);
            sum += x[i];
        }
        TensorPrimitives.Multiply(x, 1f / sum, x);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void CheckRows(int xLength, int outLength, int tokens, int width)
    {
        long need = (long)tokens * width;
        if (tokens < 0 || width < 0) throw new ArgumentOutOfRangeException(nameof(tokens), $"shape [{tokens}, {width}] is negative");
        if (xLength < need) throw new ArgumentException($"x holds {xLength} floats, {tokens}x{width} needed");
        if (outLength < need) throw new ArgumentException($"output holds {outLength} floats, {tokens}x{width} needed");
    }
}
