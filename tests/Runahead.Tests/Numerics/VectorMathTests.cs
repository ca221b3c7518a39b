using System.Runtime.Intrinsics;
using Runahead.Numerics;

namespace Runahead.Tests.Numerics;

public class VectorMathTests
{
    [Fact]
    public void ExpIsAccurateAndHandlesTheEdges()
    {
        var r = new Random(11);
        for (int i = 0; i < 20000; i++)
        {
            float x = (float)(r.NextDouble() * 175 - 87);
            foreach (var e in new[] { VectorMath.Exp(Vector512.Create(x)), VectorMath.ExpPortable(Vector512.Create(x)) })
            {
                double exact = Math.Exp(x);
                Assert.True(Math.Abs(e[0] - exact) <= 3e-7 * exact, $"exp({x}) = {e[0]}, exact {exact}");
            }
        }
        foreach (var exp in new Func<Vector512<float>, Vector512<float>>[] { VectorMath.Exp, VectorMath.ExpPortable })
        {
            Assert.Equal(0f, exp(Vector512.Create(float.NegativeInfinity))[0]);
            Assert.Equal(0f, exp(Vector512.Create(-1000f))[0]);
            Assert.Equal(1f, exp(Vector512.Create(0f))[0]);
            // Never a subnormal (they cost a microcode assist per instruction on Intel): flushed to 0 instead.
            for (float x = -87.2f; x > -110f; x -= 0.0625f)
            {
                float e = exp(Vector512.Create(x))[0];
                Assert.True(e == 0f || float.IsNormal(e), $"exp({x}) = {e} is subnormal");
            }
            Assert.True(exp(Vector512.Create(100f))[0] > 1e38f);
        }
    }
}
