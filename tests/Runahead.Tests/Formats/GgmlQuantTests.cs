using System.Buffers.Binary;
using Runahead.Formats;
using Runahead.Formats.Gguf;
using Runahead.Numerics;

namespace Runahead.Tests.Formats;

/// <summary>The GGML block-quantized types: layouts, ids, dequantisation against the element-wise reference, packing.</summary>
public class GgmlQuantTests
{
    public static TheoryData<TensorType> AllTypes()
    {
        var data = new TheoryData<TensorType>();
        foreach (var t in GgmlQuantReference.All) data.Add(t);
        return data;
    }

    [Theory]
    [InlineData(TensorType.Q4_0, 2u, 32, 18)]
    [InlineData(TensorType.Q4_1, 3u, 32, 20)]
    [InlineData(TensorType.Q5_0, 6u, 32, 22)]
    [InlineData(TensorType.Q5_1, 7u, 32, 24)]
    [InlineData(TensorType.Q8_0, 8u, 32, 34)]
    [InlineData(TensorType.Q2_K, 10u, 256, 84)]
    [InlineData(TensorType.Q3_K, 11u, 256, 110)]
    [InlineData(TensorType.Q4_K, 12u, 256, 144)]
    [InlineData(TensorType.Q5_K, 13u, 256, 176)]
    [InlineData(TensorType.Q6_K, 14u, 256, 210)]
    [InlineData(TensorType.IQ4_NL, 20u, 32, 18)]
    public void IdsAndBlockSizesAreGgmls(TensorType type, uint ggmlId, int blockSize, int blockBytes)
    {
        Assert.Equal(ggmlId, GgmlType.FromTensorType(type));
        Assert.True(GgmlType.TryToTensorType(ggmlId, out var back));
        Assert.Equal(type, back);
        Assert.Equal(blockSize, TensorTypeInfo.BlockSize(type));
        Assert.Equal(blockBytes, TensorTypeInfo.BlockBytes(type));
        Assert.True(TensorTypeInfo.IsQuantized(type));
        Assert.Equal(-1, TensorTypeInfo.ByteSize(type, blockSize + 1));
        Assert.Equal(3L * blockBytes, TensorTypeInfo.ByteSize(type, 3L * blockSize));
    }

    [Theory]
    [InlineData(4u)] // removed Q4_2
    [InlineData(9u)] // Q8_1
    [InlineData(15u)] // Q8_K
    [InlineData(16u)] // IQ2_XXS
    [InlineData(19u)] // IQ1_S
    [InlineData(23u)] // IQ4_XS
    public void OtherGgmlTypesStayUnsupported(uint ggmlId) => Assert.False(GgmlType.TryToTensorType(ggmlId, out _));

    [Theory]
    [MemberData(nameof(AllTypes))]
    public void DequantiseMatchesReferenceOnRandomBlocks(TensorType type)
    {
        var rng = new Random(1000 + (int)type);
        foreach (int blocks in new[] { 1, 2, 7 })
        {
            int n = blocks * TensorTypeInfo.BlockSize(type);
            var data = GgmlQuantReference.RandomBlocks(type, blocks, rng);
            var expected = GgmlQuantReference.Dequantize(data, type, n);
            var actual = new float[n];
            DType.ToFloat32(data, type, actual);
            for (int i = 0; i < n; i++)
                Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(actual[i]),
                    $"{type} element {i} of {n}: expected {expected[i]}, got {actual[i]}");
        }
    }

    [Fact]
    public void Q4_0NibblesMapToMinus8To7()
    {
        var blk = new byte[18];
        BinaryPrimitives.WriteHalfLittleEndian(blk, (Half)1);
        for (int j = 0; j < 16; j++) blk[2 + j] = (byte)(j | (15 - j) << 4);
        var y = new float[32];
        DType.ToFloat32(blk, TensorType.Q4_0, y);
        for (int j = 0; j < 16; j++)
        {
            Assert.Equal(j - 8, y[j]);
            Assert.Equal(7 - j, y[16 + j]);
        }
    }

    [Fact]
    public void IQ4_NLNibblesIndexTheNonLinearLevels()
    {
        var blk = new byte[18];
        BinaryPrimitives.WriteHalfLittleEndian(blk, (Half)0.5f);
        for (int j = 0; j < 16; j++) blk[2 + j] = (byte)(j | (15 - j) << 4);
        var y = new float[32];
        DType.ToFloat32(blk, TensorType.IQ4_NL, y);
        Assert.Equal(-63.5f, y[0]);
        Assert.Equal(56.5f, y[15]);
        Assert.Equal(56.5f, y[16]);
        Assert.Equal(-5f, y[16 + 8]); // index 7 = -10
        Assert.Equal(0.5f, y[8]); // index 8 = 1
    }

    [Fact]
    public void Q4_1AddsTheMinToScaledNibbles()
    {
        var blk = new byte[20];
        BinaryPrimitives.WriteHalfLittleEndian(blk, (Half)0.5f);
        BinaryPrimitives.WriteHalfLittleEndian(blk.AsSpan(2), (Half)(-1f));
        for (int j = 0; j < 16; j++) blk[4 + j] = (byte)(j | j << 4);
        var y = new float[32];
        DType.ToFloat32(blk, TensorType.Q4_1, y);
        for (int j = 0; j < 16; j++)
        {
            Assert.Equal(0.5f * j - 1, y[j]);
            Assert.Equal(0.5f * j - 1, y[16 + j]);
        }
    }

    [Fact]
    public void Q5_0TakesTheFifthBitOfElementJFromBitJOfQh()
    {
        var blk = new byte[22];
        BinaryPrimitives.WriteHalfLittleEndian(blk, (Half)1);
        // Only elements 0 and 31 have their fifth bit set; all nibbles are 0.
        BinaryPrimitives.WriteUInt32LittleEndian(blk.AsSpan(2), 1u | 1u << 31);
        var y = new float[32];
        DType.ToFloat32(blk, TensorType.Q5_0, y);
        for (int j = 0; j < 32; j++) Assert.Equal(j is 0 or 31 ? 0f : -16f, y[j]);

        var blk1 = new byte[24];
        BinaryPrimitives.WriteHalfLittleEndian(blk1, (Half)2);
        BinaryPrimitives.WriteHalfLittleEndian(blk1.AsSpan(2), (Half)3);
        BinaryPrimitives.WriteUInt32LittleEndian(blk1.AsSpan(4), 1u << 16);
        blk1[8] = 0xF1; // element 0 = 1, element 16 = 15 | 16
        DType.ToFloat32(blk1, TensorType.Q5_1, y);
        Assert.Equal(2 * 1 + 3f, y[0]);
        Assert.Equal(2 * 31 + 3f, y[16]);
        Assert.Equal(3f, y[1]);
    }

    [Fact]
    public void Q4_KUsesSixBitScalesAndMinsPerSubBlock()
    {
        var blk = new byte[144];
        BinaryPrimitives.WriteHalfLittleEndian(blk, (Half)1);
        BinaryPrimitives.WriteHalfLittleEndian(blk.AsSpan(2), (Half)1);
        // Sub-block j: scale j + 1, min 2 j; sub-blocks 4-7 split into nibbles of bytes 8-11 and top bits of 0-7.
        var s = blk.AsSpan(4, 12);
        for (int j = 0; j < 8; j++)
        {
            int sc = j + 1 + (j >= 4 ? 48 : 0), m = 2 * j + (j >= 4 ? 32 : 0); // exercise the high bits too
            if (j < 4) { s[j] = (byte)sc; s[j + 4] = (byte)m; }
            else
            {
                s[j + 4] = (byte)((sc & 0xF) | (m & 0xF) << 4);
                s[j - 4] |= (byte)(sc >> 4 << 6);
                s[j] |= (byte)(m >> 4 << 6);
            }
        }
        for (int b = 0; b < 128; b++) blk[16 + b] = 0x21; // low nibble 1, high nibble 2
        var y = new float[256];
        DType.ToFloat32(blk, TensorType.Q4_K, y);
        for (int i = 0; i < 256; i++)
        {
            int j = i / 32;
            int sc = j + 1 + (j >= 4 ? 48 : 0), m = 2 * j + (j >= 4 ? 32 : 0);
            Assert.Equal(sc * (j % 2 == 0 ? 1 : 2) - m, y[i]);
        }
    }

    [Fact]
    public void Q6_KCentresSixBitQuantsOn32WithSignedScales()
    {
        var blk = new byte[210];
        BinaryPrimitives.WriteHalfLittleEndian(blk.AsSpan(208), (Half)0.5f);
        for (int k = 0; k < 16; k++) blk[192 + k] = (byte)(sbyte)(k - 8);
        // Every quant = 0x3F (low nibble F, high bits 3) -> 31 after centring.
        for (int b = 0; b < 128; b++) blk[b] = 0xFF;
        for (int b = 0; b < 64; b++) blk[128 + b] = 0xFF;
        var y = new float[256];
        DType.ToFloat32(blk, TensorType.Q6_K, y);
        for (int i = 0; i < 256; i++) Assert.Equal(0.5f * (i / 16 - 8) * 31, y[i]);
    }

    [Fact]
    public void Q3_KScalesMatchGgmlsAuxWordUnpacking()
    {
        // ggml unpacks the 12 bytes as three uint32 words with masks; the element-wise rule must agree on any bytes.
        var rng = new Random(5);
        var packed = new byte[12];
        Span<int> scales = stackalloc int[16];
        for (int trial = 0; trial < 200; trial++)
        {
            rng.NextBytes(packed);
            GgmlDequantizer.UnpackQ3Scales(packed, scales);
            uint a0 = BinaryPrimitives.ReadUInt32LittleEndian(packed), a1 = BinaryPrimitives.ReadUInt32LittleEndian(packed.AsSpan(4));
            uint tmp = BinaryPrimitives.ReadUInt32LittleEndian(packed.AsSpan(8));
            const uint m1 = 0x03030303, m2 = 0x0f0f0f0f;
            uint[] aux =
            [
                (a0 & m2) | ((tmp >> 0) & m1) << 4,
                (a1 & m2) | ((tmp >> 2) & m1) << 4,
                ((a0 >> 4) & m2) | ((tmp >> 4) & m1) << 4,
                ((a1 >> 4) & m2) | ((tmp >> 6) & m1) << 4,
            ];
            for (int k = 0; k < 16; k++) Assert.Equal((int)(aux[k / 4] >> (8 * (k % 4)) & 0xFF), scales[k]);
        }
    }

    [Theory]
    [MemberData(nameof(AllTypes))]
    public void QuantizedWeightComputesLikeItsDequantisedF32(TensorType type)
    {
        var rng = new Random(77 + (int)type);
        int bs = TensorTypeInfo.BlockSize(type);
        using var pool = new ComputePool(2);
        foreach (var (rows, blocksPerRow) in new[] { (1, 1), (33, 2), (37, 3) })
        {
            int cols = blocksPerRow * bs;
            var stored = GgmlQuantReference.RandomBlocks(type, rows * blocksPerRow, rng, scale: 0.05f);
            var floats = GgmlQuantReference.Dequantize(stored, type, rows * cols);
            var quantized = LinearWeight.FromStored(stored, type, rows, cols);
            var f32 = LinearWeight.FromFloat32(floats, rows, cols);
            const int tokens = 5;
            var x = new float[tokens * cols];
            for (int i = 0; i < x.Length; i++) x[i] = rng.NextSingle() * 2 - 1;
            var expected = new float[tokens * rows];
            var actual = new float[tokens * rows];
            f32.Forward(x, tokens, expected, pool);
            quantized.Forward(x, tokens, actual, pool);
            Assert.Equal(expected, actual);
        }
    }

    [Theory]
    [InlineData(TensorType.Q4_0, 8)]
    [InlineData(TensorType.Q4_1, 15)]
    [InlineData(TensorType.Q5_0, 16)]
    [InlineData(TensorType.Q5_1, 31)]
    [InlineData(TensorType.Q8_0, 127)]
    public void LegacyQuantiserRoundTripsWithinAStep(TensorType type, int stepsPerRange)
    {
        var rng = new Random(3);
        const int n = 32 * 9;
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (rng.NextSingle() * 2 - 1) * (1 + i / 32);
        x.AsSpan(32, 32).Clear(); // an all-zero block must stay zero (scale 0)
        var bytes = new byte[TensorTypeInfo.ByteSize(type, n)];
        TensorEncoding.FromFloat32(x, type, bytes);
        var back = new float[n];
        DType.ToFloat32(bytes, type, back);
        for (int b = 0; b < n / 32; b++)
        {
            var blk = x.AsSpan(b * 32, 32);
            float range = type is TensorType.Q4_1 or TensorType.Q5_1
                ? System.Numerics.Tensors.TensorPrimitives.Max(blk) - System.Numerics.Tensors.TensorPrimitives.Min(blk)
                : System.Numerics.Tensors.TensorPrimitives.MaxMagnitude(blk) is var a ? MathF.Abs(a) : 0;
            // Half a step, plus the f16 rounding of the scale (and min) carried across up to the top level. Q4_0/Q5_0 map
            // the extreme to level -8/-16, so a value near the opposite extreme clamps at +7/+15: up to a whole step.
            float step = range / stepsPerRange;
            float tol = step * (type is TensorType.Q4_0 or TensorType.Q5_0 ? 1f : 0.5f) + range * 2e-3f + 1e-6f;
            for (int j = 0; j < 32; j++)
                Assert.True(MathF.Abs(back[b * 32 + j] - blk[j]) <= tol, $"{type} block {b} element {j}: {blk[j]} -> {back[b * 32 + j]} (tol {tol})");
        }
        Assert.All(back.AsSpan(32, 32).ToArray(), v => Assert.Equal(0f, v));
    }

    [Theory]
    [InlineData(TensorType.Q2_K)]
    [InlineData(TensorType.Q6_K)]
    [InlineData(TensorType.IQ4_NL)]
    public void KQuantsAndIQ4_NLAreNotWritten(TensorType type) => Assert.Throws<ArgumentOutOfRangeException>(() =>
        TensorEncoding.FromFloat32(new float[TensorTypeInfo.BlockSize(type)], type, new byte[TensorTypeInfo.BlockBytes(type)]));
}
