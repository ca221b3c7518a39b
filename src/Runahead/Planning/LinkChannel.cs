namespace Runahead.Planning;

/// <summary>
/// One directed link during a simulation: it carries one message at a time (later sends queue behind it), each
/// message occupying it for bytes / available bandwidth and arriving one latency after its last byte left.
/// Background bursts lower the available bandwidth while they last.
/// </summary>
internal sealed class LinkChannel
{
    private double _bandwidth;
    private double _latency;
    private BackgroundTraffic _traffic;
    private bool _noisy;
    private readonly List<double> _boundaries = new();
    private Random? _random;

    public double FreeAt { get; private set; }

    public void Reset(double bandwidth, double latency, BackgroundTraffic? traffic)
    {
        _bandwidth = bandwidth;
        _latency = latency;
        FreeAt = 0;
        bool sameSchedule = _noisy && traffic is { } t0 && t0 == _traffic;
        _noisy = traffic.HasValue && traffic.Value.Share > 0;
        if (_noisy && !sameSchedule)
        {
            // The burst schedule depends only on the seed, so it is kept across runs that use the same traffic.
            _traffic = traffic!.Value;
            _random = new Random(_traffic.Seed);
            _boundaries.Clear();
            _boundaries.Add(0);
        }
    }

    /// <summary>Sends <paramref name="bytes"/> once the sender is <paramref name="ready"/> and the link is free.</summary>
    public (double Start, double End, double Arrival) Send(double ready, double bytes)
    {
        double start = Math.Max(ready, FreeAt);
        double end = _noisy ? Serialize(start, bytes) : start + bytes / _bandwidth;
        FreeAt = end;
        return (start, end, end + _latency);
    }

    private double Serialize(double start, double bytes)
    {
        double t = start, remaining = bytes;
        while (true)
        {
            int k = IntervalAt(t);
            double intervalEnd = _boundaries[k + 1];
            // Even intervals are gaps, odd ones bursts.
            double rate = (k & 1) == 1 ? _bandwidth * (1 - _traffic.Share) : _bandwidth;
            double capacity = rate * (intervalEnd - t);
            if (capacity >= remaining) return t + remaining / rate;
            remaining -= capacity;
            t = intervalEnd;
        }
    }

    private int IntervalAt(double t)
    {
        while (_boundaries[^1] <= t) Extend();
        int lo = 0, hi = _boundaries.Count - 1;
        while (hi - lo > 1)
        {
            int mid = (lo + hi) >> 1;
            if (_boundaries[mid] <= t) lo = mid; else hi = mid;
        }
        return lo;
    }

    private void Extend()
    {
        // Ensure at least one interval beyond the last boundary.
        bool nextIsBurst = (_boundaries.Count & 1) == 0;
        double mean = nextIsBurst ? _traffic.MeanBurstSeconds : _traffic.MeanGapSeconds;
        double length = -mean * Math.Log(1 - _random!.NextDouble());
        _boundaries.Add(_boundaries[^1] + Math.Max(length, 1e-9));
    }
}
