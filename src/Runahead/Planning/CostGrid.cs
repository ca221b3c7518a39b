namespace Runahead.Planning;

/// <summary>
/// Measured costs on a (c, p) grid whose rows (one per c) may cover different p ranges. Inside the grid a cost is
/// interpolated linearly in p on the two neighbouring c rows, then linearly in c; outside it there is no answer and the
/// caller falls back to the fit.
/// </summary>
public sealed class CostGrid
{
    private readonly int[] _cs;
    private readonly int[][] _ps;
    private readonly double[][] _seconds;

    public CostGrid(ReadOnlySpan<(int C, int P, double Seconds)> samples)
    {
        var rows = new SortedDictionary<int, SortedDictionary<int, double>>();
        foreach (var s in samples)
        {
            if (!rows.TryGetValue(s.C, out var row)) rows[s.C] = row = new SortedDictionary<int, double>();
            row[s.P] = s.Seconds;
        }
        _cs = rows.Keys.ToArray();
        _ps = rows.Values.Select(r => r.Keys.ToArray()).ToArray();
        _seconds = rows.Values.Select(r => r.Values.ToArray()).ToArray();
    }

    public int MinC => _cs[0];
    public int MaxC => _cs[^1];
    public int MaxP => _ps.Max(p => p[^1]);

    /// <summary>Interpolated cost, or NaN when (c, p) is outside the measured grid.</summary>
    public double Evaluate(int c, int p)
    {
        int hi = Array.BinarySearch(_cs, c);
        if (hi >= 0) return Row(hi, p);
        hi = ~hi;
        if (hi == 0 || hi == _cs.Length) return double.NaN;
        int lo = hi - 1;
        double a = Row(lo, p), b = Row(hi, p);
        if (double.IsNaN(a) || double.IsNaN(b)) return double.NaN;
        double w = (double)(c - _cs[lo]) / (_cs[hi] - _cs[lo]);
        return a + w * (b - a);
    }

    /// <summary>
    /// The point of the grid nearest to (c, p) along each axis: c clamped to the measured range, then p clamped to the
    /// p range both neighbouring rows cover (evaluating there gives NaN only when those rows share no p range).
    /// </summary>
    public (int C, int P) Clamp(int c, int p)
    {
        int cc = Math.Clamp(c, _cs[0], _cs[^1]);
        int hi = Array.BinarySearch(_cs, cc);
        int lo;
        if (hi >= 0) lo = hi;
        else { hi = ~hi; lo = hi - 1; }
        int minP = Math.Max(_ps[lo][0], _ps[hi][0]);
        int maxP = Math.Min(_ps[lo][^1], _ps[hi][^1]);
        return (cc, Math.Clamp(p, minP, Math.Max(minP, maxP)));
    }

    private double Row(int r, int p)
    {
        var ps = _ps[r];
        int hi = Array.BinarySearch(ps, p);
        if (hi >= 0) return _seconds[r][hi];
        hi = ~hi;
        if (hi == 0 || hi == ps.Length) return double.NaN;
        int lo = hi - 1;
        double w = (double)(p - ps[lo]) / (ps[hi] - ps[lo]);
        return _seconds[r][lo] + w * (_seconds[r][hi] - _seconds[r][lo]);
    }
}
