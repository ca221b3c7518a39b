namespace Runahead.Planning;

/// <summary>
/// "Sidecar" traffic on a link: during bursts it takes <see cref="Share"/> of the link's capacity. Burst and gap
/// lengths are exponentially distributed with the given means, drawn from <see cref="Seed"/> so runs repeat exactly.
/// </summary>
public readonly record struct BackgroundTraffic(double Share, double MeanBurstSeconds, double MeanGapSeconds, int Seed)
{
    public void Validate()
    {
        if (!(Share >= 0 && Share < 1)) throw new RunaheadException($"background traffic share {Share} must be in [0, 1)");
        if (!(MeanBurstSeconds > 0) || !(MeanGapSeconds > 0) || !double.IsFinite(MeanBurstSeconds) || !double.IsFinite(MeanGapSeconds))
            throw new RunaheadException("background traffic burst and gap lengths must be positive");
    }
}
