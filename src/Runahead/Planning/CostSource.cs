namespace Runahead.Planning;

/// <summary>Where a per-layer cost comes from.</summary>
public enum CostSource
{
    /// <summary>Interpolation inside the measured grid, the least-squares fit outside it (the default).</summary>
    Hybrid,

    /// <summary>The fit t = a0 + a1*c + a2*c*(p + c/2) everywhere: smooth, so searches and tables behave well.</summary>
    Fit,
}
