namespace Runahead.Diagnostics;

/// <summary>Where one rank's prefill time went, in milliseconds (KV-RUNAHEAD.md section 7).</summary>
public sealed record RankTimings(int Rank, double ComputeMs, double WaitKvMs, double SendMs, double IdleMs, double TotalMs);
