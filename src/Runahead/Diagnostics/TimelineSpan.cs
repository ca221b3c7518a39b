namespace Runahead.Diagnostics;

/// <summary>
/// One stretch of a rank's time. Times are <see cref="System.Diagnostics.Stopwatch.GetTimestamp"/> ticks, which on
/// one host come from the same monotonic clock in every process, so spans of worker processes line up.
/// <see cref="Layer"/> is -1 for work outside the decoder layers (embedding, LM head).
/// </summary>
public readonly record struct TimelineSpan(int Rank, int Layer, SpanKind Kind, long StartTicks, long EndTicks)
{
    public long DurationTicks => EndTicks - StartTicks;
}
