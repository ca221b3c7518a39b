namespace Runahead.Tests;

/// <summary>
/// Finds ../shared/fixtures (or $RUNAHEAD_FIXTURES). A test that needs a missing fixture is skipped with the reason,
/// except under CI (CI=true), where it fails.
/// </summary>
public static class Fixtures
{
    private static readonly Lazy<string?> Root = new(FindRoot);

    private static string? FindRoot()
    {
        var env = Environment.GetEnvironmentVariable("RUNAHEAD_FIXTURES");
        if (!string.IsNullOrEmpty(env)) return Directory.Exists(env) ? env : null;
        // Walk up from the test assembly: the repository's parent holds shared/ (also for git worktrees beside it).
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            var candidate = System.IO.Path.Combine(dir.FullName, "shared", "fixtures");
            if (Directory.Exists(candidate)) return candidate;
        }
        return null;
    }

    public static bool InCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    /// <summary>Full path of a fixture (relative to shared/fixtures), or skips/fails the test when it is absent.</summary>
    public static string Path(string relative)
    {
        var root = Root.Value;
        var full = root == null ? null : System.IO.Path.Combine(root, relative);
        if (full != null && (File.Exists(full) || Directory.Exists(full))) return full;
        var reason = root == null
            ? $"fixture '{relative}' not found: no shared/fixtures above the test folder and RUNAHEAD_FIXTURES unset"
            : $"fixture '{relative}' not found under {root}";
        if (InCi) throw new InvalidOperationException("CI=true and " + reason);
        throw new SkipException(reason);
    }
}
