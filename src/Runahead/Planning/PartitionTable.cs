using System.Text.Json;

namespace Runahead.Planning;

/// <summary>One KVR-S result: the cumulative split fractions S_i / C found for (ranks, bandwidth, tokens).</summary>
public sealed record PartitionTableEntry(int Ranks, double BandwidthBytesPerSecond, int Tokens, double[] Splits, double TtftSeconds);

/// <summary>
/// KVR-P: KVR-S results at a few context lengths and bandwidths for one (model shape, calibration), with linear
/// interpolation of the split fractions in the context length (and in log bandwidth between two tabled bandwidths;
/// lengths and bandwidths outside the table take the nearest one's fractions). Interpolating cumulative fractions keeps
/// them ordered, so every prediction is a valid partition.
/// </summary>
public sealed class PartitionTable
{
    public const string FormatName = "runahead-partition-table/1";

    /// <summary>
    /// Context lengths a table holds by default: 1k to 16k at steps of x1.5 / x1.33. Near a link-bound optimum TTFT
    /// has a sharp kink in the split, so the table must be dense enough that interpolation stays near it.
    /// </summary>
    public static IReadOnlyList<int> DefaultTokens { get; } = [1024, 1536, 2048, 3072, 4096, 6144, 8192, 12288, 16384];

    public required string Model { get; init; }
    public required string Calibration { get; init; }
    public double LatencySeconds { get; init; }
    public IReadOnlyList<PartitionTableEntry> Entries { get; init; } = [];

    /// <summary>Runs KVR-S at every (ranks, bandwidth, tokens) of the grid.</summary>
    public static PartitionTable Build(string model, string calibration, Func<double, Simulator> simulatorForBandwidth,
        IEnumerable<int> tokens, IEnumerable<int> ranks, IEnumerable<double> bandwidths, PartitionSearchOptions? options = null)
    {
        var entries = new List<PartitionTableEntry>();
        double latency = 0;
        foreach (double bw in bandwidths)
        {
            var sim = simulatorForBandwidth(bw);
            latency = sim.Links.LatencySeconds;
            var objective = new SimulatedTtft(sim);
            foreach (int p in ranks)
            {
                foreach (int c in tokens)
                {
                    var r = PartitionSearch.Search(objective, c, p, options);
                    entries.Add(new PartitionTableEntry(p, bw, c, Partition.ToSplits(r.Chunks), r.Cost));
                }
            }
        }
        return new PartitionTable { Model = model, Calibration = calibration, LatencySeconds = latency, Entries = entries };
    }

    public int[] Predict(int tokens, int ranks, double bandwidthBytesPerSecond)
    {
        if (ranks == 1) return [tokens];
        var mine = Entries.Where(e => e.Ranks == ranks).ToArray();
        if (mine.Length == 0)
            throw new RunaheadException($"partition table for {Model} has no entries for {ranks} ranks (it has {string.Join(", ", Entries.Select(e => e.Ranks).Distinct())})");
        var bws = mine.Select(e => e.BandwidthBytesPerSecond).Distinct().Order().ToArray();
        var splits = new double[ranks - 1];
        int hi = 0;
        while (hi < bws.Length && bws[hi] < bandwidthBytesPerSecond) hi++;
        if (hi == 0 || hi == bws.Length || bws[hi] == bandwidthBytesPerSecond)
        {
            double nearest = bws[Math.Min(hi, bws.Length - 1)];
            InterpolateTokens(mine, nearest, tokens, splits);
        }
        else
        {
            double lo = bws[hi - 1], up = bws[hi];
            var a = new double[ranks - 1];
            var b = new double[ranks - 1];
            InterpolateTokens(mine, lo, tokens, a);
            InterpolateTokens(mine, up, tokens, b);
            double w = double.IsInfinity(up) ? 0 : (Math.Log(bandwidthBytesPerSecond) - Math.Log(lo)) / (Math.Log(up) - Math.Log(lo));
            for (int i = 0; i < splits.Length; i++) splits[i] = a[i] + w * (b[i] - a[i]);
        }
        return Partition.FromSplits(splits, tokens);
    }

    private static void InterpolateTokens(PartitionTableEntry[] entries, double bandwidth, int tokens, double[] splits)
    {
        var row = entries.Where(e => e.BandwidthBytesPerSecond == bandwidth).OrderBy(e => e.Tokens).ToArray();
        int hi = 0;
        while (hi < row.Length && row[hi].Tokens < tokens) hi++;
        if (hi == 0 || hi == row.Length || row[hi].Tokens == tokens)
        {
            row[Math.Min(hi, row.Length - 1)].Splits.CopyTo(splits, 0);
            return;
        }
        var lo = row[hi - 1];
        var up = row[hi];
        double w = (double)(tokens - lo.Tokens) / (up.Tokens - lo.Tokens);
        // The split positions S_i (in tokens) are interpolated linearly in C, not the fractions S_i / C: the partition is
        // a function S_i(C) and this is its piecewise-linear interpolant. Interpolating fractions bends it between the
        // table's lengths; on the H200 calibration's fit that cost up to +2.7 % TTFT against KVR-S (llama2-7b at
        // 10 GB/s, the study's table of lengths 768..18432 probed at 1k..16k), against +1.0 % this way.
        for (int i = 0; i < splits.Length; i++)
        {
            double lower = lo.Splits[i] * lo.Tokens, upper = up.Splits[i] * up.Tokens;
            splits[i] = (lower + w * (upper - lower)) / tokens;
        }
    }

    public void Save(string path)
    {
        try
        {
            using var stream = File.Create(path);
            using var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
            w.WriteStartObject();
            w.WriteString("format", FormatName);
            w.WriteString("model", Model);
            w.WriteString("calibration", Calibration);
            w.WriteNumber("latency_us", LatencySeconds * 1e6);
            w.WriteStartArray("entries");
            foreach (var e in Entries)
            {
                w.WriteStartObject();
                w.WriteNumber("ranks", e.Ranks);
                if (double.IsInfinity(e.BandwidthBytesPerSecond)) w.WriteString("bandwidth_GBps", "inf");
                else w.WriteNumber("bandwidth_GBps", e.BandwidthBytesPerSecond / 1e9);
                w.WriteNumber("tokens", e.Tokens);
                w.WriteStartArray("splits");
                foreach (double s in e.Splits) w.WriteNumberValue(s);
                w.WriteEndArray();
                w.WriteNumber("ttft_ms", e.TtftSeconds * 1e3);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new RunaheadException($"{path}: cannot write partition table ({e.Message})");
        }
    }

    public static PartitionTable Load(string path)
    {
        try
        {
            if (!File.Exists(path)) throw new RunaheadException($"{path}: partition table not found");
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("format", out var f) || f.ValueKind != JsonValueKind.String || f.GetString() != FormatName)
                throw new RunaheadException($"{path}: not a partition table ({FormatName})");
            var entries = new List<PartitionTableEntry>();
            foreach (var e in root.GetProperty("entries").EnumerateArray())
            {
                int ranks = e.GetProperty("ranks").GetInt32();
                var bwEl = e.GetProperty("bandwidth_GBps");
                double bw = bwEl.ValueKind == JsonValueKind.String && bwEl.GetString() == "inf" ? double.PositiveInfinity : bwEl.GetDouble() * 1e9;
                int tokens = e.GetProperty("tokens").GetInt32();
                var splits = e.GetProperty("splits").EnumerateArray().Select(s => s.GetDouble()).ToArray();
                if (ranks < 1 || splits.Length != ranks - 1 || tokens < ranks || !(bw > 0))
                    throw new RunaheadException($"{path}: entry for {ranks} ranks x {tokens} tokens is inconsistent");
                double prev = 0;
                foreach (double s in splits)
                {
                    if (!(s >= prev && s <= 1)) throw new RunaheadException($"{path}: split fractions must be increasing in [0, 1]");
                    prev = s;
                }
                entries.Add(new PartitionTableEntry(ranks, bw, tokens, splits, e.GetProperty("ttft_ms").GetDouble() * 1e-3));
            }
            return new PartitionTable
            {
                Model = root.GetProperty("model").GetString() ?? "",
                Calibration = root.GetProperty("calibration").GetString() ?? "",
                LatencySeconds = root.GetProperty("latency_us").GetDouble() * 1e-6,
                Entries = entries,
            };
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new RunaheadException($"{path}: malformed partition table ({e.Message})");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new RunaheadException($"{path}: cannot read partition table ({e.Message})");
        }
    }
}
