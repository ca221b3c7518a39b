using Runahead.Generation;
using Runahead.Planning;
using Runahead.Prefill;
using Runahead.Tests.Prefill;

namespace Runahead.Tests.Generation;

/// <summary>docs/LIBRARY.md's parallel example, as written there (file names made absolute, output captured).</summary>
[Collection(WorkerProcessCollection.Name)]
public class LibraryExampleTests
{
    [SkippableFact]
    public async Task The_documented_parallel_example_compiles_and_runs()
    {
        var model = Fixtures.Path("gguf/stories260K.gguf");
        var dir = Directory.CreateTempSubdirectory("runahead-example-");
        var console = new StringWriter();
        try
        {
            var host = Path.Combine(dir.FullName, "host.json");
            CalibratedPlannerTests.MadeUp().Save(host);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            var cancellationToken = timeout.Token;

            // ---- docs/LIBRARY.md, "Prefill over worker processes" ----
            var config = LlmSession.ReadConfig(model).Config;
            var planner = new CalibratedPlanner(Calibration.Load(host), config, calibrationModel: "stories260K",
                links: ranks => LinkTopology.Uniform(10e9, 5e-6), bandwidthBytesPerSecond: 10e9);

            using var session = await LlmSession.LoadAsync(model, new LlmSessionOptions
            {
                Parallel = new ParallelGenerationOptions
                {
                    Ranks = 2,
                    Strategy = PrefillStrategyKind.Kvr,
                    Partition = PartitionSpec.Parse("searched"),
                    Planner = planner.Plan,
                },
            }, cancellationToken);

            await foreach (var token in session.GenerateAsync("Once upon a time", new GenerationOptions { MaxNewTokens = 32 }, cancellationToken))
                console.Write(token.Text);

            var stats = session.LastStats!;
            console.WriteLine($"TTFT {stats.TimeToFirstToken.TotalMilliseconds:F1} ms, partition {stats.Parallel!.Partition}");
            foreach (var rank in stats.RankTimings)
                console.WriteLine($"rank {rank.Rank}: compute {rank.Compute.TotalMilliseconds:F1} ms");
            // ---- end of the example ----

            Assert.Null(session.Model);
            Assert.Equal(string.Join(',', planner.Plan(PartitionKind.Searched, stats.PromptTokens, 2)!), stats.Parallel.Partition.ToString());
            Assert.Contains("rank 1: compute", console.ToString());
            Assert.True(stats.GeneratedTokens > 0);
        }
        finally
        {
            dir.Delete(true);
        }
    }
}
