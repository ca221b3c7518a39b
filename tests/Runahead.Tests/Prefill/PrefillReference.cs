using Runahead.Models;
using Runahead.Prefill;

namespace Runahead.Tests.Prefill;

/// <summary>Single-rank reference runs and the comparisons every strategy test makes against them.</summary>
internal static class PrefillReference
{
    public const float LogitTolerance = 1e-4f;

    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++) if (logits[i] > logits[best]) best = i;
        return best;
    }

    /// <summary>Prefill with Model.Forward, then greedy decoding of <paramref name="newTokens"/> tokens.</summary>
    public static (float[] Logits, int[] Continuation) Single(Model model, int[] prompt, int newTokens)
    {
        var cache = new KvCache(model.Config, prompt.Length + newTokens);
        var ws = model.CreateWorkspace();
        var logits = new float[model.Config.VocabSize];
        model.Forward(prompt, cache, logits, ws);
        var first = (float[])logits.Clone();
        return (first, Decode(model, cache, logits, newTokens));
    }

    /// <summary>Greedy decoding on the cache a prefill left, starting from the prefill's logits.</summary>
    public static int[] Decode(Model model, KvCache cache, float[] logits, int newTokens)
    {
        var ws = model.CreateWorkspace(1);
        var ids = new int[newTokens];
        var step = (float[])logits.Clone();
        for (int i = 0; i < newTokens; i++)
        {
            ids[i] = ArgMax(step);
            if (i + 1 < newTokens) model.Forward(new[] { ids[i] }, cache, step, ws);
        }
        return ids;
    }

    public static void AssertClose(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        float worst = 0;
        int at = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            float d = MathF.Abs(expected[i] - actual[i]);
            if (!(d <= worst)) { worst = d; at = i; }
        }
        Assert.True(worst <= LogitTolerance, $"{what}: logit {at} differs by {worst} (expected {expected[at]}, got {actual[at]})");
    }

    /// <summary>The partitions the matrix runs: even, very uneven, and one token on a rank.</summary>
    public static IEnumerable<(string Name, PartitionSpec Spec)> Partitions(int tokens, int ranks)
    {
        yield return ("even", PartitionSpec.Even);
        if (ranks == 1) yield break;
        // Very uneven: weights (P - i)^2, so rank 0 gets most, the last rank least (KVR-S shape, exaggerated).
        var weights = new int[ranks];
        int total = 0;
        for (int i = 0; i < ranks; i++) total += weights[i] = (ranks - i) * (ranks - i);
        var chunks = new int[ranks];
        int used = 0;
        for (int i = 0; i < ranks; i++) used += chunks[i] = Math.Max(1, tokens * weights[i] / total);
        chunks[0] += tokens - used;
        yield return ("uneven", new PartitionSpec(PartitionKind.Explicit, chunks));
        // One token on the first and on the last rank, the rest spread over the middle (or on rank 0 for P=2).
        var single = new int[ranks];
        single[0] = 1;
        single[^1] = ranks == 2 ? tokens - 1 : 1;
        if (ranks > 2)
        {
            int rest = tokens - 2, middle = ranks - 2;
            for (int i = 1; i < ranks - 1; i++) single[i] = rest / middle + (i - 1 < rest % middle ? 1 : 0);
        }
        yield return ("one-token", new PartitionSpec(PartitionKind.Explicit, single));
    }

    public static int[] Prompt(int tokens, int vocab, int seed = 7)
    {
        var rng = new Random(seed);
        var ids = new int[tokens];
        ids[0] = 1;
        for (int i = 1; i < tokens; i++) ids[i] = rng.Next(vocab);
        return ids;
    }
}
