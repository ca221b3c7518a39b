using System.Globalization;

namespace Runahead.Planning;

/// <summary>Parsing and formatting of the quantities the planner's options take (token counts, bandwidths, times).</summary>
public static class Units
{
    /// <summary>"4096", "4k", "16K" (k = 1024 tokens).</summary>
    public static int ParseTokens(string text, string option)
    {
        var s = text.Trim();
        long factor = 1;
        if (s.EndsWith('k') || s.EndsWith('K')) { factor = 1024; s = s[..^1]; }
        if (!long.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n * factor is < 1 or > 1 << 24)
            throw new RunaheadException($"{option}: '{text}' is not a token count between 1 and 16M (e.g. 4096 or 4k)");
        return (int)(n * factor);
    }

    /// <summary>"300GB/s", "10 GB/s", "512MB/s", "inf" → bytes per second (decimal units, as link speeds are quoted).</summary>
    public static double ParseBandwidth(string text, string option)
    {
        var s = text.Trim().Replace(" ", "", StringComparison.Ordinal);
        if (s.Equals("inf", StringComparison.OrdinalIgnoreCase)) return double.PositiveInfinity;
        if (s.EndsWith("/s", StringComparison.OrdinalIgnoreCase)) s = s[..^2];
        double factor = 1;
        foreach (var (suffix, f) in new[] { ("GB", 1e9), ("MB", 1e6), ("KB", 1e3), ("B", 1.0) })
        {
            if (s.EndsWith(suffix, StringComparison.OrdinalIgnoreCase)) { factor = f; s = s[..^suffix.Length]; break; }
        }
        if (!double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) || !(v > 0) || double.IsInfinity(v))
            throw new RunaheadException($"{option}: '{text}' is not a bandwidth (e.g. 300GB/s, 10GB/s, inf)");
        return v * factor;
    }

    /// <summary>"5us", "2ms", "0", "1s" → seconds.</summary>
    public static double ParseDuration(string text, string option)
    {
        var s = text.Trim();
        double factor = 1;
        foreach (var (suffix, f) in new[] { ("us", 1e-6), ("ns", 1e-9), ("ms", 1e-3), ("s", 1.0) })
        {
            if (s.EndsWith(suffix, StringComparison.OrdinalIgnoreCase)) { factor = f; s = s[..^suffix.Length]; break; }
        }
        if (!double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) || v < 0 || !double.IsFinite(v))
            throw new RunaheadException($"{option}: '{text}' is not a duration (e.g. 5us, 1ms)");
        return v * factor;
    }

    public static string FormatBandwidth(double bytesPerSecond) =>
        double.IsPositiveInfinity(bytesPerSecond) ? "inf" : (bytesPerSecond / 1e9).ToString("0.###", CultureInfo.InvariantCulture) + "GB/s";

    public static string FormatTokens(int tokens) =>
        tokens % 1024 == 0 ? (tokens / 1024).ToString(CultureInfo.InvariantCulture) + "k" : tokens.ToString(CultureInfo.InvariantCulture);
}
