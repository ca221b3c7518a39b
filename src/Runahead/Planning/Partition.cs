using System.Globalization;

namespace Runahead.Planning;

/// <summary>Chunk sizes of a prompt split over ranks: rank i gets tokens [S_{i-1}, S_i).</summary>
public static class Partition
{
    /// <summary>Even split; the remainder goes to the first ranks (the cheaper side for KV-Runahead).</summary>
    public static int[] Even(int tokens, int ranks)
    {
        Check(tokens, ranks);
        var chunks = new int[ranks];
        for (int i = 0; i < ranks; i++) chunks[i] = tokens / ranks + (i < tokens % ranks ? 1 : 0);
        return chunks;
    }

    /// <summary>Chunks proportional to <paramref name="weights"/>, each at least one token, summing to tokens.</summary>
    public static int[] FromWeights(ReadOnlySpan<double> weights, int tokens)
    {
        Check(tokens, weights.Length);
        double total = 0;
        foreach (double w in weights)
        {
            if (!(w > 0) || !double.IsFinite(w)) throw new RunaheadException("partition weights must be positive numbers");
            total += w;
        }
        Span<double> splits = stackalloc double[weights.Length - 1];
        double acc = 0;
        for (int i = 0; i < splits.Length; i++)
        {
            acc += weights[i];
            splits[i] = acc / total;
        }
        return FromSplits(splits, tokens);
    }

    /// <summary>
    /// Chunks from the P-1 cumulative split fractions S_i / C (non-decreasing in (0, 1)); rounding keeps every chunk
    /// at least one token.
    /// </summary>
    public static int[] FromSplits(ReadOnlySpan<double> splits, int tokens)
    {
        int ranks = splits.Length + 1;
        Check(tokens, ranks);
        var chunks = new int[ranks];
        int prev = 0;
        for (int i = 0; i < splits.Length; i++)
        {
            int s = (int)Math.Round(splits[i] * tokens, MidpointRounding.AwayFromZero);
            s = Math.Clamp(s, prev + 1, tokens - (ranks - 1 - i));
            chunks[i] = s - prev;
            prev = s;
        }
        chunks[^1] = tokens - prev;
        return chunks;
    }

    /// <summary>The P-1 cumulative split fractions of <paramref name="chunks"/>.</summary>
    public static double[] ToSplits(ReadOnlySpan<int> chunks)
    {
        long total = 0;
        foreach (int c in chunks) total += c;
        var splits = new double[chunks.Length - 1];
        long acc = 0;
        for (int i = 0; i < splits.Length; i++)
        {
            acc += chunks[i];
            splits[i] = (double)acc / total;
        }
        return splits;
    }

    /// <summary>"4,3,2" or "0.45,0.33,0.22": weights, scaled to <paramref name="tokens"/>.</summary>
    public static double[] ParseWeights(string text, string option)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0) throw new RunaheadException($"{option}: '{text}' is not a list of chunk weights");
        var weights = new double[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            if (!double.TryParse(parts[i], NumberStyles.Float, CultureInfo.InvariantCulture, out weights[i]) || !(weights[i] > 0) || !double.IsFinite(weights[i]))
                throw new RunaheadException($"{option}: '{parts[i]}' is not a positive chunk weight");
        }
        return weights;
    }

    public static string Format(ReadOnlySpan<int> chunks)
    {
        var parts = new string[chunks.Length];
        for (int i = 0; i < chunks.Length; i++) parts[i] = chunks[i].ToString(CultureInfo.InvariantCulture);
        return string.Join('/', parts);
    }

    private static void Check(int tokens, int ranks)
    {
        if (ranks < 1 || ranks > 4096) throw new RunaheadException($"rank count {ranks} must be between 1 and 4096");
        if (tokens < ranks) throw new RunaheadException($"{tokens} tokens cannot be split over {ranks} ranks (each needs at least one)");
    }
}
