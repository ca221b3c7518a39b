using System.Runtime.Intrinsics;
using Runahead.Numerics;

namespace Runahead.Tests.Numerics;

public class TileTransposeTests
{
    [Theory]
    [InlineData(16)]
    [InlineData(5)]
    [InlineData(1)]
    public unsafe void MatchesTheScalarTranspose(int columns)
    {
        const int n = TileTranspose.Size, stride = 21;
        var src = new uint[n * n];
        var rng = new Random(columns);
        for (int i = 0; i < src.Length; i++) src[i] = (uint)rng.Next();
        var expected = new uint[n * stride];
        var actual = new uint[n * stride];
        Array.Fill(expected, 0xdeadbeefu);
        Array.Fill(actual, 0xdeadbeefu); // untouched past the requested columns
        var rows = stackalloc Vector512<uint>[n];
        fixed (uint* s = src)
        fixed (uint* e = expected)
        fixed (uint* a = actual)
        {
            for (int r = 0; r < n; r++) rows[r] = Vector512.Load(s + r * n);
            TileTranspose.Transpose(rows, a, stride, columns);
            TileTranspose.TransposeScalar(s, n, e, stride, columns);
        }
        Assert.Equal(expected, actual);
    }
}
