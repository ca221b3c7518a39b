using Runahead.Generation;

namespace Runahead.Tests.Generation;

public class SamplerTests
{
    [Fact]
    public void TemperatureZeroIsArgMaxWithLowestIdOnTies()
    {
        var sampler = new Sampler(5, SamplingOptions.Greedy);
        Assert.Equal(1, sampler.Sample(new float[] { 0, 3, 1, 3, -2 }, []));
        Assert.Equal(0, sampler.Sample(new float[] { 7, 7, 7, 7, 7 }, []));
    }

    [Fact]
    public void SameSeedSameTokensDifferentSeedDifferentTokens()
    {
        var logits = new float[50];
        for (int i = 0; i < logits.Length; i++) logits[i] = MathF.Sin(i);
        int[] Run(ulong seed)
        {
            var s = new Sampler(50, new SamplingOptions { Temperature = 1.5f, TopK = 0, TopP = 1f, Seed = seed });
            var ids = new int[40];
            for (int i = 0; i < ids.Length; i++) ids[i] = s.Sample((float[])logits.Clone(), []);
            return ids;
        }
        Assert.Equal(Run(42), Run(42));
        Assert.NotEqual(Run(42), Run(43));
    }

    [Fact]
    public void SamplesFollowTheSoftmaxDistribution()
    {
        var logits = new float[] { 0f, 1f, 2f, -1f };
        var s = new Sampler(4, new SamplingOptions { Temperature = 1f, TopK = 0, TopP = 1f, Seed = 7 });
        var counts = new int[4];
        const int n = 20000;
        for (int i = 0; i < n; i++) counts[s.Sample((float[])logits.Clone(), [])]++;
        double z = logits.Sum(x => Math.Exp(x));
        for (int i = 0; i < 4; i++)
        {
            double p = Math.Exp(logits[i]) / z;
            double sigma = Math.Sqrt(n * p * (1 - p));
            Assert.InRange(counts[i], n * p - 5 * sigma, n * p + 5 * sigma);
        }
    }

    [Fact]
    public void TopKAndTopPRestrictTheCandidates()
    {
        var logits = new float[] { 1f, 5f, 4.9f, 0f, 4.8f };
        var topK = new Sampler(5, new SamplingOptions { Temperature = 2f, TopK = 2, TopP = 1f, Seed = 1 });
        var topP = new Sampler(5, new SamplingOptions { Temperature = 1f, TopK = 0, TopP = 0.01f, Seed = 1 });
        var seen = new HashSet<int>();
        for (int i = 0; i < 500; i++)
        {
            seen.Add(topK.Sample((float[])logits.Clone(), []));
            Assert.Equal(1, topP.Sample((float[])logits.Clone(), []));
        }
        Assert.Equal(new HashSet<int> { 1, 2 }, seen);
    }

    [Fact]
    public void RepeatPenaltyPenalisesEachRecentTokenOnce()
    {
        var s = new Sampler(4, new SamplingOptions { Temperature = 0, RepeatPenalty = 2f, RepeatLastN = 2 });
        var logits = new float[] { 3f, 2.5f, -1f, 0f };
        // Token 0 appears twice in the window and is halved once: 1.5 < 2.5. Token 2 is outside the window.
        Assert.Equal(1, s.Sample(logits, [2, 0, 0]));
        Assert.Equal(1.5f, logits[0]);
        Assert.Equal(-1f, logits[2]);
    }

    [Fact]
    public void BadOptionsAreNamed()
    {
        var e = Assert.Throws<RunaheadException>(() => new Sampler(4, new SamplingOptions { TopP = 0 }));
        Assert.Contains("--top-p", e.Message);
        Assert.Throws<RunaheadException>(() => new Sampler(4, new SamplingOptions { Temperature = -1 }));
    }
}
