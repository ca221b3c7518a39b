using System.Text.Json;
using Runahead.Cli;

namespace Runahead.Tests.Prefill;

public class BenchTtftCommandTests
{
    [SkippableFact]
    public void Bench_ttft_json_csv_and_trace_cover_every_point_rank_and_layer()
    {
        var model = Fixtures.Path("llama2c/stories260K.bin");
        var dir = Directory.CreateTempSubdirectory("runahead-bench-");
        try
        {
            string trace = Path.Combine(dir.FullName, "trace.json"), csv = Path.Combine(dir.FullName, "ttft.csv");
            var stdout = new StringWriter();
            var stderr = new StringWriter();
            int rc = Program.Run(["bench", "ttft", "--model", model, "--tokens", "24,40", "--ranks", "1,3", "--strategy", "single,tsp,kvr",
                "--transport", "inproc", "--repeats", "1", "--warmup", "0", "--json", "--trace", trace, "--csv", csv], stdout, stderr);
            Assert.True(rc == 0, stderr.ToString());

            using var doc = JsonDocument.Parse(stdout.ToString());
            var rows = doc.RootElement.GetProperty("rows").EnumerateArray().ToList();
            // single only at P=1; tsp and kvr at P=1 and P=3; two lengths.
            Assert.Equal(2 * (3 + 2), rows.Count);
            foreach (var row in rows)
            {
                Assert.True(row.GetProperty("ttft_median_ms").GetDouble() > 0);
                Assert.Equal(row.GetProperty("ranks").GetInt32(), row.GetProperty("rank_timings").GetArrayLength());
                Assert.Equal("single P=1", row.GetProperty("baseline").GetString());
            }
            Assert.Equal(1.0, rows[0].GetProperty("speedup").GetDouble());

            Assert.Equal(1 + 2 * (3 + 2 * 3), File.ReadAllLines(csv).Length);   // header + one line per rank per row

            using var traceDoc = JsonDocument.Parse(File.ReadAllText(trace));
            var events = traceDoc.RootElement.GetProperty("traceEvents").EnumerateArray().ToList();
            var processes = events.Where(e => e.GetProperty("name").GetString() == "process_name").Select(e => e.GetProperty("args").GetProperty("name").GetString()!).ToList();
            Assert.Contains("kvr P=3 C=40 rank 2", processes);
            Assert.Contains("tsp P=3 C=24 rank 0", processes);
            // stories260K has 5 layers: each rank of the kvr P=3 run computes in every layer.
            int kvrPid = events.First(e => e.GetProperty("name").GetString() == "process_name"
                && e.GetProperty("args").GetProperty("name").GetString() == "kvr P=3 C=40 rank 0").GetProperty("pid").GetInt32();
            for (int pid = kvrPid; pid < kvrPid + 3; pid++)
                for (int layer = 0; layer < 5; layer++)
                    Assert.Contains(events, e => e.GetProperty("ph").GetString() == "X" && e.GetProperty("pid").GetInt32() == pid
                        && e.GetProperty("name").GetString() == $"compute L{layer}");
            // Ranks 1 and 2 wait for K,V from their predecessor.
            Assert.Contains(events, e => e.GetProperty("pid").GetInt32() == kvrPid + 2 && e.GetProperty("name").GetString()!.StartsWith("wait-kv"));
        }
        finally
        {
            dir.Delete(true);
        }
    }

    [Theory]
    [InlineData("--tokens", "0", "not a token count")]
    [InlineData("--tokens", "1.5", "not a token count")]
    [InlineData("--ranks", "two", "not a positive whole number")]
    [InlineData("--strategy", "fast", "unknown strategy 'fast'")]
    [InlineData("--partition", "3,x", "is not a count")]
    [InlineData("--shm-ring", "1KiB", "--shm-ring: 1024 bytes is outside 64KiB..1GiB")]
    [InlineData("--shm-ring", "2GiB", "outside 64KiB..1GiB")]
    [InlineData("--shm-ring", "lots", "--shm-ring: 'lots' is not a size")]
    public void Bad_options_give_one_line_errors(string option, string value, string expected)
    {
        var stderr = new StringWriter();
        int rc = Program.Run(["bench", "ttft", "--model", "missing.gguf", option, value], new StringWriter(), stderr);
        Assert.Equal(1, rc);
        Assert.Contains(expected, stderr.ToString());
        Assert.Single(stderr.ToString().TrimEnd().Split('\n'));
    }

    [Theory]
    [InlineData("bench", "ttft", "--transport", "inproc")]
    [InlineData("generate", "--prompt", "hi", "--transport", "inproc")]
    public void Shm_ring_is_refused_for_other_transports(params string[] command)
    {
        var stderr = new StringWriter();
        int rc = Program.Run([.. command, "--model", "missing.gguf", "--ranks", "2", "--shm-ring", "1MiB"], new StringWriter(), stderr);
        Assert.Equal(1, rc);
        Assert.Contains("--shm-ring: applies to --transport shm only", stderr.ToString());
        Assert.Single(stderr.ToString().TrimEnd().Split('\n'));
    }

    [Fact]
    public void Shm_ring_over_all_links_is_bounded()
    {
        // 32 ranks x 31 links x 1 GiB would be a 992 GiB segment.
        var stderr = new StringWriter();
        int rc = Program.Run(["bench", "ttft", "--model", "missing.gguf", "--ranks", "2,32", "--shm-ring", "1GiB"], new StringWriter(), stderr);
        Assert.Equal(1, rc);
        Assert.Contains("exceed the 16GiB a shared segment may take", stderr.ToString());
    }
}
