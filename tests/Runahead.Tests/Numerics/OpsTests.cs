using Runahead.Models;
using Runahead.Numerics;

namespace Runahead.Tests.Numerics;

public class OpsTests
{
    public static TheoryData<int> Widths() => [1, 7, 16, 31, 33, 65, 129, 2048];

    [Theory]
    [MemberData(nameof(Widths))]
    public void RmsNormMatchesReference(int width)
    {
        const int tokens = 3;
        var x = TestData.Floats(tokens * width, width, 3f);
        var w = TestData.Floats(width, width + 1);
        var expected = new float[x.Length];
        var actual = new float[x.Length];
        OpsReference.RmsNorm(x, w, expected, tokens, width, 1e-5f);
        Ops.RmsNorm(x, w, actual, tokens, width, 1e-5f);
        TestData.AssertClose(expected, actual, ReadOnlySpan<float>.Empty, 1e-5f, 1e-6f);
    }

    [Theory]
    [MemberData(nameof(Widths))]
    public void LayerNormMatchesReference(int width)
    {
        const int tokens = 3;
        var x = TestData.Floats(tokens * width, width, 3f);
        for (int i = 0; i < x.Length; i++) x[i] += 5f; // an offset mean exercises the two-pass variance
        var w = TestData.Floats(width, width + 1);
        var b = TestData.Floats(width, width + 2);
        foreach (var bias in new[] { b, [] })
        {
            var expected = new float[x.Length];
            var actual = new float[x.Length];
            OpsReference.LayerNorm(x, w, bias, expected, tokens, width, 1e-5f);
            Ops.LayerNorm(x, w, bias, actual, tokens, width, 1e-5f);
            TestData.AssertClose(expected, actual, ReadOnlySpan<float>.Empty, 2e-5f, 2e-5f);
        }
    }

    [Theory]
    [InlineData(2, RopeStyle.Interleaved)]
    [InlineData(8, RopeStyle.Interleaved)]
    [InlineData(24, RopeStyle.Interleaved)]
    [InlineData(64, RopeStyle.Interleaved)]
    [InlineData(128, RopeStyle.Interleaved)]
    [InlineData(2, RopeStyle.NeoX)]
    [InlineData(8, RopeStyle.NeoX)]
    [InlineData(24, RopeStyle.NeoX)]
    [InlineData(64, RopeStyle.NeoX)]
    [InlineData(128, RopeStyle.NeoX)]
    public void RopeMatchesReference(int headDim, RopeStyle style)
    {
        const int tokens = 5, heads = 3;
        foreach (int start in new[] { 0, 17, 4000, RopeTable.MaxCachedPositions - 2 })
        {
            var expected = TestData.Floats(tokens * heads * headDim, headDim + start);
            var actual = (float[])expected.Clone();
            OpsReference.Rope(expected, tokens, heads, headDim, start, 10000f, style);
            Ops.Rope(actual, tokens, heads, headDim, start, 10000f, style);
            TestData.AssertClose(expected, actual, ReadOnlySpan<float>.Empty, 1e-6f, 1e-6f);
        }
    }

    [Fact]
    public void SwiGluAndSiluMatchReference()
    {
        var gate = TestData.Floats(301, 1, 20f);
        gate[0] = -100f; gate[1] = 100f; gate[2] = 0f;
        var up = TestData.Floats(301, 2);
        var expected = (float[])gate.Clone();
        var actual = (float[])gate.Clone();
        OpsReference.SwiGlu(expected, up);
        Ops.SwiGlu(actual, up);
        TestData.AssertClose(expected, actual, ReadOnlySpan<float>.Empty, 1e-6f, 1e-30f);

        var silu = (float[])gate.Clone();
        Ops.Silu(silu);
        for (int i = 0; i < gate.Length; i++)
            Assert.True(Math.Abs(silu[i] - gate[i] / (1 + Math.Exp(-gate[i]))) <= 1e-6 * Math.Abs(silu[i]) + 1e-30, $"silu({gate[i]})");
    }

    [Fact]
    public void GeluIsAccurateRelativeToExactErf()
    {
        // Dense grid over where GELU is not ~0 or ~x, plus the tails.
        var x = new float[4001];
        for (int i = 0; i < x.Length; i++) x[i] = -10f + i * 0.005f;
        var y = (float[])x.Clone();
        Ops.Gelu(y);
        for (int i = 0; i < x.Length; i++)
        {
            double exact = 0.5 * x[i] * ErfcHighPrecision(-x[i] / Math.Sqrt(2));
            Assert.True(Math.Abs(y[i] - exact) <= 1e-6 * Math.Abs(exact) + 1e-30, $"gelu({x[i]}) = {y[i]}, exact {exact}");
        }
        var reference = new float[] { -3f, -0.5f, 0f, 0.5f, 3f };
        var fast = (float[])reference.Clone();
        OpsReference.Gelu(reference);
        Ops.Gelu(fast);
        TestData.AssertClose(reference, fast, ReadOnlySpan<float>.Empty, 1e-6f, 1e-7f);
    }

    [Theory]
    [MemberData(nameof(Widths))]
    public void SoftmaxMatchesReference(int width)
    {
        var x = TestData.Floats(width, width, 10f);
        var expected = (float[])x.Clone();
        var actual = (float[])x.Clone();
        OpsReference.Softmax(expected);
        Ops.Softmax(actual);
        TestData.AssertClose(expected, actual, ReadOnlySpan<float>.Empty, 1e-5f, 1e-9f);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void PoolOverloadsGiveIdenticalResults(int threads)
    {
        using var pool = new ComputePool(threads);
        foreach (var (tokens, width) in new[] { (1, 64), (37, 1024), (130, 2048) })
        {
            var x = TestData.Floats(tokens * width, tokens, 3f);
            var w = TestData.Floats(width, 1);
            var serial = new float[x.Length];
            var parallel = new float[x.Length];
            Ops.RmsNorm(x, w, serial, tokens, width, 1e-5f);
            Ops.RmsNorm(x, w, parallel, tokens, width, 1e-5f, pool);
            Assert.Equal(serial, parallel);

            Ops.Rope(serial, tokens, width / 64, 64, 5, 10000f, RopeStyle.NeoX);
            Ops.Rope(parallel, tokens, width / 64, 64, 5, 10000f, RopeStyle.NeoX, pool);
            Assert.Equal(serial, parallel);

            var up = TestData.Floats(x.Length, 2);
            Ops.SwiGlu(serial, up);
            Ops.SwiGlu(parallel, up, pool);
            Assert.Equal(serial, parallel);

            Ops.Gelu(serial);
            Ops.Gelu(parallel, pool);
            Assert.Equal(serial, parallel);

            foreach (var bias in new[] { TestData.Floats(width, 3), [] })
            {
                Ops.LayerNorm(x, w, bias, serial, tokens, width, 1e-5f);
                Ops.LayerNorm(x, w, bias, parallel, tokens, width, 1e-5f, pool);
                Assert.Equal(serial, parallel);
            }
        }
    }

    /// <summary>erfc by its continued fraction (large z) or series (small z), in double: an independent oracle.</summary>
    private static double ErfcHighPrecision(double z)
    {
        if (z < 0) return 2 - ErfcHighPrecision(-z);
        if (z < 3)
        {
            // erf(z) = 2/sqrt(pi) * sum (-1)^n z^(2n+1) / (n! (2n+1))
            double sum = 0, term = z;
            for (int n = 0; n < 200; n++)
            {
                sum += term / (2 * n + 1);
                term *= -z * z / (n + 1);
            }
            return 1 - 2 / Math.Sqrt(Math.PI) * sum;
        }
        double f = 0;
        for (int n = 200; n >= 1; n--) f = n / 2.0 / (z + f);
        return Math.Exp(-z * z) / Math.Sqrt(Math.PI) / (z + f);
    }
}
