using System.Text.Json;

namespace Runahead.Tests.Models;

public class BenchPrefillCommandTests
{
    [SkippableFact]
    public void JsonReportsThroughputAndMemory()
    {
        var model = Fixtures.Path("hf/tiny-llama-gqa");
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int rc = Runahead.Cli.Program.Run(["bench", "prefill", "--model", model, "--tokens", "64", "--threads", "1", "--repeats", "2", "--json"], stdout, stderr);
        Assert.True(rc == 0, stderr.ToString());
        using var doc = JsonDocument.Parse(stdout.ToString());
        var root = doc.RootElement;
        Assert.Equal(64, root.GetProperty("tokens").GetInt32());
        Assert.True(root.GetProperty("prompt_tokens_per_s").GetDouble() > 0);
        long accounted = root.GetProperty("accounted_bytes").GetInt64();
        Assert.True(accounted > 0);
        Assert.True(root.GetProperty("peak_rss_bytes").GetInt64() >= accounted);
        Assert.Equal("none", root.GetProperty("bf16_path").GetString()); // an F32 model
    }

    [Fact]
    public void ReportsWhichBf16PathRan()
    {
        var dir = Directory.CreateTempSubdirectory("runahead-benchbf16-");
        try
        {
            var model = Path.Combine(dir.FullName, "bf16.gguf");
            Runahead.Formats.Synthetic.SyntheticModel.Write(Runahead.Formats.ModelShapes.Get("tiny"), Runahead.Formats.TensorType.BF16, model, seed: 5);
            var stdout = new StringWriter();
            var stderr = new StringWriter();
            int rc = Runahead.Cli.Program.Run(["bench", "prefill", "--model", model, "--tokens", "16", "--threads", "1", "--repeats", "1", "--json"], stdout, stderr);
            Assert.True(rc == 0, stderr.ToString());
            using var doc = JsonDocument.Parse(stdout.ToString());
            Assert.Equal(Runahead.Numerics.Jit.Bf16Dot.Enabled ? "kernel" : "widening", doc.RootElement.GetProperty("bf16_path").GetString());
            Assert.Equal(Runahead.Numerics.Jit.Bf16Dot.Status, doc.RootElement.GetProperty("bf16_kernel").GetString());

            stdout = new StringWriter();
            rc = Runahead.Cli.Program.Run(["bench", "prefill", "--model", model, "--tokens", "16", "--threads", "1", "--repeats", "1"], stdout, stderr);
            Assert.True(rc == 0, stderr.ToString());
            Assert.Contains("bf16 weights: " + (Runahead.Numerics.Jit.Bf16Dot.Enabled ? "kernel" : "widening") + " (vdpbf16ps kernel "
                + Runahead.Numerics.Jit.Bf16Dot.Status + ")", stdout.ToString());
        }
        finally
        {
            dir.Delete(true);
        }
    }

    [SkippableFact]
    public void MemoryDetailListsEachMoment()
    {
        var model = Fixtures.Path("gguf/stories260K.gguf");
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int rc = Runahead.Cli.Program.Run(["bench", "prefill", "--model", model, "--tokens", "32", "--threads", "1", "--repeats", "2", "--json", "--memory-detail"], stdout, stderr);
        Assert.True(rc == 0, stderr.ToString());
        using var doc = JsonDocument.Parse(stdout.ToString());
        var moments = doc.RootElement.GetProperty("memory_detail").EnumerateArray().ToList();
        // One warm-up run, more (at most 4) while the process's JIT still compiles: in a test process other tests compile too.
        int warmups = doc.RootElement.GetProperty("warmup_runs").GetInt32();
        Assert.InRange(warmups, 1, 4);
        Assert.Equal(["start", "loaded", .. Enumerable.Repeat("warm-up prefill", warmups), "prefill 1", "prefill 2"],
            moments.Select(m => m.GetProperty("moment").GetString()));
        if (OperatingSystem.IsLinux())
        {
            foreach (var m in moments)
            {
                long rss = m.GetProperty("rss_bytes").GetInt64();
                Assert.True(rss > 0 && m.GetProperty("peak_rss_bytes").GetInt64() >= rss);
                Assert.Equal(rss, m.GetProperty("rss_anon_bytes").GetInt64() + m.GetProperty("rss_file_bytes").GetInt64() + m.GetProperty("rss_shmem_bytes").GetInt64());
            }
        }

        stdout = new StringWriter();
        rc = Runahead.Cli.Program.Run(["bench", "prefill", "--model", model, "--tokens", "32", "--threads", "1", "--repeats", "1", "--memory-detail"], stdout, stderr);
        Assert.True(rc == 0, stderr.ToString());
        Assert.Contains("memory detail (MiB)", stdout.ToString());
        Assert.Contains("warm-up prefill", stdout.ToString());
    }

    [SkippableFact]
    public void TooManyTokensIsAOneLineError()
    {
        var model = Fixtures.Path("gguf/stories260K.gguf");
        var stderr = new StringWriter();
        int rc = Runahead.Cli.Program.Run(["bench", "prefill", "--model", model, "--tokens", "129"], new StringWriter(), stderr);
        Assert.Equal(1, rc);
        Assert.Contains("context length of 128", stderr.ToString());
        Assert.Single(stderr.ToString().Trim().Split('\n'));
    }
}
