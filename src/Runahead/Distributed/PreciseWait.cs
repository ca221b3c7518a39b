using System.Diagnostics;

namespace Runahead.Distributed;

/// <summary>
/// Waits measured in <see cref="Stopwatch"/> ticks (CLOCK_MONOTONIC on Linux, so comparable across processes). Sleeps
/// while the target is far, then yields and spins: pacing needs sub-millisecond accuracy, which timers do not give.
/// </summary>
internal static class PreciseWait
{
    private static readonly long SleepMargin = Stopwatch.Frequency / 500; // 2 ms: Thread.Sleep(1) may oversleep by ~1 ms

    public static long Now => Stopwatch.GetTimestamp();

    public static long FromTimeSpan(TimeSpan span) => span == Timeout.InfiniteTimeSpan || span >= TimeSpan.FromDays(365)
        ? long.MaxValue / 4
        : (long)(span.TotalSeconds * Stopwatch.Frequency);

    public static long FromSeconds(double seconds) => (long)(seconds * Stopwatch.Frequency);

    public static double ToSeconds(long ticks) => (double)ticks / Stopwatch.Frequency;

    /// <summary>As <see cref="Until"/>, but gives the thread back while the target is far (tasks of many ranks share the pool).</summary>
    public static async ValueTask UntilAsync(long timestamp, CancellationToken ct)
    {
        long remaining = timestamp - Stopwatch.GetTimestamp();
        if (remaining > 2 * SleepMargin)
            await Task.Delay(TimeSpan.FromSeconds((double)(remaining - SleepMargin) / Stopwatch.Frequency), ct).ConfigureAwait(false);
        Until(timestamp, ct);
    }

    /// <summary>Blocks the calling thread until <paramref name="timestamp"/> (no-op when it has passed).</summary>
    public static void Until(long timestamp, CancellationToken ct)
    {
        while (true)
        {
            long remaining = timestamp - Stopwatch.GetTimestamp();
            if (remaining <= 0) return;
            ct.ThrowIfCancellationRequested();
            if (remaining > SleepMargin)
                Thread.Sleep((int)Math.Min(50, (remaining - SleepMargin) * 1000 / Stopwatch.Frequency));
            else if (remaining > Stopwatch.Frequency / 20_000)
                Thread.Yield();
            else
                Thread.SpinWait(20);
        }
    }
}
