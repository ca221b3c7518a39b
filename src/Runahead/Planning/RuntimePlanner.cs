using Runahead.Models;
using Runahead.Prefill;

namespace Runahead.Planning;

/// <summary>
/// The bridge from the runtime's <c>--partition searched|predicted</c> (PartitionSpec.Resolve's planner hook) to the
/// planner: searched runs KVR-S on the simulator for the exact (tokens, ranks); predicted interpolates a KVR-P table,
/// loaded or built on first use for a rank count and kept.
/// </summary>
public sealed class RuntimePlanner
{
    private readonly Simulator _simulator;
    private readonly PartitionTable? _table;
    private readonly Dictionary<int, PartitionTable> _built = new();
    private readonly double _bandwidth;
    private readonly object _lock = new();

    public RuntimePlanner(Calibration calibration, ModelConfig shape, string calibrationModel, LinkTopology links,
        double bandwidthBytesPerSecond, PartitionTable? table = null)
    {
        // The smooth fit, not interpolated measurements: a search chases the noise of single measured points.
        _simulator = new Simulator(calibration.CostModel(shape, calibrationModel, CostSource.Fit), links);
        _bandwidth = bandwidthBytesPerSecond;
        _table = table;
    }

    /// <summary>For <c>PartitionSpec.Resolve(tokens, ranks, planner.Plan)</c>.</summary>
    public int[]? Plan(PartitionKind kind, int tokens, int ranks)
    {
        // The simulator reuses buffers, so concurrent callers take turns.
        lock (_lock)
        {
            switch (kind)
            {
                case PartitionKind.Searched:
                    return new SearchedPartitionPlanner(_simulator).Plan(tokens, ranks);
                case PartitionKind.Predicted:
                    if (_table != null && _table.Entries.Any(e => e.Ranks == ranks)) return _table.Predict(tokens, ranks, _bandwidth);
                    if (!_built.TryGetValue(ranks, out var table))
                    {
                        var lengths = PartitionTable.DefaultTokens.Where(t => t >= ranks).ToArray();
                        table = PartitionTable.Build(_simulator.Cost.Model, "runtime", _ => _simulator, lengths, [ranks], [_bandwidth]);
                        _built[ranks] = table;
                    }
                    return table.Predict(tokens, ranks, _bandwidth);
                default:
                    return null;
            }
        }
    }
}
