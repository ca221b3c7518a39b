using Runahead.Formats;
using Runahead.Models;
using Runahead.Numerics;
using Runahead.Numerics.Jit;

namespace Runahead.Tests.Numerics;

/// <summary>Products that add to their output (the residual adds folded into the output and down projections).</summary>
public class GemmAddToOutputTests
{
    public static TheoryData<TensorType, int> Types()
    {
        var data = new TheoryData<TensorType, int>();
        foreach (var type in new[] { TensorType.F32, TensorType.F16, TensorType.BF16, TensorType.Q8_0 })
            foreach (int threads in new[] { 1, 2 })
                data.Add(type, threads);
        return data;
    }

    [Theory]
    [MemberData(nameof(Types))]
    public void AddingEqualsProductPlusOutput(TensorType type, int threads)
    {
        using var pool = new ComputePool(threads);
        (int m, int n, int k)[] shapes = [(1, 33, 64), (3, 64, 96), (4, 7, 32), (5, 70, 288), (29, 65, 544), (300, 96, 608)];
        int seed = 40;
        foreach (var (m, n, k) in shapes) Check(type, m, n, k, pool, seed++);
    }

    [Theory]
    [InlineData(1, 7, 31)]
    [InlineData(17, 33, 257)]
    public void OddInnerSizes(int m, int n, int k)
    {
        using var pool = new ComputePool(2);
        foreach (var type in new[] { TensorType.F32, TensorType.F16, TensorType.BF16 }) Check(type, m, n, k, pool, seed: k);
    }

    [SkippableFact]
    public void PairsProductsAddOverSeveralRowPasses()
    {
        Skip.IfNot(Bf16Dot.Enabled, "no AVX512_BF16 kernel here: " + Bf16Dot.Status);
        long saved = PackedGemm.PairsBufferBytes;
        PackedGemm.PairsBufferBytes = 1;
        try
        {
            using var pool = new ComputePool(2);
            Check(TensorType.BF16, 100, 70, 600, pool, seed: 9);
        }
        finally
        {
            PackedGemm.PairsBufferBytes = saved;
        }
    }

    [Fact]
    public void ZeroInnerDimensionLeavesTheOutput()
    {
        var w = LinearWeight.FromFloat32([], 5, 0);
        var y = Enumerable.Repeat(7f, 10).ToArray();
        w.Forward(ReadOnlySpan<float>.Empty, 2, y, ComputePool.Single, addToOutput: true);
        Assert.All(y, v => Assert.Equal(7f, v));
    }

    [Fact]
    public void LinearAddsProductAndBias()
    {
        using var pool = new ComputePool(2);
        const int m = 11, n = 40, k = 48;
        var linear = new Linear(LinearWeight.FromFloat32(TestData.Floats(n * k, 1), n, k), TestData.Floats(n, 2));
        var x = TestData.Floats(m * k, 3);
        var residual = TestData.Floats(m * n, 4);
        var expected = new float[m * n];
        linear.Forward(x, m, expected, pool);
        for (int i = 0; i < expected.Length; i++) expected[i] += residual[i];
        var actual = (float[])residual.Clone();
        linear.ForwardAdd(x, m, actual, pool);
        TestData.AssertClose(expected, actual, Enumerable.Repeat(1f, expected.Length).ToArray(), 1e-5f);
    }

    /// <summary>y0 + X W^T against the reference product added to y0 (the order of the additions differs, so not bit for bit).</summary>
    private static void Check(TensorType type, int m, int n, int k, ComputePool pool, int seed)
    {
        if (type == TensorType.Q8_0) k = (k + 31) / 32 * 32;
        var stored = TestData.Stored(type, n, k, seed);
        var weight = LinearWeight.FromStored(stored, type, n, k);
        var dense = new float[n * k];
        DType.ToFloat32(stored, type, dense);
        var x = TestData.Floats(m * k, seed + 1);
        var input = TestData.RoundsActivationsToBf16(weight, m) ? TestData.RoundToBf16(x) : x;
        var start = TestData.Floats(m * n, seed + 2, scale: 4f);
        var expected = new float[m * n];
        GemmReference.Forward(input, dense, expected, m, n, k);
        var scale = TestData.AbsScale(input, dense, m, n, k);
        for (int i = 0; i < expected.Length; i++)
        {
            expected[i] += start[i];
            scale[i] += Math.Abs(start[i]);
        }
        var actual = (float[])start.Clone();
        weight.Forward(x, m, actual, pool, addToOutput: true);
        TestData.AssertClose(expected, actual, scale, 1e-5f);
    }
}
