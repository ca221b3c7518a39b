using System.Runtime.CompilerServices;

namespace Runahead.Tests;

/// <summary>
/// Rank workers started by the tests share packed weights through a cache folder; keep that cache in a folder of
/// this test run (removed at exit) instead of the user's ~/.cache/runahead.
/// </summary>
internal static class TestEnvironment
{
    [ModuleInitializer]
    internal static void Initialize()
    {
        if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable("RUNAHEAD_SHARED_WEIGHTS_DIR"))) return;
        var folder = Directory.CreateTempSubdirectory("runahead-tests-packed-").FullName;
        Environment.SetEnvironmentVariable("RUNAHEAD_SHARED_WEIGHTS_DIR", folder);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { Directory.Delete(folder, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        };
    }
}
