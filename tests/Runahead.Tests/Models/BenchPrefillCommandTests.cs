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
