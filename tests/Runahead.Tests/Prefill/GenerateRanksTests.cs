using System.Text.Json;
using Runahead.Cli;

namespace Runahead.Tests.Prefill;

/// <summary>`runahead generate --ranks P --strategy ...`: the same text as one process, JSON with the parallel fields.</summary>
[Collection(WorkerProcessCollection.Name)]
public class GenerateRanksTests
{
    private static (int Rc, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int rc = Program.Run(args, stdout, stderr);
        return (rc, stdout.ToString(), stderr.ToString());
    }

    [SkippableTheory]
    [InlineData("kvr", "3", "shm", "even")]
    [InlineData("tsp", "2", "inproc", "3,2")]
    [InlineData("tsp-causal", "4", "shm", "1,2,1,1")]
    public void Generate_over_ranks_prints_the_reference_text(string strategy, string ranks, string transport, string partition)
    {
        var model = Fixtures.Path("llama2c/stories260K.bin");
        var tokenizer = Fixtures.Path("llama2c/tok512.bin");
        var expected = File.ReadAllText(Fixtures.Path("reference/out_t0_n64_p1.txt")).TrimEnd();
        // run.c's -n 64 counts positions including the prompt: it generated 60 tokens after the 5 prompt tokens.
        var (rc, output, err) = Run("generate", "--model", model, "--tokenizer", tokenizer, "-p", "Once upon a time", "-n", "60",
            "--temperature", "0", "--ranks", ranks, "--strategy", strategy, "--transport", transport, "--partition", partition);
        Assert.True(rc == 0, err);
        Assert.Equal(expected, output.TrimEnd());
        Assert.Contains($"{strategy} on {ranks} rank(s)", err);
    }

    [SkippableFact]
    public void Generate_with_the_smallest_shm_ring_prints_the_reference_text()
    {
        var model = Fixtures.Path("llama2c/stories260K.bin");
        var tokenizer = Fixtures.Path("llama2c/tok512.bin");
        var expected = File.ReadAllText(Fixtures.Path("reference/out_t0_n64_p1.txt")).TrimEnd();
        var (rc, output, err) = Run("generate", "--model", model, "--tokenizer", tokenizer, "-p", "Once upon a time", "-n", "60",
            "--temperature", "0", "--ranks", "3", "--strategy", "kvr", "--shm-ring", "64KiB");
        Assert.True(rc == 0, err);
        Assert.Equal(expected, output.TrimEnd());
    }

    [SkippableFact]
    public void Generate_json_reports_strategy_ranks_partition_and_rank_timings()
    {
        var model = Fixtures.Path("llama2c/stories260K.bin");
        var trace = Path.Combine(Path.GetTempPath(), $"runahead-generate-trace-{Guid.NewGuid():N}.json");
        var (rc, output, err) = Run("generate", "--model", model, "--prompt-ids", "1,403,407,261,378", "-n", "8", "--temperature", "0",
            "--ranks", "2", "--json", "--trace", trace);
        Assert.True(rc == 0, err);
        try
        {
            using var traceDoc = JsonDocument.Parse(File.ReadAllText(trace));
            var names = traceDoc.RootElement.GetProperty("traceEvents").EnumerateArray().Select(e => e.GetProperty("name").GetString()).ToList();
            foreach (var layer in Enumerable.Range(0, 5)) Assert.Contains($"compute L{layer}", names);
            Assert.Contains("wait-kv L4", names);
        }
        finally
        {
            File.Delete(trace);
        }
        using var doc = JsonDocument.Parse(output);
        var root = doc.RootElement;
        Assert.Equal("kvr", root.GetProperty("strategy").GetString());
        Assert.Equal(2, root.GetProperty("ranks").GetInt32());
        Assert.Equal("3,2", root.GetProperty("partition").GetString());
        Assert.Equal(new[] { 432, 383, 286, 261, 376, 298, 315, 421 }, root.GetProperty("generated_ids").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal(2, root.GetProperty("rank_timings").GetArrayLength());
        Assert.True(root.GetProperty("ttft_ms").GetDouble() > 0);
    }

    [SkippableTheory]
    [InlineData("--partition", "4,4", "sum to 8 but the prompt has 5 tokens")]
    [InlineData("--partition", "searched", "no partition table for this model/host")]
    [InlineData("--strategy", "single", "--strategy single runs on one rank")]
    [InlineData("--transport", "tcp", "unknown transport 'tcp'")]
    [InlineData("--link-bandwidth", "fast", "is not a bandwidth")]
    public void Bad_parallel_options_give_one_line_errors(string option, string value, string expected)
    {
        var model = Fixtures.Path("llama2c/stories260K.bin");
        var args = new List<string> { "generate", "--model", model, "--prompt-ids", "1,403,407,261,378", "-n", "2", "--ranks", "2", option, value };
        if (option != "--transport") args.AddRange(["--transport", "inproc"]);
        var (rc, _, err) = Run([.. args]);
        Assert.Equal(1, rc);
        Assert.Contains(expected, err);
        Assert.Single(err.TrimEnd().Split('\n'));
    }

    [SkippableFact]
    public void Partition_table_answers_predicted_and_searched()
    {
        var model = Fixtures.Path("llama2c/stories260K.bin");
        var dir = Directory.CreateTempSubdirectory("runahead-table-");
        try
        {
            var path = Path.Combine(dir.FullName, "table.json");
            var table = new Runahead.Planning.PartitionTable
            {
                Model = "stories260K", Calibration = "test",
                Entries = [new(2, double.PositiveInfinity, 4, [0.5], 1), new(2, double.PositiveInfinity, 16, [0.75], 2)],
            };
            table.Save(path);
            var expected = string.Join(',', table.Predict(10, 2, double.PositiveInfinity));
            string[] common = ["generate", "--model", model, "--prompt-ids", "1,403,407,261,378,432,383,286,261,376", "-n", "3",
                "--temperature", "0", "--ranks", "2", "--transport", "inproc", "--partition-table", path, "--json"];
            var (rc, output, err) = Run([.. common, "--partition", "predicted"]);
            Assert.True(rc == 0, err);
            using (var doc = JsonDocument.Parse(output))
                Assert.Equal(expected, doc.RootElement.GetProperty("partition").GetString());

            (rc, _, err) = Run([.. common, "--partition", "searched"]);
            Assert.Equal(1, rc);
            Assert.Contains("no KVR-S result for 2 ranks at 10 tokens", err);
        }
        finally
        {
            dir.Delete(true);
        }
    }
}
