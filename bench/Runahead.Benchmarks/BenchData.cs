using System.Globalization;
using Runahead.Formats;
using Runahead.Numerics;

namespace Runahead.Benchmarks;

internal static class BenchData
{
    public static float[] Floats(int count, int seed)
    {
        var r = new Random(seed);
        var a = new float[count];
        for (int i = 0; i < a.Length; i++) a[i] = (float)(r.NextDouble() * 2 - 1);
        return a;
    }

    public static (int M, int N, int K) ParseShape(string shape)
    {
        var p = shape.Split('x');
        return (int.Parse(p[0], CultureInfo.InvariantCulture), int.Parse(p[1], CultureInfo.InvariantCulture), int.Parse(p[2], CultureInfo.InvariantCulture));
    }

    /// <summary>Random weights encoded as <paramref name="type"/> (F32, F16 or BF16).</summary>
    public static byte[] Stored(TensorType type, int count, int seed)
    {
        var values = Floats(count, seed);
        if (type == TensorType.F32) return System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
        var bytes = new byte[count * 2];
        for (int i = 0; i < count; i++)
        {
            ushort bits = type == TensorType.BF16 ? DType.FloatToBf16(values[i]) : BitConverter.HalfToUInt16Bits((Half)values[i]);
            bytes[2 * i] = (byte)bits;
            bytes[2 * i + 1] = (byte)(bits >> 8);
        }
        return bytes;
    }
}
