using Runahead.Formats;
using Runahead.Numerics;

namespace Runahead.Tests.Numerics;

public class GemmTests
{
    public static TheoryData<int, int, int, TensorType, int> Cases()
    {
        var data = new TheoryData<int, int, int, TensorType, int>();
        (int m, int n, int k)[] shapes =
        [
            (1, 1, 32), (1, 33, 64), (2, 65, 96), (3, 31, 32), (4, 129, 160), (5, 7, 32),
            (7, 33, 288), (9, 100, 320), (17, 1, 64), (31, 64, 32), (33, 95, 544), (65, 129, 96), (150, 70, 608),
            (300, 70, 320), // several M blocks
        ];
        foreach (var type in new[] { TensorType.F32, TensorType.F16, TensorType.BF16, TensorType.Q8_0 })
            foreach (var (m, n, k) in shapes)
                foreach (int threads in new[] { 1, 2 })
                    data.Add(m, n, k, type, threads);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void PackedMatchesReference(int m, int n, int k, TensorType type, int threads)
    {
        using var pool = new ComputePool(threads);
        Check(m, n, k, type, pool, seed: m * 31 + n * 7 + k);
    }

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(1, 7, 31)]
    [InlineData(6, 33, 7)]
    [InlineData(9, 65, 257)]
    [InlineData(129, 31, 33)]
    public void OddInnerSizesWork(int m, int n, int k)
    {
        using var pool = new ComputePool(2);
        foreach (var type in new[] { TensorType.F32, TensorType.F16, TensorType.BF16 }) Check(m, n, k, type, pool, seed: k);
    }

    [Fact]
    public void LargeWeightsArePackedInParallelCorrectly()
    {
        using var pool = new ComputePool(2);
        Check(2, 1027, 1024, TensorType.F32, pool, seed: 5);
        Check(9, 1027, 1024, TensorType.BF16, pool, seed: 6);
    }

    [Fact]
    public void Vector256FallbackMatchesReference()
    {
        bool saved = GemmMicroKernels.UseVector512;
        GemmMicroKernels.UseVector512 = false;
        try
        {
            using var pool = new ComputePool(2);
            foreach (var type in new[] { TensorType.F32, TensorType.BF16, TensorType.F16 })
            {
                Check(3, 65, 33, type, pool, seed: 1);
                Check(37, 70, 300, type, pool, seed: 2);
            }
        }
        finally
        {
            GemmMicroKernels.UseVector512 = saved;
        }
    }

    [Fact]
    public void ZeroTokensAndZeroInnerDimension()
    {
        var w = LinearWeight.FromFloat32(new float[0], 5, 0);
        var y = Enumerable.Repeat(7f, 10).ToArray();
        w.Forward(ReadOnlySpan<float>.Empty, 2, y, ComputePool.Single);
        Assert.All(y, v => Assert.Equal(0f, v));
        LinearWeight.FromFloat32(new float[15], 5, 3).Forward(ReadOnlySpan<float>.Empty, 0, Span<float>.Empty, ComputePool.Single);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(9)]
    public void F16InfinityAndNaNSurvivePacking(int m)
    {
        const int n = 40, k = 48;
        var halves = new Half[n * k];
        var r = new Random(3);
        for (int i = 0; i < halves.Length; i++) halves[i] = (Half)(r.NextDouble() * 2 - 1);
        halves[0 * k + 5] = Half.PositiveInfinity;
        halves[1 * k + 7] = Half.NaN;
        halves[2 * k + 1] = (Half)6e-8f; // subnormal
        halves[35 * k + 3] = Half.NegativeInfinity;
        var stored = System.Runtime.InteropServices.MemoryMarshal.AsBytes(halves.AsSpan()).ToArray();
        var dense = new float[n * k];
        DType.ToFloat32(stored, TensorType.F16, dense);
        var x = TestData.Floats(m * k, 4);
        for (int i = 0; i < x.Length; i++) x[i] = Math.Abs(x[i]) + 0.1f;
        var expected = new float[m * n];
        GemmReference.Forward(x, dense, expected, m, n, k);
        var actual = new float[m * n];
        LinearWeight.FromStored(stored, TensorType.F16, n, k).Forward(x, m, actual, ComputePool.Single);
        for (int t = 0; t < m; t++)
        {
            Assert.Equal(float.PositiveInfinity, actual[t * n]);
            Assert.True(float.IsNaN(actual[t * n + 1]));
            Assert.Equal(float.NegativeInfinity, actual[t * n + 35]);
            for (int o = 2; o < n; o++)
                if (o != 35) Assert.True(Math.Abs(expected[t * n + o] - actual[t * n + o]) <= 1e-4f, $"[{t},{o}]");
        }
    }

    [Fact]
    public void MemoryBytesCountsPackedPanels()
    {
        var f32 = LinearWeight.FromStored(TestData.Stored(TensorType.F32, 33, 64, 1), TensorType.F32, 33, 64);
        var bf16 = LinearWeight.FromStored(TestData.Stored(TensorType.BF16, 33, 64, 1), TensorType.BF16, 33, 64);
        Assert.Equal(64L * 64 * 4, f32.MemoryBytes);
        Assert.Equal(64L * 64 * 2, bf16.MemoryBytes);
        Assert.Equal(TensorType.BF16, bf16.StoredType);
    }

    [Fact]
    public void ShortBuffersAreRejected()
    {
        Assert.Throws<ArgumentException>(() => LinearWeight.FromStored(new byte[10], TensorType.F32, 2, 2));
        Assert.Throws<ArgumentException>(() => LinearWeight.FromStored(new byte[34], TensorType.Q8_0, 1, 16));
        var w = LinearWeight.FromFloat32(new float[4], 2, 2);
        Assert.Throws<ArgumentException>(() => w.Forward(new float[3], 2, new float[4], ComputePool.Single));
        Assert.Throws<ArgumentException>(() => w.Forward(new float[4], 2, new float[3], ComputePool.Single));
    }

    private static void Check(int m, int n, int k, TensorType type, ComputePool pool, int seed)
    {
        var stored = TestData.Stored(type, n, k, seed);
        var dense = new float[n * k];
        DType.ToFloat32(stored, type, dense);
        var x = TestData.Floats(m * k, seed + 1);
        var expected = new float[m * n];
        GemmReference.Forward(x, dense, expected, m, n, k);
        var scale = new float[m * n];
        for (int t = 0; t < m; t++)
            for (int o = 0; o < n; o++)
            {
                double s = 0;
                for (int i = 0; i < k; i++) s += Math.Abs(x[t * k + i] * dense[o * k + i]);
                scale[t * n + o] = (float)s;
            }
        var weight = LinearWeight.FromStored(stored, type, n, k);
        var actual = new float[m * n];
        weight.Forward(x, m, actual, pool);
        if (!TestData.RoundsActivationsToBf16(weight, m))
        {
            TestData.AssertClose(expected, actual, scale, 1e-5f);
            return;
        }
        // The vdpbf16ps path rounds x to bf16 (relative error <= 2^-9 per element): against full F32 math the error is
        // at most 2^-9 of sum |x w| plus accumulation rounding; against the same product with x rounded it is tight.
        TestData.AssertClose(expected, actual, scale, 1f / 512 + 1e-5f);
        var rounded = TestData.RoundToBf16(x);
        GemmReference.Forward(rounded, dense, expected, m, n, k);
        TestData.AssertClose(expected, actual, scale, 1e-5f);
    }
}

public class DTypeTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(31)]
    [InlineData(32)]
    [InlineData(100)]
    public void Bf16DecodingMatchesScalar(int count)
    {
        var bytes = TestData.Stored(Runahead.Formats.TensorType.BF16, 1, count, count);
        var fast = new float[count];
        DType.ToFloat32(bytes, Runahead.Formats.TensorType.BF16, fast);
        for (int i = 0; i < count; i++)
            Assert.Equal(DType.Bf16ToFloat(BitConverter.ToUInt16(bytes, 2 * i)), fast[i]);
    }
}
