using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Runahead.Formats;
using Runahead.Formats.Synthetic;
using Runahead.Numerics;
using Runahead.Numerics.Jit;

namespace Runahead.Tests.Numerics.Jit;

/// <summary>The generated vdpbf16ps kernel, the pairs packing and the BF16 GEMM built on them, against plain references.</summary>
public class Bf16DotTests
{
    [SkippableTheory]
    [InlineData(0, false)]
    [InlineData(1, false)]
    [InlineData(1, true)]
    [InlineData(15, true)]
    [InlineData(16, false)]
    [InlineData(17, true)]
    [InlineData(33, false)]
    [InlineData(256, true)]
    public unsafe void KernelMatchesReference(int kPairs, bool accumulate)
    {
        Skip.IfNot(Bf16Dot.KernelAvailable, "no AVX512_BF16 kernel here: " + Bf16Dot.Status);
        const int mr = Bf16Dot.MR, ldc = 45;
        var rng = new Random(kPairs * 2 + (accumulate ? 1 : 0));
        var a = new uint[Math.Max(1, Bf16PairsKernels.MicroPanelLength(kPairs))];
        var b = new uint[Math.Max(1, kPairs * 32)];
        for (int i = 0; i < a.Length; i++) a[i] = RandomPair(rng);
        for (int i = 0; i < b.Length; i++) b[i] = RandomPair(rng);
        var c = TestData.Floats(mr * ldc, kPairs + 7);
        var before = (float[])c.Clone();
        fixed (uint* ap = a)
        fixed (uint* bp = b)
        fixed (float* cp = c)
            Bf16Dot.Kernel(ap, bp, kPairs, cp, ldc * 4, accumulate);
        for (int r = 0; r < mr; r++)
            for (int col = 0; col < ldc; col++)
            {
                double expected = col >= 32 ? before[r * ldc + col]
                    : (accumulate ? before[r * ldc + col] : 0) + Bf16Reference.PairDot(a, b, kPairs, mr, r, col);
                // Products of bf16 are exact in F32; F32 accumulation of 2 kPairs + 1 terms of magnitude <= 1.
                double tol = 1e-6 * (2 * kPairs + 2);
                Assert.True(Math.Abs(c[r * ldc + col] - expected) <= tol, $"C[{r},{col}] = {c[r * ldc + col]}, expected {expected}");
            }
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(3, 2)]
    [InlineData(14, 31)]
    [InlineData(15, 32)]
    [InlineData(29, 33)]
    [InlineData(30, 97)]
    public unsafe void ActivationPackingMatchesScalar(int mc, int kc)
    {
        const int mr = Bf16PairsKernels.MR;
        int ldx = kc + 3;
        var x = TestData.Floats(mc * ldx, mc + kc, scale: 3f);
        x[0] = float.NaN;
        if (x.Length > 1) x[1] = float.PositiveInfinity;
        if (x.Length > 2) x[2] = BitConverter.Int32BitsToSingle(0x3f808000); // a tie: rounds to even (1.0)
        int pairs = Bf16PairsKernels.PairCount(kc);
        int panelLength = Bf16PairsKernels.MicroPanelLength(pairs);
        int panels = (mc + mr - 1) / mr;
        var packed = new uint[panels * panelLength];
        packed.AsSpan().Fill(0xdeadbeef);
        fixed (float* xp = x)
        fixed (uint* dp = packed)
            Bf16PairsKernels.PackActivations(xp, ldx, mc, kc, dp);
        for (int pi = 0; pi < panels; pi++)
            for (int r = 0; r < mr; r++)
                for (int p = 0; p < pairs; p++)
                {
                    int row = pi * mr + r;
                    uint expected = 0;
                    if (row < mc)
                    {
                        expected = DType.FloatToBf16(x[row * ldx + 2 * p]);
                        if (2 * p + 1 < kc) expected |= (uint)DType.FloatToBf16(x[row * ldx + 2 * p + 1]) << 16;
                    }
                    Assert.Equal(expected, packed[pi * panelLength + Bf16KernelGenerator.ActivationIndex(p, r, mr)]);
                }
    }

    [Fact]
    public void VectorRoundingMatchesScalarOnSpecialValues()
    {
        float[] values =
        [
            0f, -0f, 1f, -1.5f, float.MaxValue, float.MinValue, float.Epsilon, -float.Epsilon, float.PositiveInfinity,
            float.NegativeInfinity, float.NaN, BitConverter.Int32BitsToSingle(0x3f808000), BitConverter.Int32BitsToSingle(0x3f818000),
            BitConverter.Int32BitsToSingle(0x3f808001), BitConverter.Int32BitsToSingle(0x7f800001), BitConverter.Int32BitsToSingle(unchecked((int)0xffc00001)),
        ];
        var v = Vector512.Create(values);
        var rounded = Bf16PairsKernels.RoundToBf16Bits(v);
        for (int i = 0; i < values.Length; i++)
        {
            Assert.Equal(DType.FloatToBf16(values[i]), (ushort)rounded.GetElement(i));
            Assert.Equal(0u, rounded.GetElement(i) >> 16);
        }
        Assert.True(float.IsNaN(DType.Bf16ToFloat((ushort)rounded.GetElement(14))));
    }

    [Theory]
    [InlineData(5, 1)]
    [InlineData(8, 64)]
    [InlineData(9, 65)]
    public unsafe void WeightPanelsHoldKPairs(int outF, int inF)
    {
        var stored = TestData.Stored(TensorType.BF16, outF, inF, seed: inF);
        var w = MemoryMarshal.Cast<byte, ushort>(stored);
        var panel = new ushort[Bf16PairsKernels.PanelLength(inF)];
        panel.AsSpan().Fill(0xffff);
        fixed (ushort* src = w)
        fixed (ushort* dst = panel)
            Bf16PairsKernels.PackPanel(src, dst, 0, outF, inF);
        for (int p = 0; p < Bf16PairsKernels.PairCount(inF); p++)
            for (int c = 0; c < 32; c++)
                for (int j = 0; j < 2; j++)
                {
                    int k = 2 * p + j;
                    ushort expected = c < outF && k < inF ? w[c * inF + k] : (ushort)0;
                    Assert.Equal(expected, panel[(p * 32 + c) * 2 + j]);
                }
    }

    public static TheoryData<int, int, int, int> GemmShapes() => new()
    {
        // M past the decode path, not a multiple of MR; N not a multiple of 32; K odd, tiny, and over one K slice
        // (accumulation into C); M over one M block at one thread (126 rows) and at two (252).
        { 5, 1, 1, 1 }, { 6, 33, 1, 2 }, { 13, 31, 2, 1 }, { 14, 32, 3, 2 }, { 15, 65, 31, 1 }, { 29, 95, 33, 2 },
        { 41, 40, 513, 1 }, { 127, 70, 1100, 1 }, { 300, 33, 97, 2 }, { 260, 64, 1025, 2 },
    };

    [Theory]
    [MemberData(nameof(GemmShapes))]
    public void Bf16GemmMatchesBf16RoundedReference(int m, int n, int k, int threads)
    {
        var stored = TestData.Stored(TensorType.BF16, n, k, seed: m + n + k);
        var dense = new float[n * k];
        DType.ToFloat32(stored, TensorType.BF16, dense);
        var x = TestData.Floats(m * k, seed: m * k);
        var weight = LinearWeight.FromStored(stored, TensorType.BF16, n, k);
        Assert.Equal(Bf16Dot.Enabled ? PanelType.BF16Pairs : PanelType.BF16, weight.PanelType);
        var actual = new float[m * n];
        using (var pool = new ComputePool(threads)) weight.Forward(x, m, actual, pool);
        var xSeen = TestData.RoundsActivationsToBf16(weight, m) ? TestData.RoundToBf16(x) : x;
        var expected = new float[m * n];
        GemmReference.Forward(xSeen, dense, expected, m, n, k);
        TestData.AssertClose(expected, actual, TestData.AbsScale(xSeen, dense, m, n, k), 1e-5f);
    }

    [Theory]
    [InlineData(null, "Measure")]
    [InlineData("", "Measure")]
    [InlineData("  ", "Measure")]
    [InlineData("1", "Kernel")]
    [InlineData("on", "Kernel")]
    [InlineData(" Force ", "Kernel")]
    [InlineData("0", "Widen")]
    [InlineData(" off ", "Widen")]
    [InlineData("FALSE", "Widen")]
    public void EnvironmentSwitch(string? value, string mode) => Assert.Equal(mode, Bf16Dot.ModeFrom(value).ToString());

    [Theory]
    [InlineData("2")]
    [InlineData("yes")]
    [InlineData("measure")]
    public void UnknownSwitchValueIsAOneLineError(string value)
    {
        var e = Assert.Throws<RunaheadException>(() => Bf16Dot.ModeFrom(value));
        Assert.Contains(Bf16Dot.EnvironmentVariable, e.Message);
        Assert.Contains($"'{value}'", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Theory]
    [InlineData(1.0, 1.95, true, "measured 1.95x widening")] // this AMD machine
    [InlineData(1.0, 1.15, true, "measured 1.15x widening")] // exactly the margin
    [InlineData(1.0, 1.14, false, "measured 1.14x widening, needs 1.15x")] // faster, but not clearly
    [InlineData(1.0, 0.63, false, "measured 0.63x widening, needs 1.15x")] // the Intel Xeon (83.5 vs 133.3 GF/s)
    [InlineData(0.0, 1.0, false, "probe timing unusable")]
    [InlineData(double.PositiveInfinity, 1.0, false, "probe timing unusable")]
    [InlineData(1.0, double.NaN, false, "probe timing unusable")]
    public void DecisionNeedsAClearMargin(double kernelSeconds, double wideningSeconds, bool useKernel, string reason)
    {
        var (use, why) = Bf16Dot.Decide(kernelSeconds, wideningSeconds);
        Assert.Equal(useKernel, use);
        Assert.Equal(reason, why);
    }

    [Fact]
    public void AvailabilityFollowsTheCpu()
    {
        // On a CPU without AVX512_BF16 the kernel must be off (and BF16 weights widen); with it, the switch, the OS, the
        // self-test or the measurement may turn it off, and the status says which.
        if (!Bf16Dot.CpuSupportsAvx512Bf16()) Assert.False(Bf16Dot.KernelAvailable);
        bool on = Bf16Dot.Status.StartsWith("on: ", StringComparison.Ordinal);
        Assert.True(on || Bf16Dot.Status.StartsWith("off: ", StringComparison.Ordinal), Bf16Dot.Status);
        if (on) Assert.True(Bf16Dot.KernelAvailable);
        if (Bf16Dot.MeasuredSpeedup is double speedup)
        {
            Assert.True(Bf16Dot.KernelAvailable);
            Assert.Equal(speedup >= Bf16Dot.RequiredSpeedup, on);
            Assert.Contains("measured", Bf16Dot.Status);
        }
        else if (Bf16Dot.KernelAvailable)
        {
            Assert.Contains("forced by " + Bf16Dot.EnvironmentVariable, Bf16Dot.Status); // the only way to skip the timing
        }
        // Generous bound against a runaway probe: it is meant to take a few milliseconds.
        Assert.True(Bf16Dot.DecisionTime < TimeSpan.FromSeconds(5), Bf16Dot.DecisionTime.ToString());
    }

    [SkippableFact]
    public void ProbeTimesBothPaths()
    {
        Skip.IfNot(Bf16Dot.KernelAvailable, "no AVX512_BF16 kernel here: " + Bf16Dot.Status);
        var (kernel, widening) = Bf16Dot.MeasureAgain();
        Assert.True(kernel > 0 && kernel < 1, kernel.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.True(widening > 0 && widening < 1, widening.ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public void WorkersAreToldThisProcessLayout()
    {
        bool saved = Bf16Dot.ForceWidening;
        try
        {
            Assert.Equal(Bf16Dot.Enabled ? "1" : "0", Bf16Dot.WorkerSetting);
            // What a worker does with the setting: "1" can only turn the kernel on where this process has it too.
            Assert.Equal(Bf16Dot.Enabled ? Bf16DotMode.Kernel : Bf16DotMode.Widen, Bf16Dot.ModeFrom(Bf16Dot.WorkerSetting));
            Bf16Dot.ForceWidening = true;
            Assert.Equal("0", Bf16Dot.WorkerSetting);
        }
        finally
        {
            Bf16Dot.ForceWidening = saved;
        }
    }

    [SkippableFact]
    public void PairsPanelsCountPaddedK()
    {
        Skip.IfNot(Bf16Dot.Enabled, "no AVX512_BF16 kernel here: " + Bf16Dot.Status);
        var w = LinearWeight.FromStored(TestData.Stored(TensorType.BF16, 33, 63, 1), TensorType.BF16, 33, 63);
        Assert.Equal(2L * 32 * 64 * 2, w.MemoryBytes);
        Assert.Equal(w.MemoryBytes, LinearWeight.PackedBytes(PanelType.BF16Pairs, 33, 63));
    }

    private static uint RandomPair(Random rng) =>
        DType.FloatToBf16((float)(rng.NextDouble() * 2 - 1)) | (uint)DType.FloatToBf16((float)(rng.NextDouble() * 2 - 1)) << 16;
}

/// <summary>Tests that switch the BF16 layout process-wide, so they run alone.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class Bf16LayoutCollection
{
    public const string Name = "BF16 layout switch";
}

[Collection(Bf16LayoutCollection.Name)]
public class Bf16FallbackTests
{
    [Theory]
    [InlineData(3, 65, 33)]
    [InlineData(37, 70, 300)]
    public void WideningPathWhenKernelIsOff(int m, int n, int k)
    {
        var (stored, x) = (TestData.Stored(TensorType.BF16, n, k, seed: 9), TestData.Floats(m * k, seed: 10));
        // Packed while the kernel is off: plain BF16 rows, widened to F32 in packing.
        var weight = WhileWidening(() => LinearWeight.FromStored(stored, TensorType.BF16, n, k));
        Assert.Equal(PanelType.BF16, weight.PanelType);
        AssertWidenedProductMatchesF32(weight, stored, x, m, n, k);
    }

    [Fact]
    public void MistypedSwitchStopsTheCliWithOneLine()
    {
        _ = Bf16Dot.Enabled; // decide first: the lazily made decision must not see the bad value below
        EnvironmentSettingsTests.AssertCliStopsOnTypo(Bf16Dot.EnvironmentVariable, "maybe",
            $"runahead: {Bf16Dot.EnvironmentVariable}: expected 0, off, false, 1, on or force (or unset to measure), got 'maybe'");
    }

    [Fact]
    public void RanksAdoptRankZerosDecision()
    {
        bool own = Bf16Dot.Enabled;
        try
        {
            Bf16Dot.Adopt(false);
            Assert.False(Bf16Dot.Enabled);
            if (own) Assert.Contains("as rank 0 of the job decided", Bf16Dot.Status);
            if (Bf16Dot.KernelAvailable)
            {
                Bf16Dot.Adopt(true);
                Assert.True(Bf16Dot.Enabled);
            }
            else
            {
                var e = Assert.Throws<RunaheadException>(() => Bf16Dot.Adopt(true));
                Assert.Contains(Bf16Dot.EnvironmentVariable, e.Message);
            }
        }
        finally
        {
            Bf16Dot.Adopt(own);
        }
        Assert.Equal(own, Bf16Dot.Enabled);
        Assert.DoesNotContain("as rank 0", Bf16Dot.Status);
    }

    /// <summary>Runs <paramref name="body"/> with the kernel switched off process-wide, then restores the switch.</summary>
    private static T WhileWidening<T>(Func<T> body)
    {
        bool saved = Bf16Dot.ForceWidening;
        Bf16Dot.ForceWidening = true;
        try
        {
            return body();
        }
        finally
        {
            Bf16Dot.ForceWidening = saved;
        }
    }

    /// <summary>
    /// The product with the kernel off equals F32 math on the widened weight within the F32 kernels' tolerance: no bf16
    /// rounding of the activations on this path.
    /// </summary>
    private static void AssertWidenedProductMatchesF32(LinearWeight weight, byte[] stored, float[] x, int m, int n, int k)
    {
        var dense = new float[n * k];
        DType.ToFloat32(stored, TensorType.BF16, dense);
        var expected = new float[m * n];
        GemmReference.Forward(x, dense, expected, m, n, k);
        var actual = WhileWidening(() =>
        {
            var y = new float[m * n];
            using var pool = new ComputePool(2);
            weight.Forward(x, m, y, pool);
            return y;
        });
        TestData.AssertClose(expected, actual, TestData.AbsScale(x, dense, m, n, k), 1e-5f);
    }

    [SkippableTheory]
    [InlineData(9, 70, 33)]
    [InlineData(130, 33, 600)]
    public void PairsPanelsRunWithoutTheKernel(int m, int n, int k)
    {
        Skip.IfNot(Bf16Dot.Enabled, "no AVX512_BF16 kernel here: " + Bf16Dot.Status);
        var (stored, x) = (TestData.Stored(TensorType.BF16, n, k, seed: 11), TestData.Floats(m * k, seed: 12));
        var weight = LinearWeight.FromStored(stored, TensorType.BF16, n, k);
        Assert.Equal(PanelType.BF16Pairs, weight.PanelType);
        AssertWidenedProductMatchesF32(weight, stored, x, m, n, k);
    }

    [SkippableTheory]
    [InlineData(300, 70, 1100, 1)]
    [InlineData(300, 70, 1100, 2)]
    [InlineData(29, 33, 97, 2)]
    public void SeveralPassesOfRowsGiveTheSameProduct(int m, int n, int k, int threads)
    {
        Skip.IfNot(Bf16Dot.Enabled, "no AVX512_BF16 kernel here: " + Bf16Dot.Status);
        var stored = TestData.Stored(TensorType.BF16, n, k, seed: 13);
        var x = TestData.Floats(m * k, seed: 14);
        var weight = LinearWeight.FromStored(stored, TensorType.BF16, n, k);
        using var pool = new ComputePool(threads);
        var onePass = new float[m * n];
        weight.Forward(x, m, onePass, pool);
        long saved = PackedGemm.PairsBufferBytes;
        // One 14-row micro-panel per pass at most: passes of one M block.
        PackedGemm.PairsBufferBytes = 1;
        try
        {
            var passes = new float[m * n];
            weight.Forward(x, m, passes, pool);
            Assert.Equal(onePass, passes);
        }
        finally
        {
            PackedGemm.PairsBufferBytes = saved;
        }
    }

    [Fact]
    public void CacheKeyNamesTheBf16Layout()
    {
        var folder = Directory.CreateTempSubdirectory("runahead-bf16key-").FullName;
        try
        {
            var path = Path.Combine(folder, "m.gguf");
            SyntheticModel.Write(ModelShapes.Get("tiny"), TensorType.BF16, path, seed: 1);
            string? pairsPath = Runahead.Models.PackedWeightCache.CachePath(path, folder);
            bool saved = Bf16Dot.ForceWidening;
            Bf16Dot.ForceWidening = true;
            string? rowsPath;
            try
            {
                rowsPath = Runahead.Models.PackedWeightCache.CachePath(path, folder);
            }
            finally
            {
                Bf16Dot.ForceWidening = saved;
            }
            Assert.NotNull(pairsPath);
            if (Bf16Dot.KernelAvailable) Assert.NotEqual(pairsPath, rowsPath);
            else Assert.Equal(pairsPath, rowsPath);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
