using System.Text.Json;
using Runahead.Cli;

namespace Runahead.Tests.Planning;

public class PlanningCliTests
{
    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    [SkippableFact]
    public void SimulatePrintsATableOfStrategies()
    {
        var (code, output, err) = Run("simulate", "--calibration", PlanningData.H200Path(), "--model-shape", "falcon-7b",
            "--tokens", "2k", "--ranks", "2,4", "--strategy", "single,tsp,kvr", "--partition", "searched");
        Assert.True(code == 0, err);
        Assert.Contains("bilinear interpolation inside the measured grid", output);
        Assert.Contains("kvr        searched", output);
        Assert.Equal(6, output.Split('\n').Count(l => l.TrimStart().StartsWith("2048", StringComparison.Ordinal)));
    }

    [SkippableFact]
    public void SimulateSharesFewerCoresThanRanks()
    {
        double Ttft(string cores)
        {
            var (code, output, err) = Run("simulate", "--calibration", PlanningData.H200Path(), "--model-shape", "llama2-7b",
                "--tokens", "4k", "--ranks", "4", "--strategy", "kvr", "--cpu-cores", cores, "--json");
            Assert.True(code == 0, err);
            using var doc = JsonDocument.Parse(output);
            return doc.RootElement.GetProperty("results")[0].GetProperty("ttft_ms").GetDouble();
        }
        double free = Ttft("inf");
        Assert.Equal(free, Ttft("4"));
        Assert.True(Ttft("2") > free);
        Assert.True(Ttft("1") > Ttft("2"));
        var (bad, _, badErr) = Run("simulate", "--calibration", PlanningData.H200Path(), "--model-shape", "llama2-7b", "--cpu-cores", "0");
        Assert.Equal(1, bad);
        Assert.Contains("--cpu-cores", badErr);
    }

    [SkippableFact]
    public void SimulateWritesJsonAndTraces()
    {
        var dir = Directory.CreateTempSubdirectory("runahead-sim-");
        try
        {
            var trace = Path.Combine(dir.FullName, "t.json");
            var (code, output, err) = Run("simulate", "--calibration", PlanningData.H200Path(), "--model-shape", "llama2-7b",
                "--tokens", "1k", "--ranks", "3", "--strategy", "tsp,kvr", "--partition", "4,3,2", "--link-bandwidth", "10GB/s",
                "--noise", "0.5", "--noisy-links", "0-1", "--json", "--trace", trace);
            Assert.True(code == 0, err);
            using var doc = JsonDocument.Parse(output);
            var results = doc.RootElement.GetProperty("results");
            Assert.Equal(2, results.GetArrayLength());
            var kvr = results[1];
            Assert.Equal("explicit", kvr.GetProperty("partition").GetString());
            Assert.Equal([455, 341, 228], kvr.GetProperty("chunks").EnumerateArray().Select(e => e.GetInt32()).ToArray());
            Assert.True(File.Exists(Path.Combine(dir.FullName, "t-kvr-1k-p3.json")));
            Assert.True(File.Exists(Path.Combine(dir.FullName, "t-tsp-1k-p3.json")));
        }
        finally
        {
            dir.Delete(true);
        }
    }

    [SkippableFact]
    public void SimulatePredictedBuildsAndSavesATable()
    {
        var dir = Directory.CreateTempSubdirectory("runahead-sim-");
        try
        {
            var table = Path.Combine(dir.FullName, "table.json");
            var (code, output, err) = Run("simulate", "--calibration", PlanningData.H200Path(), "--model-shape", "falcon-7b",
                "--tokens", "5000", "--ranks", "2", "--strategy", "kvr", "--partition", "predicted", "--save-table", table);
            Assert.True(code == 0, err);
            Assert.Contains("predicted", output);
            Assert.True(File.Exists(table));
            var (code2, output2, err2) = Run("simulate", "--calibration", PlanningData.H200Path(), "--model-shape", "falcon-7b",
                "--tokens", "5000", "--ranks", "2", "--strategy", "kvr", "--partition", "predicted", "--table", table);
            Assert.True(code2 == 0, err2);
            Assert.Equal(output.Split('\n')[^2], output2.Split('\n')[^2]);
        }
        finally
        {
            dir.Delete(true);
        }
    }

    [Theory]
    [InlineData("--calibration", "/nonexistent/cal.json", "calibration file not found")]
    [InlineData("--model-shape", "gpt-5", "unknown model shape 'gpt-5'")]
    [InlineData("--link-bandwidth", "fast", "--link-bandwidth: 'fast' is not a bandwidth")]
    [InlineData("--strategy", "ring", "--strategy: 'ring' is not")]
    [InlineData("--partition", "1,2", "2 chunk weights given for 4 ranks")]
    public void SimulateRejectsBadOptionsInOneLine(string option, string value, string expected)
    {
        string calibration = option == "--calibration" ? value : PlanningData.H200Path();
        var args = new List<string> { "simulate", "--calibration", calibration, "--model-shape", "falcon-7b", "--ranks", "4" };
        if (option != "--calibration")
        {
            int i = args.IndexOf(option);
            if (i >= 0) args[i + 1] = value;
            else args.AddRange([option, value]);
        }
        var (code, _, err) = Run(args.ToArray());
        Assert.Equal(1, code);
        Assert.Contains(expected, err);
        Assert.Single(err.TrimEnd().Split('\n'));
    }

    /// <summary>The reproduction pipeline end to end at a tiny scale, into a temp folder (never docs/).</summary>
    [SkippableFact]
    public void ReproduceWritesTheDocumentAndFigures()
    {
        var dir = Directory.CreateTempSubdirectory("runahead-repro-");
        try
        {
            var doc = Path.Combine(dir.FullName, "REPRODUCTION.md");
            var (code, output, err) = Run("reproduce", "--calibration", PlanningData.H200Path(), "--out", doc, "--scale", "tiny");
            Assert.True(code == 0, err);
            Assert.Contains("wrote", output);
            var text = File.ReadAllText(doc);
            Assert.Contains("# Reproducing the KV-Runahead study", text);
            Assert.Contains("**paper**", text);
            Assert.Contains("## Where our results differ from the paper, and why", text);
            Assert.Contains("**Not done yet**", text);
            var pngs = Directory.GetFiles(Path.Combine(dir.FullName, "figures"), "*.png");
            Assert.True(pngs.Length >= 4, string.Join(", ", pngs));
            foreach (var png in pngs)
            {
                var head = File.ReadAllBytes(png).AsSpan(0, 8).ToArray();
                Assert.Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }, head);
                Assert.Contains("figures/" + Path.GetFileName(png), text);
            }
        }
        finally
        {
            dir.Delete(true);
        }
    }
}
