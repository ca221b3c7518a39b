namespace Runahead.Planning;

public sealed class SimulationResult
{
    public required PrefillStrategy Strategy { get; init; }
    public required int[] Chunks { get; init; }
    public required double TtftSeconds { get; init; }

    /// <summary>Per-rank spans; empty unless the timeline was requested.</summary>
    public IReadOnlyList<SimSpan> Timeline { get; init; } = [];

    /// <summary>How many of the run's distinct cost lookups came from the measured grid and from the fit.</summary>
    public int GridLookups { get; init; }
    public int FitLookups { get; init; }

    /// <summary>Total time per kind on one rank (for reports).</summary>
    public double Total(int rank, SimSpanKind kind)
    {
        double s = 0;
        foreach (var span in Timeline) if (span.Rank == rank && span.Kind == kind) s += span.Duration;
        return s;
    }
}
