namespace Runahead.Planning;

/// <summary>
/// One measured point: a decoder layer of <see cref="Model"/> run on c new tokens with p prefix tokens.
/// <see cref="QkvMs"/> is NaN when the measurement has no split (the H200 file).
/// </summary>
public readonly record struct CalibrationRow(string Model, int C, int P, double CausalMs, double DenseMs, double QkvMs);
