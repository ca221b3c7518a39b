using System.Collections.Concurrent;

namespace Runahead.Numerics;

/// <summary>
/// cos/sin of pos * theta^(-2i/d) for one (theta, headDim), computed in double exactly as the reference does and
/// cached for positions [0, capacity). The table grows by doubling up to <see cref="MaxCachedPositions"/>; beyond
/// that positions are computed on the fly, so a huge position cannot make us allocate gigabytes.
/// </summary>
internal sealed class RopeTable
{
    public const int MaxCachedPositions = 1 << 17;
    private static readonly ConcurrentDictionary<(float Theta, int HeadDim), RopeTable> Tables = new();

    private readonly double[] _inverseFrequency;
    private readonly object _growLock = new();
    private volatile Snapshot _snapshot = new(0, [], []);

    private sealed record Snapshot(int Positions, float[] Cos, float[] Sin);

    private RopeTable(float theta, int headDim)
    {
        int half = headDim / 2;
        _inverseFrequency = new double[half];
        for (int i = 0; i < half; i++) _inverseFrequency[i] = 1.0 / Math.Pow(theta, 2.0 * i / headDim);
    }

    public static RopeTable For(float theta, int headDim) => Tables.GetOrAdd((theta, headDim), static key => new RopeTable(key.Theta, key.HeadDim));

    /// <summary>The cached rows for <paramref name="pos"/>, growing the table if needed; false beyond the cache limit.</summary>
    public bool TryGet(int pos, out ReadOnlySpan<float> cos, out ReadOnlySpan<float> sin)
    {
        var snap = _snapshot;
        if (pos >= snap.Positions)
        {
            if (pos >= MaxCachedPositions)
            {
                cos = sin = default;
                return false;
            }
            snap = Grow(pos + 1);
        }
        int half = _inverseFrequency.Length;
        cos = snap.Cos.AsSpan(pos * half, half);
        sin = snap.Sin.AsSpan(pos * half, half);
        return true;
    }

    public void Compute(int pos, Span<float> cos, Span<float> sin)
    {
        for (int i = 0; i < _inverseFrequency.Length; i++)
        {
            double angle = pos * _inverseFrequency[i];
            cos[i] = (float)Math.Cos(angle);
            sin[i] = (float)Math.Sin(angle);
        }
    }

    private Snapshot Grow(int needed)
    {
        lock (_growLock)
        {
            var snap = _snapshot;
            if (needed <= snap.Positions) return snap;
            int positions = Math.Min(MaxCachedPositions, Math.Max(needed, Math.Max(1024, snap.Positions * 2)));
            int half = _inverseFrequency.Length;
            var cos = new float[positions * half];
            var sin = new float[positions * half];
            snap.Cos.CopyTo(cos, 0);
            snap.Sin.CopyTo(sin, 0);
            for (int p = snap.Positions; p < positions; p++) Compute(p, cos.AsSpan(p * half, half), sin.AsSpan(p * half, half));
            var next = new Snapshot(positions, cos, sin);
            _snapshot = next;
            return next;
        }
    }
}
