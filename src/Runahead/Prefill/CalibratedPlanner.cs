using Runahead.Models;
using Runahead.Planning;

namespace Runahead.Prefill;

/// <summary>
/// Answers <c>--partition searched|predicted</c> for any prompt length from a host calibration: searched runs the
/// KVR-S search on the simulator for exactly this (tokens, ranks, links); predicted interpolates the given KVR-P
/// table, or one built from the calibration for the rank count on first use. Without a calibration, a table alone
/// answers predicted and (for its exact entries only) searched.
/// </summary>
public sealed class CalibratedPlanner
{
    private readonly Calibration? _calibration;
    private readonly ModelConfig _shape;
    private readonly string _calibrationModel;
    private readonly PartitionTable? _table;
    private readonly string? _tablePath;
    private readonly Func<int, LinkTopology> _links;
    private readonly double _bandwidth;
    private readonly Dictionary<int, RuntimePlanner> _planners = new();
    private readonly object _lock = new();

    /// <param name="calibration">Layer costs of this host (from <c>runahead calibrate</c>); null: <paramref name="table"/> only.</param>
    /// <param name="shape">The model being run (its layers, KV width and vocabulary enter the costs).</param>
    /// <param name="calibrationModel">Which model's rows of the calibration to use.</param>
    /// <param name="links">The rank-to-rank links for a rank count (bandwidth matrix and latency).</param>
    /// <param name="bandwidthBytesPerSecond">The link bandwidth the table is read at (infinity: the fastest tabled).</param>
    public CalibratedPlanner(Calibration? calibration, ModelConfig shape, string calibrationModel, Func<int, LinkTopology> links,
        double bandwidthBytesPerSecond, PartitionTable? table = null, string? tablePath = null)
    {
        if (calibration == null && table == null) throw new ArgumentException("need a calibration or a partition table");
        _calibration = calibration;
        _shape = shape ?? throw new ArgumentNullException(nameof(shape));
        _calibrationModel = calibrationModel;
        _links = links ?? throw new ArgumentNullException(nameof(links));
        _bandwidth = bandwidthBytesPerSecond;
        _table = table;
        _tablePath = tablePath;
        // Fails now, with the calibration's own message, when it has no rows for the model.
        calibration?.CostModel(shape, calibrationModel);
    }

    /// <summary>
    /// The calibration rows to use for a model: <paramref name="given"/>; else the calibration's only model; else the one
    /// named like the model file (as <c>runahead calibrate</c> names rows by default).
    /// </summary>
    public static string ChooseModel(Calibration calibration, string? given, string modelPath)
    {
        var models = calibration.Models;
        if (given != null)
        {
            foreach (var m in models) if (string.Equals(m, given, StringComparison.OrdinalIgnoreCase)) return m;
            throw new RunaheadException($"--calibration-model: {calibration.Source} has no rows for '{given}' (it has: {string.Join(", ", models)})");
        }
        if (models.Count == 1) return models[0];
        string fileName = Path.GetFileNameWithoutExtension(Path.TrimEndingDirectorySeparator(modelPath));
        foreach (var m in models) if (string.Equals(m, fileName, StringComparison.OrdinalIgnoreCase)) return m;
        throw new RunaheadException(
            $"--calibration: {calibration.Source} has rows for {string.Join(", ", models)}; pick one with --calibration-model");
    }

    /// <summary>For <see cref="PartitionSpec.Resolve"/> and <see cref="PrefillClient.Planner"/>.</summary>
    public int[]? Plan(PartitionKind kind, int tokens, int ranks)
    {
        if (kind is not (PartitionKind.Searched or PartitionKind.Predicted)) return null;
        if (_calibration == null) return FromTableOnly(kind, tokens, ranks);
        RuntimePlanner planner;
        lock (_lock)
        {
            if (!_planners.TryGetValue(ranks, out planner!))
            {
                // A table without entries for this rank count cannot answer it; the planner then builds its own.
                var table = _table != null && _table.Entries.Any(e => e.Ranks == ranks) ? _table : null;
                planner = new RuntimePlanner(_calibration, _shape, _calibrationModel, _links(ranks), _bandwidth, table);
                _planners[ranks] = planner;
            }
        }
        return planner.Plan(kind, tokens, ranks);
    }

    private int[] FromTableOnly(PartitionKind kind, int tokens, int ranks)
    {
        var table = _table!;
        if (kind == PartitionKind.Predicted) return table.Predict(tokens, ranks, _bandwidth);
        foreach (var e in table.Entries)
            if (e.Ranks == ranks && e.Tokens == tokens)
                return Planning.Partition.FromSplits(e.Splits, tokens);
        throw new RunaheadException(
            $"--partition searched: {_tablePath ?? "the partition table"} has no KVR-S result for {ranks} ranks at {tokens} tokens; " +
            "give --calibration F to search any length, or use --partition predicted to interpolate");
    }
}
