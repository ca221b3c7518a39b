using System.Diagnostics;

namespace Runahead.Tests.Publish;

/// <summary>Publishing is slow and uses both cores: it runs alone, after the parallel tests.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class PublishCollection
{
    public const string Name = "NativeAOT publish";
}

[Collection(PublishCollection.Name)]
public class NativeAotSmokeTests
{
    /// <summary>
    /// scripts/aot-smoke.sh: the NativeAOT build (the one that meets the peak-memory target on small models) publishes
    /// without trimming/AOT warnings (warnings are errors), prints the JIT build's text on stories260K with 1 and 2
    /// ranks, and runs bench ttft and reproduce. Needs a C toolchain for the native link; skipped without one.
    /// </summary>
    [SkippableFact]
    public void NativeAotBuildMatchesTheJitBuild()
    {
        Skip.IfNot(OnPath("clang") || OnPath("gcc"), "no clang or gcc on PATH: NativeAOT cannot link here");
        Skip.IfNot(OnPath("python3"), "python3 is needed by scripts/aot-smoke.sh");
        Fixtures.Path("llama2c/stories260K.bin"); // skips (or fails under CI) without the fixtures
        string root = RepositoryRoot();
        string output = Directory.CreateTempSubdirectory("runahead-aot-").FullName;
        try
        {
            var psi = new ProcessStartInfo("bash", [Path.Combine(root, "scripts", "aot-smoke.sh"), output])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                WorkingDirectory = root,
            };
            psi.Environment["RUNAHEAD_FIXTURES"] = Path.GetDirectoryName(Path.GetDirectoryName(Fixtures.Path("llama2c/stories260K.bin")))!;
            using var process = Process.Start(psi)!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            // A hang guard only: the publish takes about a minute on 2 cores.
            if (!process.WaitForExit(TimeSpan.FromMinutes(8)))
            {
                process.Kill(entireProcessTree: true);
                Assert.Fail("scripts/aot-smoke.sh did not finish within 8 minutes");
            }
            Assert.True(process.ExitCode == 0, $"aot-smoke failed ({process.ExitCode}): {stderr.Result}{stdout.Result}");
            Assert.Contains("aot-smoke: ok", stdout.Result);
        }
        finally
        {
            try { Directory.Delete(output, recursive: true); } catch (IOException) { }
        }
    }

    private static bool OnPath(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Any(dir => File.Exists(Path.Combine(dir, program)));

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Runahead.slnx"))) return dir.FullName;
        throw new InvalidOperationException("Runahead.slnx not found above " + AppContext.BaseDirectory);
    }
}
