namespace Runahead.Generation;

/// <summary>
/// Chooses the next token: repetition penalty, then greedy argmax (temperature 0) or temperature, top-k and top-p
/// (nucleus) sampling with a seeded generator. Buffers are allocated once for the vocabulary; sampling allocates
/// nothing.
/// </summary>
public sealed class Sampler
{
    private readonly SamplingOptions _options;
    private readonly float[] _probs;
    private readonly int[] _order;
    private readonly int[] _seenStamp;
    private int _stamp;
    private ulong _state;

    public int VocabSize { get; }

    public Sampler(int vocabSize, SamplingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (vocabSize < 1) throw new ArgumentOutOfRangeException(nameof(vocabSize));
        options.Validate();
        _options = options;
        VocabSize = vocabSize;
        _probs = new float[vocabSize];
        _order = new int[vocabSize];
        _seenStamp = new int[vocabSize];
        _state = options.Seed ?? (ulong)Random.Shared.NextInt64();
    }

    /// <summary>
    /// Picks a token from <paramref name="logits"/> [VocabSize] (modified in place by the penalty);
    /// <paramref name="history"/> is the sequence so far (prompt and generated tokens).
    /// </summary>
    public int Sample(Span<float> logits, ReadOnlySpan<int> history)
    {
        if (logits.Length < VocabSize) throw new ArgumentException($"logits holds {logits.Length} values, the vocabulary has {VocabSize}", nameof(logits));
        logits = logits[..VocabSize];
        if (_options.RepeatPenalty != 1f && _options.RepeatLastN > 0) ApplyRepeatPenalty(logits, history);
        if (_options.Temperature == 0) return ArgMax(logits);
        return SampleSoftmax(logits);
    }

    /// <summary>Index of the largest value; the lowest index among equal maxima (as llama2.c's run.c).</summary>
    public static int ArgMax(ReadOnlySpan<float> values)
    {
        int best = 0;
        float max = values[0];
        for (int i = 1; i < values.Length; i++)
            if (values[i] > max) { max = values[i]; best = i; }
        return best;
    }

    private void ApplyRepeatPenalty(Span<float> logits, ReadOnlySpan<int> history)
    {
        // Each distinct recent token is penalised once; stamps avoid clearing a vocabulary-sized set per token.
        if (++_stamp == int.MaxValue) { Array.Clear(_seenStamp); _stamp = 1; }
        float p = _options.RepeatPenalty;
        var recent = history[Math.Max(0, history.Length - _options.RepeatLastN)..];
        foreach (int id in recent)
        {
            if ((uint)id >= (uint)VocabSize || _seenStamp[id] == _stamp) continue;
            _seenStamp[id] = _stamp;
            logits[id] = logits[id] > 0 ? logits[id] / p : logits[id] * p;
        }
    }

    private int SampleSoftmax(ReadOnlySpan<float> logits)
    {
        int n = VocabSize;
        float invT = 1f / _options.Temperature;
        int k = _options.TopK > 0 ? Math.Min(_options.TopK, n) : n;
        bool truncate = k < n || _options.TopP < 1f;

        int count;
        if (truncate)
        {
            // Order candidates by logit, descending (keys negated for the ascending sort).
            for (int i = 0; i < n; i++) { _probs[i] = -logits[i]; _order[i] = i; }
            Array.Sort(_probs, _order, 0, n);
            count = k;
            float max = -_probs[0];
            double sum = 0;
            for (int i = 0; i < count; i++) { _probs[i] = MathF.Exp((-_probs[i] - max) * invT); sum += _probs[i]; }
            if (_options.TopP < 1f)
            {
                double cumulative = 0, target = _options.TopP * sum;
                for (int i = 0; i < count; i++)
                {
                    cumulative += _probs[i];
                    if (cumulative >= target) { count = i + 1; break; }
                }
            }
        }
        else
        {
            float max = float.NegativeInfinity;
            for (int i = 0; i < n; i++) max = Math.Max(max, logits[i]);
            for (int i = 0; i < n; i++) { _probs[i] = MathF.Exp((logits[i] - max) * invT); _order[i] = i; }
            count = n;
        }

        double total = 0;
        for (int i = 0; i < count; i++) total += _probs[i];
        double r = NextDouble() * total, acc = 0;
        for (int i = 0; i < count; i++)
        {
            acc += _probs[i];
            if (r < acc) return _order[i];
        }
        return _order[count - 1];
    }

    /// <summary>SplitMix64: a fixed algorithm so a seed gives the same tokens on every runtime version.</summary>
    private double NextDouble()
    {
        ulong z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        return (z >> 11) * (1.0 / (1UL << 53));
    }
}
