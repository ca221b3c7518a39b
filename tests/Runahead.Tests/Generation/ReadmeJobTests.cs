using Runahead.Cli;
using Runahead.Tests.Prefill;

namespace Runahead.Tests.Generation;

/// <summary>
/// The README's main job, `runahead generate --ranks 2` on the embedded default model from an empty cache: progress on
/// stderr while synthesizing and starting ranks, the streamed text on stdout, then the TTFT summary with strategy and
/// partition. The "tiny" shape stands in for the 2 GiB default; worker processes and everything else are real.
/// </summary>
[Collection(WorkerProcessCollection.Name)]
public sealed class ReadmeJobTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("runahead-readme-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private static (int Rc, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int rc = Program.Run(args, stdout, stderr);
        return (rc, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public void Generate_ranks_2_on_the_default_model_prints_progress_text_and_the_ttft_summary()
    {
        var oldCache = Environment.GetEnvironmentVariable("RUNAHEAD_CACHE");
        var oldShape = Environment.GetEnvironmentVariable("RUNAHEAD_DEFAULT_SHAPE");
        // Runs alone (its collection disables parallelization), so changing the environment races with no other test.
        Environment.SetEnvironmentVariable("RUNAHEAD_CACHE", Path.Combine(_dir, "cache"));
        Environment.SetEnvironmentVariable("RUNAHEAD_DEFAULT_SHAPE", "tiny");
        try
        {
            var (rc, output, err) = Run("generate", "--ranks", "2", "-n", "12", "--temperature", "0");
            Assert.True(rc == 0, err);
            var lines = err.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            Assert.Contains(lines, l => l.StartsWith("runahead: no --model given; synthesizing the default model (tiny", StringComparison.Ordinal));
            Assert.Contains(lines, l => l.StartsWith("runahead: default model written in", StringComparison.Ordinal));
            Assert.Contains(lines, l => l.StartsWith("runahead: starting 2 rank(s) (worker processes over shared memory", StringComparison.Ordinal));
            Assert.Contains(lines, l => l.StartsWith("runahead: ranks ready in", StringComparison.Ordinal));
            var summary = Assert.Single(lines, l => l.StartsWith("prompt tokens:", StringComparison.Ordinal));
            Assert.Contains("kvr on 2 rank(s)", summary);
            Assert.Contains(", partition ", summary);
            Assert.Contains("decode: 12 tokens", summary);
            Assert.Contains(lines, l => l.StartsWith("rank 1: compute", StringComparison.Ordinal));
            Assert.StartsWith(Runahead.Cli.Commands.GenerateCommand.DefaultPrompt, output);

            // The same text as one process (greedy), and the second run finds the model in the cache.
            var single = Run("generate", "-n", "12", "--temperature", "0");
            Assert.True(single.Rc == 0, single.Err);
            Assert.DoesNotContain("synthesizing", single.Err);
            Assert.Equal(single.Out, output);
        }
        finally
        {
            Environment.SetEnvironmentVariable("RUNAHEAD_CACHE", oldCache);
            Environment.SetEnvironmentVariable("RUNAHEAD_DEFAULT_SHAPE", oldShape);
        }
    }
}
