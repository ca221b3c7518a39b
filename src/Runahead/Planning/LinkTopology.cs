namespace Runahead.Planning;

/// <summary>
/// The links between ranks: a bandwidth (bytes/s) per directed link, uniform or a P x P matrix, one latency (s), and
/// optional background traffic on chosen links. Immutable.
/// </summary>
public sealed class LinkTopology
{
    private readonly double[,]? _bandwidth;
    private readonly double _uniform;
    private readonly Dictionary<(int From, int To), BackgroundTraffic> _background;

    public double LatencySeconds { get; }

    private LinkTopology(double uniform, double[,]? matrix, double latency, Dictionary<(int, int), BackgroundTraffic> background)
    {
        _uniform = uniform;
        _bandwidth = matrix;
        LatencySeconds = latency;
        _background = background;
    }

    public static LinkTopology Uniform(double bytesPerSecond, double latencySeconds)
    {
        if (!(bytesPerSecond > 0)) throw new RunaheadException($"link bandwidth {bytesPerSecond} must be positive");
        if (!(latencySeconds >= 0) || !double.IsFinite(latencySeconds)) throw new RunaheadException($"link latency {latencySeconds} must be >= 0");
        return new LinkTopology(bytesPerSecond, null, latencySeconds, new());
    }

    /// <summary><paramref name="bytesPerSecond"/>[from, to]; the diagonal is ignored.</summary>
    public static LinkTopology FromMatrix(double[,] bytesPerSecond, double latencySeconds)
    {
        int n = bytesPerSecond.GetLength(0);
        if (n != bytesPerSecond.GetLength(1)) throw new RunaheadException("link bandwidth matrix must be square");
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                if (i != j && !(bytesPerSecond[i, j] > 0)) throw new RunaheadException($"link bandwidth [{i},{j}] must be positive");
        if (!(latencySeconds >= 0) || !double.IsFinite(latencySeconds)) throw new RunaheadException($"link latency {latencySeconds} must be >= 0");
        return new LinkTopology(0, (double[,])bytesPerSecond.Clone(), latencySeconds, new());
    }

    /// <summary>A copy with <paramref name="traffic"/> on the given directed links (each link gets its own seed).</summary>
    public LinkTopology WithBackground(BackgroundTraffic traffic, IEnumerable<(int From, int To)> links)
    {
        traffic.Validate();
        var background = new Dictionary<(int, int), BackgroundTraffic>(_background);
        foreach (var link in links)
            background[link] = traffic with { Seed = unchecked(traffic.Seed * 7919 + link.From * 131 + link.To) };
        return new LinkTopology(_uniform, _bandwidth, LatencySeconds, background);
    }

    /// <summary>The most ranks this topology describes (int.MaxValue when uniform).</summary>
    public int MaxRanks => _bandwidth?.GetLength(0) ?? int.MaxValue;

    public bool HasBackground => _background.Count > 0;

    public double Bandwidth(int from, int to) => _bandwidth?[from, to] ?? _uniform;

    public BackgroundTraffic? Background(int from, int to) => _background.TryGetValue((from, to), out var b) ? b : null;

    /// <summary>The same links with every bandwidth multiplied by <paramref name="factor"/>.</summary>
    public LinkTopology ScaleBandwidth(double factor)
    {
        double[,]? m = null;
        if (_bandwidth != null)
        {
            m = (double[,])_bandwidth.Clone();
            for (int i = 0; i < m.GetLength(0); i++)
                for (int j = 0; j < m.GetLength(1); j++) m[i, j] *= factor;
        }
        return new LinkTopology(_uniform * factor, m, LatencySeconds, _background);
    }

    public string Describe()
    {
        string bw = _bandwidth == null ? Units.FormatBandwidth(_uniform) : "per-link matrix";
        string s = FormattableString.Invariant($"links {bw}, latency {LatencySeconds * 1e6:0.##} us");
        if (_background.Count > 0)
        {
            var first = _background.Values.First();
            s += FormattableString.Invariant($", background {first.Share:P0} of capacity in bursts on {_background.Count} link(s)");
        }
        return s;
    }
}
