using System.Runtime.InteropServices;
using Runahead.Formats;
using Runahead.Numerics;

namespace Runahead.Tests.Numerics;

/// <summary>Deterministic random inputs and magnitude-relative comparison for kernel tests.</summary>
internal static class TestData
{
    public static float[] Floats(int count, int seed, float scale = 1f)
    {
        var r = new Random(seed);
        var a = new float[count];
        for (int i = 0; i < a.Length; i++) a[i] = (float)(r.NextDouble() * 2 - 1) * scale;
        return a;
    }

    /// <summary>Random stored bytes of <paramref name="type"/> for a [rows, cols] tensor.</summary>
    public static byte[] Stored(TensorType type, int rows, int cols, int seed)
    {
        var values = Floats(rows * cols, seed);
        switch (type)
        {
            case TensorType.F32:
                return MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
            case TensorType.F16:
            {
                var h = new Half[values.Length];
                for (int i = 0; i < h.Length; i++) h[i] = (Half)values[i];
                return MemoryMarshal.AsBytes(h.AsSpan()).ToArray();
            }
            case TensorType.BF16:
            {
                var b = new ushort[values.Length];
                for (int i = 0; i < b.Length; i++) b[i] = DType.FloatToBf16(values[i]);
                return MemoryMarshal.AsBytes(b.AsSpan()).ToArray();
            }
            case TensorType.Q8_0:
            {
                var r = new Random(seed);
                int blocks = values.Length / 32;
                var bytes = new byte[blocks * 34];
                for (int bi = 0; bi < blocks; bi++)
                {
                    MemoryMarshal.Write(bytes.AsSpan(bi * 34), (Half)(0.001f + (float)r.NextDouble() * 0.02f));
                    for (int j = 0; j < 32; j++) bytes[bi * 34 + 2 + j] = (byte)(sbyte)r.Next(-127, 128);
                }
                return bytes;
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(type));
        }
    }

    /// <summary>Whether a product of <paramref name="tokens"/> rows with this weight runs on the generated BF16 kernel (activations rounded to bf16).</summary>
    public static bool RoundsActivationsToBf16(LinearWeight weight, int tokens) =>
        weight.PanelType == PanelType.BF16Pairs && tokens > PackedGemm.SmallM;

    /// <summary>Each value rounded to bf16 (nearest even) and back, as the BF16 kernel sees activations.</summary>
    public static float[] RoundToBf16(ReadOnlySpan<float> x)
    {
        var r = new float[x.Length];
        for (int i = 0; i < r.Length; i++) r[i] = DType.Bf16ToFloat(DType.FloatToBf16(x[i]));
        return r;
    }

    /// <summary>sum_i |x[t, i] w[o, i]| for each output: the magnitude rounding errors of a dot product scale with.</summary>
    public static float[] AbsScale(ReadOnlySpan<float> x, ReadOnlySpan<float> w, int m, int n, int k)
    {
        var scale = new float[m * n];
        for (int t = 0; t < m; t++)
            for (int o = 0; o < n; o++)
            {
                double s = 0;
                for (int i = 0; i < k; i++) s += Math.Abs(x[t * k + i] * w[o * k + i]);
                scale[t * n + o] = (float)s;
            }
        return scale;
    }

    /// <summary>Asserts |actual - expected| &lt;= rel * scale[i] + abs elementwise, naming the first bad index.</summary>
    public static void AssertClose(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, ReadOnlySpan<float> scale, float rel, float abs = 1e-6f)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            float tol = rel * (scale.IsEmpty ? Math.Abs(expected[i]) : scale[i]) + abs;
            if (!(Math.Abs(expected[i] - actual[i]) <= tol))
                Assert.Fail($"index {i}: expected {expected[i]}, got {actual[i]} (tolerance {tol})");
        }
    }
}
