using Runahead.Formats;
using Runahead.Models;
using Runahead.Numerics;
using Runahead.Numerics.Jit;

namespace Runahead.Tests.Numerics;

/// <summary>Product groups (Q/K/V, gate/up over one input) give exactly the products of separate calls.</summary>
public class GroupedGemmTests
{
    public static TheoryData<TensorType, int> Types()
    {
        var data = new TheoryData<TensorType, int>();
        foreach (var type in new[] { TensorType.F32, TensorType.F16, TensorType.BF16, TensorType.Q8_0 })
            foreach (int threads in new[] { 1, 2, 3 })
                data.Add(type, threads);
        return data;
    }

    // (m, widths..., k): odd widths (partial panels), an empty output, decode sizes (m <= 4), several M blocks.
    private static readonly (int M, int[] N, int K)[] Shapes =
    [
        (1, [33, 7, 65], 96), (3, [1, 31], 32), (4, [64, 32, 32], 160), (5, [70, 0, 33], 64), (17, [100, 9], 320),
        (40, [96, 32, 32], 288), (150, [70, 33, 33], 608), (300, [65, 129], 96), (531, [64, 32, 32], 544),
    ];

    [Theory]
    [MemberData(nameof(Types))]
    public void GroupsEqualSeparateProducts(TensorType type, int threads)
    {
        using var pool = new ComputePool(threads);
        int seed = 1;
        foreach (var (m, widths, k) in Shapes) CheckGroup(type, m, widths, k, pool, seed++);
    }

    [Theory]
    [InlineData(1, 7, 31)]
    [InlineData(6, 33, 7)]
    [InlineData(29, 65, 257)]
    public void OddInnerSizes(int m, int n, int k)
    {
        using var pool = new ComputePool(2);
        foreach (var type in new[] { TensorType.F32, TensorType.F16, TensorType.BF16 }) CheckGroup(type, m, [n, n / 2 + 1, 3], k, pool, seed: k);
    }

    [Fact]
    public void Vector256KernelsGroupToo()
    {
        bool saved = GemmMicroKernels.UseVector512;
        GemmMicroKernels.UseVector512 = false;
        try
        {
            using var pool = new ComputePool(2);
            foreach (var type in new[] { TensorType.F32, TensorType.BF16, TensorType.F16 })
            {
                CheckGroup(type, 3, [65, 33], 33, pool, seed: 1);
                CheckGroup(type, 37, [70, 32, 5], 300, pool, seed: 2);
            }
        }
        finally
        {
            GemmMicroKernels.UseVector512 = saved;
        }
    }

    [SkippableTheory]
    [InlineData(1)]
    [InlineData(2)]
    public void PairsGroupsOverSeveralRowPasses(int threads)
    {
        Skip.IfNot(Bf16Dot.Enabled, "no AVX512_BF16 kernel here: " + Bf16Dot.Status);
        long saved = PackedGemm.PairsBufferBytes;
        // One 14-row micro-panel per pass at most: every pass must move each output's rows on by its own width.
        PackedGemm.PairsBufferBytes = 1;
        try
        {
            using var pool = new ComputePool(threads);
            CheckGroup(TensorType.BF16, 300, [70, 33, 32], 600, pool, seed: 3);
        }
        finally
        {
            PackedGemm.PairsBufferBytes = saved;
        }
    }

    [Theory]
    [MemberData(nameof(Types))]
    public void SplitOutputsEqualTheFusedProduct(TensorType type, int threads)
    {
        using var pool = new ComputePool(threads);
        // (m, n0, n1, rest, k): cuts on panel boundaries, an odd rest, an empty middle part, decode and prefill sizes.
        (int m, int n0, int n1, int rest, int k)[] shapes =
            [(1, 64, 32, 32, 96), (3, 32, 0, 37, 64), (5, 96, 32, 32, 288), (40, 64, 64, 5, 257), (300, 128, 32, 32, 320)];
        int seed = 70;
        foreach (var (m, n0, n1, rest, k0) in shapes)
        {
            int k = type == TensorType.Q8_0 ? (k0 + 31) / 32 * 32 : k0, n = n0 + n1 + rest;
            var weight = LinearWeight.FromStored(TestData.Stored(type, n, k, seed), type, n, k);
            var x = TestData.Floats(m * k, seed + 1);
            seed += 2;
            var fused = new float[m * n];
            weight.Forward(x, m, fused, pool);
            Assert.True(weight.CanSplit(n0, n1));
            var parts = new[] { new float[m * n0], new float[m * n1], new float[m * rest] };
            weight.ForwardSplit(x, m, n0, parts[0], n1, parts[1], parts[2], pool);
            int[] starts = [0, n0, n0 + n1], widths = [n0, n1, rest];
            for (int part = 0; part < 3; part++)
                for (int t = 0; t < m; t++)
                    Assert.True(fused.AsSpan(t * n + starts[part], widths[part]).SequenceEqual(parts[part].AsSpan(t * widths[part], widths[part])),
                        $"{type}, m {m}, k {k}, part {part}, row {t}: split output differs from the fused product");
        }
    }

    [Fact]
    public void SplitsOnlyOnPanelBoundaries()
    {
        var w = LinearWeight.FromFloat32(new float[100 * 8], 100, 8);
        Assert.False(w.CanSplit(48, 32));
        Assert.False(w.CanSplit(32, 16));
        Assert.False(w.CanSplit(64, 64));
        Assert.Throws<ArgumentException>(() => w.ForwardSplit(new float[8], 1, 48, new float[48], 32, new float[32], new float[20], ComputePool.Single));
    }

    [Fact]
    public void MismatchedWeightsAreNotGrouped()
    {
        var a = LinearWeight.FromFloat32(new float[4 * 8], 4, 8);
        var b = LinearWeight.FromFloat32(new float[4 * 6], 4, 6);
        var c = LinearWeight.FromStored(TestData.Stored(TensorType.BF16, 4, 8, 1), TensorType.BF16, 4, 8);
        Assert.True(LinearWeight.CanGroup(a, a));
        Assert.False(LinearWeight.CanGroup(a, b));
        Assert.False(LinearWeight.CanGroup(a, c));
        var y = new float[8];
        Assert.Throws<ArgumentException>(() => LinearWeight.ForwardGroup(new float[16], 2, a, y, b, y, null, default, ComputePool.Single));
        Assert.Throws<ArgumentException>(() => LinearWeight.ForwardGroup(new float[16], 2, a, y, a, new float[7], null, default, ComputePool.Single));
    }

    [Fact]
    public void BiasesAreAddedToEachOutput()
    {
        using var pool = new ComputePool(2);
        const int m = 9, k = 40;
        var x = TestData.Floats(m * k, 5);
        var layers = new[] { (N: 33, Seed: 6), (N: 7, Seed: 7), (N: 64, Seed: 8) };
        var linears = new Linear[3];
        for (int i = 0; i < 3; i++)
            linears[i] = new Linear(LinearWeight.FromFloat32(TestData.Floats(layers[i].N * k, layers[i].Seed), layers[i].N, k), TestData.Floats(layers[i].N, layers[i].Seed + 10));
        Assert.True(Linear.CanGroup(linears[0], linears[1], linears[2]));
        var grouped = layers.Select(l => new float[m * l.N]).ToArray();
        Linear.ForwardGroup(x, m, linears[0], grouped[0], linears[1], grouped[1], linears[2], grouped[2], pool);
        for (int i = 0; i < 3; i++)
        {
            var separate = new float[m * layers[i].N];
            linears[i].Forward(x, m, separate, pool);
            Assert.Equal(separate, grouped[i]);
        }
    }

    /// <summary>A group of weights with the given widths against separate products (bit for bit) and the reference.</summary>
    private static void CheckGroup(TensorType type, int m, int[] widths, int k, ComputePool pool, int seed)
    {
        if (type == TensorType.Q8_0) k = (k + 31) / 32 * 32;
        var x = TestData.Floats(m * k, seed);
        var stored = new byte[widths.Length][];
        var weights = new LinearWeight[widths.Length];
        var separate = new float[widths.Length][];
        var grouped = new float[widths.Length][];
        for (int i = 0; i < widths.Length; i++)
        {
            stored[i] = TestData.Stored(type, widths[i], k, seed * 10 + i);
            weights[i] = LinearWeight.FromStored(stored[i], type, widths[i], k);
            separate[i] = new float[m * widths[i]];
            weights[i].Forward(x, m, separate[i], pool);
            grouped[i] = Enumerable.Repeat(float.NaN, m * widths[i]).ToArray();
        }
        if (widths.Length == 2)
            LinearWeight.ForwardGroup(x, m, weights[0], grouped[0], weights[1], grouped[1], null, default, pool);
        else
            LinearWeight.ForwardGroup(x, m, weights[0], grouped[0], weights[1], grouped[1], weights[2], grouped[2], pool);
        string shape = $"{type}, m {m}, k {k}, widths [{string.Join(", ", widths)}], {pool.Threads} threads";
        for (int i = 0; i < widths.Length; i++)
        {
            Assert.True(separate[i].AsSpan().SequenceEqual(grouped[i]), $"{shape}: output {i} differs from its separate product");
            // The reference, as GemmTests checks single products: bf16-rounded activations where the pairs kernel runs.
            var dense = new float[widths[i] * k];
            DType.ToFloat32(stored[i], type, dense);
            var input = TestData.RoundsActivationsToBf16(weights[i], m) ? TestData.RoundToBf16(x) : x;
            var expected = new float[m * widths[i]];
            GemmReference.Forward(input, dense, expected, m, widths[i], k);
            TestData.AssertClose(expected, grouped[i], TestData.AbsScale(input, dense, m, widths[i], k), 1e-5f);
        }
    }
}
