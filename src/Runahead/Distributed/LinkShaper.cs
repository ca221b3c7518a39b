using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Runahead.Distributed;

/// <summary>
/// Emulated links between ranks: per directed link a bandwidth (bytes/s, +inf = unpaced), a fixed latency, and optional
/// background "sidecar" bursts that take a share of the link's capacity. <see cref="Schedule"/> returns the time at
/// which a message becomes visible to its receiver; the transports hold it back until then.
/// </summary>
/// <remarks>
/// Each link serialises its messages (a token bucket with no burst allowance): a message starts when the link is free,
/// takes bytes / available-rate, and arrives one latency after its last byte. Only the sending rank schedules on a
/// link, so the state is per process even when ranks are processes.
/// </remarks>
public sealed class LinkShaper
{
    private readonly double[] _bandwidth;   // bytes per second, [source * P + dest]
    private readonly double _latencySeconds;
    private readonly List<Sidecar> _sidecars = new();
    private readonly double[] _freeAt;      // seconds on the Stopwatch clock, per link
    private readonly object _lock = new();

    public LinkShaper(int worldSize, double bytesPerSecond, TimeSpan latency)
        : this(worldSize, Uniform(worldSize, bytesPerSecond), latency) { }

    /// <param name="bandwidthMatrix">worldSize x worldSize bytes/s, row = source; the diagonal is ignored.</param>
    public LinkShaper(int worldSize, double[] bandwidthMatrix, TimeSpan latency)
    {
        if (worldSize < 1) throw new ArgumentOutOfRangeException(nameof(worldSize));
        if (bandwidthMatrix.Length != worldSize * worldSize)
            throw new ArgumentException($"bandwidth matrix needs {worldSize}x{worldSize} entries, got {bandwidthMatrix.Length}", nameof(bandwidthMatrix));
        if (latency < TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(latency), "latency is negative");
        for (int i = 0; i < bandwidthMatrix.Length; i++)
            if (i / worldSize != i % worldSize && !(bandwidthMatrix[i] > 0))
                throw new ArgumentException($"bandwidth of link {i / worldSize}->{i % worldSize} must be positive", nameof(bandwidthMatrix));
        WorldSize = worldSize;
        _bandwidth = (double[])bandwidthMatrix.Clone();
        _latencySeconds = latency.TotalSeconds;
        _freeAt = new double[worldSize * worldSize];
    }

    public int WorldSize { get; }

    public TimeSpan Latency => TimeSpan.FromSeconds(_latencySeconds);

    public double Bandwidth(int source, int dest) => _bandwidth[source * WorldSize + dest];

    public IReadOnlyList<Sidecar> Sidecars => _sidecars;

    /// <summary>
    /// Background traffic on link source->dest: every <paramref name="period"/>, for <paramref name="burst"/>, it takes
    /// <paramref name="share"/> (0..1) of the link. Where in each period the burst falls is drawn from <paramref name="seed"/>.
    /// </summary>
    public void AddSidecar(int source, int dest, double share, TimeSpan burst, TimeSpan period, int seed)
    {
        if ((uint)source >= (uint)WorldSize || (uint)dest >= (uint)WorldSize || source == dest)
            throw new RunaheadException($"sidecar link {source}->{dest} is not a link between ranks 0..{WorldSize - 1}");
        if (!(share >= 0 && share <= 1)) throw new RunaheadException($"sidecar share {share} outside 0..100 %");
        if (period <= TimeSpan.Zero || burst < TimeSpan.Zero || burst > period)
            throw new RunaheadException($"sidecar burst {burst.TotalMilliseconds} ms must fit in its period {period.TotalMilliseconds} ms");
        _sidecars.Add(new Sidecar(source, dest, share, burst.TotalSeconds, period.TotalSeconds, seed));
    }

    /// <summary>
    /// Books <paramref name="bytes"/> on link source->dest, sent at <paramref name="now"/> (a Stopwatch timestamp), and
    /// returns the Stopwatch timestamp at which the receiver may see the message (0 when the link is unpaced).
    /// </summary>
    public long Schedule(int source, int dest, long bytes, long now)
    {
        int link = source * WorldSize + dest;
        double bandwidth = _bandwidth[link];
        if (double.IsPositiveInfinity(bandwidth) && _latencySeconds == 0) return 0;
        double nowSeconds = (double)now / Stopwatch.Frequency;
        double arrival;
        lock (_lock)
        {
            double start = Math.Max(nowSeconds, _freeAt[link]);
            double finish = double.IsPositiveInfinity(bandwidth) ? start : TransferEnd(source, dest, bandwidth, start, bytes);
            _freeAt[link] = finish;
            arrival = finish + _latencySeconds;
        }
        return (long)Math.Ceiling(arrival * Stopwatch.Frequency);
    }

    /// <summary>Pure transfer time of <paramref name="bytes"/> starting at <paramref name="start"/> seconds (no queueing, no latency).</summary>
    internal double TransferEnd(int source, int dest, double bandwidth, double start, long bytes)
    {
        Sidecar? sidecar = null;
        foreach (var s in _sidecars)
            if (s.Source == source && s.Dest == dest) { sidecar = s; break; }
        if (sidecar == null || sidecar.Share == 0 || sidecar.BurstSeconds == 0) return start + bytes / bandwidth;
        return sidecar.TransferEnd(bandwidth, start, bytes);
    }

    /// <summary>
    /// Builds the shaper the CLI options describe (--link-bandwidth, --link-latency, --links MATRIXFILE, --sidecar SPEC,
    /// --sidecar-seed), or null when they ask for no emulation at all.
    /// </summary>
    public static LinkShaper? FromOptions(int worldSize, string? bandwidth, string? latency, string? matrixFile, IReadOnlyList<string>? sidecars, int seed = 1)
    {
        bool any = !string.IsNullOrWhiteSpace(bandwidth) || !string.IsNullOrWhiteSpace(latency) || !string.IsNullOrWhiteSpace(matrixFile) || sidecars is { Count: > 0 };
        if (!any) return null;
        var lat = string.IsNullOrWhiteSpace(latency) ? TimeSpan.Zero : ParseDuration(latency);
        LinkShaper shaper;
        if (!string.IsNullOrWhiteSpace(matrixFile))
        {
            if (!string.IsNullOrWhiteSpace(bandwidth))
                throw new RunaheadException("--links and --link-bandwidth both set the bandwidth: give one of them");
            shaper = LoadMatrix(matrixFile, worldSize, lat);
        }
        else
        {
            shaper = new LinkShaper(worldSize, string.IsNullOrWhiteSpace(bandwidth) ? double.PositiveInfinity : ParseBandwidth(bandwidth), lat);
        }
        if (sidecars != null)
            foreach (var spec in sidecars) shaper.AddSidecar(spec, seed);
        return shaper;
    }

    /// <summary>Parses "10GB/s", "500MB/s", "1.5GiB/s", "800Mbit/s", "inf" into bytes per second.</summary>
    public static double ParseBandwidth(string text, string option = "--link-bandwidth")
    {
        var t = text.Trim();
        if (t.Equals("inf", StringComparison.OrdinalIgnoreCase) || t.Equals("infinite", StringComparison.OrdinalIgnoreCase))
            return double.PositiveInfinity;
        int unitStart = 0;
        while (unitStart < t.Length && (char.IsDigit(t[unitStart]) || t[unitStart] == '.' || t[unitStart] == 'e' || t[unitStart] == 'E'))
            unitStart++;
        var unit = t[unitStart..].Trim();
        if (!double.TryParse(t[..unitStart], NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || !(value > 0) || double.IsInfinity(value))
            throw new RunaheadException($"{option}: '{text}' is not a bandwidth (examples: 10GB/s, 500MB/s, inf)");
        double scale = unit switch
        {
            "B/s" => 1,
            "KB/s" or "kB/s" => 1e3,
            "MB/s" => 1e6,
            "GB/s" => 1e9,
            "TB/s" => 1e12,
            "KiB/s" => 1024.0,
            "MiB/s" => 1024.0 * 1024,
            "GiB/s" => 1024.0 * 1024 * 1024,
            "kbit/s" or "Kbit/s" => 1e3 / 8,
            "Mbit/s" => 1e6 / 8,
            "Gbit/s" => 1e9 / 8,
            _ => throw new RunaheadException($"{option}: '{text}' has no known unit (use B/s, KB/s, MB/s, GB/s, TB/s, KiB/s, MiB/s, GiB/s, Mbit/s, Gbit/s or inf)"),
        };
        return value * scale;
    }

    /// <summary>Parses "5us", "1ms", "0.5s", "200ns", "0" into a duration.</summary>
    public static TimeSpan ParseDuration(string text, string option = "--link-latency")
    {
        var t = text.Trim();
        if (t == "0") return TimeSpan.Zero;
        (string suffix, double scale)[] units = [("ns", 1e-9), ("us", 1e-6), ("µs", 1e-6), ("ms", 1e-3), ("s", 1)];
        foreach (var (suffix, scale) in units)
        {
            if (!t.EndsWith(suffix, StringComparison.Ordinal)) continue;
            if (double.TryParse(t[..^suffix.Length], NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && v >= 0 && v < 1e6 / scale)
                return TimeSpan.FromTicks((long)Math.Round(v * scale * TimeSpan.TicksPerSecond));
            break;
        }
        throw new RunaheadException($"{option}: '{text}' is not a duration (examples: 5us, 1ms, 0)");
    }

    /// <summary>
    /// Reads a P x P bandwidth matrix: one line per source rank, entries separated by spaces or commas, each a bandwidth
    /// as accepted by <see cref="ParseBandwidth"/> (a bare number means GB/s); the diagonal may be "-". '#' starts a comment.
    /// </summary>
    public static LinkShaper LoadMatrix(string path, int worldSize, TimeSpan latency)
    {
        string[] lines;
        try
        {
            lines = File.ReadAllLines(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new RunaheadException($"{path}: cannot read link matrix ({e.Message})");
        }
        return new LinkShaper(worldSize, ParseMatrix(lines, path, worldSize), latency);
    }

    internal static double[] ParseMatrix(IReadOnlyList<string> lines, string name, int worldSize)
    {
        var matrix = new double[worldSize * worldSize];
        int row = 0;
        for (int n = 0; n < lines.Count; n++)
        {
            var line = lines[n];
            int hash = line.IndexOf('#');
            if (hash >= 0) line = line[..hash];
            var cells = line.Split([' ', '\t', ','], StringSplitOptions.RemoveEmptyEntries);
            if (cells.Length == 0) continue;
            if (row >= worldSize) throw new RunaheadException($"{name}:{n + 1}: more than {worldSize} rows for {worldSize} ranks");
            if (cells.Length != worldSize)
                throw new RunaheadException($"{name}:{n + 1}: {cells.Length} entries, expected {worldSize} (one per rank)");
            for (int c = 0; c < worldSize; c++)
            {
                if (c == row) { matrix[row * worldSize + c] = double.PositiveInfinity; continue; }
                var cell = cells[c];
                matrix[row * worldSize + c] = double.TryParse(cell, NumberStyles.Float, CultureInfo.InvariantCulture, out var gb) && gb > 0
                    ? gb * 1e9
                    : ParseBandwidth(cell, $"{name}:{n + 1}");
            }
            row++;
        }
        if (row != worldSize) throw new RunaheadException($"{name}: {row} rows, expected {worldSize} (one per rank)");
        return matrix;
    }

    /// <summary>Parses "1->2:50%:2ms/10ms" (link 1->2 loses 50 % for 2 ms of every 10 ms) and adds it.</summary>
    public void AddSidecar(string spec, int seed)
    {
        var parts = spec.Split(':');
        var link = parts[0].Split("->");
        if (parts.Length != 3 || link.Length != 2 || !int.TryParse(link[0], out int s) || !int.TryParse(link[1], out int d)
            || !parts[1].EndsWith('%') || !double.TryParse(parts[1][..^1], NumberStyles.Float, CultureInfo.InvariantCulture, out var pct)
            || parts[2].Split('/') is not [var burst, var period])
            throw new RunaheadException($"--sidecar: '{spec}' is not SRC->DST:SHARE%:BURST/PERIOD (example: 1->2:50%:2ms/10ms)");
        AddSidecar(s, d, pct / 100, ParseDuration(burst, "--sidecar"), ParseDuration(period, "--sidecar"), seed);
    }

    /// <summary>A one-line, culture-invariant description that <see cref="FromSpec"/> turns back into an equal shaper (to hand to workers).</summary>
    public string ToSpec()
    {
        var sb = new StringBuilder();
        sb.Append(WorldSize).Append('|').Append(_latencySeconds.ToString("R", CultureInfo.InvariantCulture)).Append('|');
        for (int i = 0; i < _bandwidth.Length; i++)
        {
            if (i > 0) sb.Append(',');
            sb.Append(double.IsPositiveInfinity(_bandwidth[i]) ? "inf" : _bandwidth[i].ToString("R", CultureInfo.InvariantCulture));
        }
        sb.Append('|');
        for (int i = 0; i < _sidecars.Count; i++)
        {
            var s = _sidecars[i];
            if (i > 0) sb.Append(';');
            sb.Append(CultureInfo.InvariantCulture, $"{s.Source},{s.Dest},{s.Share:R},{s.BurstSeconds:R},{s.PeriodSeconds:R},{s.Seed}");
        }
        return sb.ToString();
    }

    public static LinkShaper FromSpec(string spec)
    {
        try
        {
            var parts = spec.Split('|');
            int p = int.Parse(parts[0], CultureInfo.InvariantCulture);
            double latency = double.Parse(parts[1], CultureInfo.InvariantCulture);
            var bw = parts[2].Split(',');
            var matrix = new double[bw.Length];
            for (int i = 0; i < bw.Length; i++)
                matrix[i] = bw[i] == "inf" ? double.PositiveInfinity : double.Parse(bw[i], CultureInfo.InvariantCulture);
            var shaper = new LinkShaper(p, matrix, TimeSpan.FromSeconds(latency));
            if (parts[3].Length > 0)
                foreach (var item in parts[3].Split(';'))
                {
                    var f = item.Split(',');
                    shaper.AddSidecar(int.Parse(f[0], CultureInfo.InvariantCulture), int.Parse(f[1], CultureInfo.InvariantCulture),
                        double.Parse(f[2], CultureInfo.InvariantCulture), TimeSpan.FromSeconds(double.Parse(f[3], CultureInfo.InvariantCulture)),
                        TimeSpan.FromSeconds(double.Parse(f[4], CultureInfo.InvariantCulture)), int.Parse(f[5], CultureInfo.InvariantCulture));
                }
            return shaper;
        }
        catch (Exception e) when (e is FormatException or IndexOutOfRangeException or OverflowException or ArgumentException)
        {
            throw new RunaheadException($"--links-spec: malformed link description '{spec}'");
        }
    }

    private static double[] Uniform(int worldSize, double bytesPerSecond)
    {
        var m = new double[worldSize * worldSize];
        Array.Fill(m, bytesPerSecond);
        return m;
    }

    /// <summary>Background traffic on one link; see <see cref="AddSidecar(int,int,double,TimeSpan,TimeSpan,int)"/>.</summary>
    public sealed record Sidecar(int Source, int Dest, double Share, double BurstSeconds, double PeriodSeconds, int Seed)
    {
        /// <summary>Where the burst of period <paramref name="k"/> starts, as a fraction of the slack (period - burst).</summary>
        private double BurstOffset(long k)
        {
            // A small integer hash: deterministic per (seed, link, period) and identical in every process.
            ulong h = (ulong)k * 0x9E3779B97F4A7C15UL ^ (ulong)(uint)Seed * 0xBF58476D1CE4E5B9UL ^ (ulong)(Source * 131 + Dest) * 0x94D049BB133111EBUL;
            h ^= h >> 31; h *= 0xD6E8FEB86659FD93UL; h ^= h >> 32;
            return (h >> 11) * (1.0 / (1UL << 53)) * (PeriodSeconds - BurstSeconds);
        }

        internal double TransferEnd(double bandwidth, double t, double bytes)
        {
            if (bytes <= 0) return t;
            double reduced = bandwidth * (1 - Share);
            double perPeriod = bandwidth * (PeriodSeconds - BurstSeconds) + reduced * BurstSeconds;
            // The period index advances explicitly: recomputing it from t could round back into a finished period.
            long k = (long)Math.Floor(t / PeriodSeconds);
            while (true)
            {
                double periodStart = k * PeriodSeconds;
                if (t <= periodStart && bytes > 2 * perPeriod)
                {
                    // Whole periods carry a fixed amount wherever their burst falls: skip them in bulk.
                    long whole = (long)(bytes / perPeriod) - 1;
                    bytes -= whole * perPeriod;
                    k += whole;
                    t = k * PeriodSeconds;
                    continue;
                }
                double burstStart = periodStart + BurstOffset(k);
                double burstEnd = burstStart + BurstSeconds;
                double periodEnd = periodStart + PeriodSeconds;
                if (Segment(ref t, ref bytes, periodStart, burstStart, bandwidth, out var done)
                    || Segment(ref t, ref bytes, burstStart, burstEnd, reduced, out done)
                    || Segment(ref t, ref bytes, burstEnd, periodEnd, bandwidth, out done))
                    return done;
                k++;
                t = Math.Max(t, k * PeriodSeconds);
            }
        }

        /// <summary>Sends what fits in [from, to) at <paramref name="rate"/>; true (with the finish time) when the message ends there.</summary>
        private static bool Segment(ref double t, ref double bytes, double from, double to, double rate, out double finish)
        {
            finish = 0;
            double s = Math.Max(t, from);
            if (s >= to) return false;
            double capacity = rate * (to - s);
            if (capacity >= bytes)
            {
                finish = s + bytes / rate;
                return true;
            }
            bytes -= capacity;
            t = to;
            return false;
        }
    }
}
