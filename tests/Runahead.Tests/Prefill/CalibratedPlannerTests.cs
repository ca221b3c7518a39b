using System.Diagnostics;
using System.Text.Json;
using Runahead.Cli;
using Runahead.Planning;
using Runahead.Prefill;

namespace Runahead.Tests.Prefill;

/// <summary>--partition searched|predicted answered from a host calibration, for any prompt length.</summary>
public class CalibratedPlannerTests
{
    /// <summary>A calibration of a made-up host: a layer costs 0.05 ms + 2 us per token + attention over the prefix.</summary>
    internal static Calibration MadeUp(string model = "stories260K") => new()
    {
        Source = "made-up.json",
        IsRunaheadFormat = true,
        CopyBytesPerSecond = 10e9,
        TransportBytesPerSecond = 5e9,
        TransportLatencySeconds = 20e-6,
        Rows = [.. from c in new[] { 16, 64, 256, 1024 }
                   from p in new[] { 0, 256, 1024, 4096 }
                   select new CalibrationRow(model, c, p, 0.05 + 0.002 * c + 4e-6 * c * (p + c / 2.0), 0.05 + 0.002 * c + 4e-6 * c * (p + c), double.NaN)],
    };

    private static readonly Runahead.Models.ModelConfig Shape = Runahead.Formats.ModelShapes.Get("tinyllama-1.1b");

    [Fact]
    public void Searched_answers_any_length_in_well_under_a_second()
    {
        var planner = new CalibratedPlanner(MadeUp(), Shape, "stories260K", _ => LinkTopology.Uniform(5e9, 20e-6), 5e9);
        var clock = Stopwatch.StartNew();
        var searched = PartitionSpec.Parse("searched").Resolve(3001, 4, planner.Plan);
        var elapsed = clock.Elapsed;
        Assert.Equal(3001, searched.Tokens);
        Assert.Equal(4, searched.Ranks);
        // KV-Runahead's searched split front-loads: later ranks attend over longer prefixes, so they get fewer tokens.
        Assert.True(searched.Chunk(0) > searched.Chunk(3), searched.ToString());
        Assert.True(elapsed < TimeSpan.FromSeconds(1), $"KVR-S took {elapsed.TotalMilliseconds:F0} ms");
        // Another length, not in any table.
        Assert.Equal(777, PartitionSpec.Parse("searched").Resolve(777, 2, planner.Plan).Tokens);
    }

    [Fact]
    public void Predicted_interpolates_the_given_table_or_one_built_from_the_calibration()
    {
        var table = new PartitionTable
        {
            Model = "stories260K", Calibration = "test",
            Entries = [new(2, 5e9, 1000, [0.6], 1), new(2, 5e9, 3000, [0.7], 2)],
        };
        var withTable = new CalibratedPlanner(MadeUp(), Shape, "stories260K", _ => LinkTopology.Uniform(5e9, 20e-6), 5e9, table);
        Assert.Equal(table.Predict(2000, 2, 5e9), withTable.Plan(PartitionKind.Predicted, 2000, 2));

        // No table for 3 ranks (nor any table): one is built from the calibration on first use.
        var built = withTable.Plan(PartitionKind.Predicted, 2000, 3)!;
        Assert.Equal(3, built.Length);
        Assert.Equal(2000, built.Sum());
        var calibrationOnly = new CalibratedPlanner(MadeUp(), Shape, "stories260K", _ => LinkTopology.Uniform(5e9, 20e-6), 5e9);
        Assert.Equal(built, calibrationOnly.Plan(PartitionKind.Predicted, 2000, 3));
        Assert.Null(calibrationOnly.Plan(PartitionKind.Even, 2000, 3));
    }

    [Fact]
    public void The_calibration_model_is_chosen_or_the_error_names_the_choices()
    {
        var two = new Calibration { Source = "two.json", Rows = [.. MadeUp("alpha").Rows, .. MadeUp("beta").Rows] };
        Assert.Equal("beta", CalibratedPlanner.ChooseModel(two, null, "/models/beta.gguf"));
        Assert.Equal("alpha", CalibratedPlanner.ChooseModel(two, "ALPHA", "/models/beta.gguf"));
        Assert.Equal("stories260K", CalibratedPlanner.ChooseModel(MadeUp(), null, "other.bin"));
        var e = Assert.Throws<RunaheadException>(() => CalibratedPlanner.ChooseModel(two, null, "gamma.gguf"));
        Assert.Contains("--calibration-model", e.Message);
        e = Assert.Throws<RunaheadException>(() => CalibratedPlanner.ChooseModel(two, "gamma", "gamma.gguf"));
        Assert.Contains("no rows for 'gamma'", e.Message);
    }

    private static (int Rc, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int rc = Program.Run(args, stdout, stderr);
        return (rc, stdout.ToString(), stderr.ToString());
    }

    [SkippableFact]
    public void Generate_runs_searched_and_predicted_partitions_from_a_calibration_file()
    {
        var model = Fixtures.Path("llama2c/stories260K.bin");
        var dir = Directory.CreateTempSubdirectory("runahead-calibration-");
        try
        {
            var path = Path.Combine(dir.FullName, "host.json");
            MadeUp().Save(path);
            string[] common = ["generate", "--model", model, "--prompt-ids", "1,403,407,261,378,432,383,286,261,376,298,315,421", "-n", "3",
                "--temperature", "0", "--ranks", "3", "--transport", "inproc", "--calibration", path, "--json"];
            var shape = Runahead.Generation.LlmSession.ReadConfig(model).Config;
            var planner = new CalibratedPlanner(Calibration.Load(path), shape, "stories260K", _ => LinkTopology.Uniform(5e9, 20e-6), 5e9);
            foreach (var kind in new[] { "searched", "predicted" })
            {
                var (rc, output, err) = Run([.. common, "--partition", kind]);
                Assert.True(rc == 0, err);
                using var doc = JsonDocument.Parse(output);
                var expected = planner.Plan(kind == "searched" ? PartitionKind.Searched : PartitionKind.Predicted, 13, 3)!;
                Assert.Equal(string.Join(',', expected), doc.RootElement.GetProperty("partition").GetString());
                Assert.Equal(3, doc.RootElement.GetProperty("generated_tokens").GetInt32());
            }

            var (code, _, error) = Run([.. common, "--partition", "searched", "--calibration-model", "nope"]);
            Assert.Equal(1, code);
            Assert.Contains("no rows for 'nope'", error);
            (code, _, error) = Run("generate", "--model", model, "--ranks", "2", "--calibration", Path.Combine(dir.FullName, "missing.json"));
            Assert.Equal(1, code);
            Assert.Contains("missing.json", error);
        }
        finally
        {
            dir.Delete(true);
        }
    }

    [SkippableFact]
    public void Bench_ttft_runs_a_searched_partition_from_a_calibration_file()
    {
        var model = Fixtures.Path("llama2c/stories260K.bin");
        var dir = Directory.CreateTempSubdirectory("runahead-calibration-");
        try
        {
            var path = Path.Combine(dir.FullName, "host.json");
            MadeUp().Save(path);
            var (rc, output, err) = Run("bench", "ttft", "--model", model, "--tokens", "30", "--ranks", "2", "--strategy", "kvr",
                "--transport", "inproc", "--repeats", "1", "--warmup", "0", "--partition", "searched", "--calibration", path, "--json");
            Assert.True(rc == 0, err);
            var shape = Runahead.Generation.LlmSession.ReadConfig(model).Config;
            var planner = new CalibratedPlanner(Calibration.Load(path), shape, "stories260K", _ => LinkTopology.Uniform(5e9, 20e-6), 5e9);
            using var doc = JsonDocument.Parse(output);
            var row = doc.RootElement.GetProperty("rows").EnumerateArray().Single(r => r.GetProperty("strategy").GetString() == "kvr");
            Assert.Equal(string.Join(',', planner.Plan(PartitionKind.Searched, 30, 2)!), row.GetProperty("partition").GetString());
        }
        finally
        {
            dir.Delete(true);
        }
    }
}
