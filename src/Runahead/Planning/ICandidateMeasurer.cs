namespace Runahead.Planning;

/// <summary>
/// Measures a partition on real ranks (the runtime implements it): TTFT in seconds, e.g. the median of a few runs.
/// The search hands it its best few simulated candidates and keeps the one that measured fastest.
/// </summary>
public interface ICandidateMeasurer
{
    double Measure(ReadOnlySpan<int> chunks, CancellationToken cancellationToken);
}
