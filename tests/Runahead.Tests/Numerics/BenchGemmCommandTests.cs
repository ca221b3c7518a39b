using System.Text.Json;
using Runahead.Cli;

namespace Runahead.Tests.Numerics;

public class BenchGemmCommandTests
{
    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public void JsonHasOneCasePerCombination()
    {
        var (code, output, err) = Run("bench", "gemm", "--m", "1,9", "--n", "40", "--k", "64", "--dtype", "f32,bf16", "--threads", "2", "--repeats", "1", "--json");
        Assert.True(code == 0, err);
        using var doc = JsonDocument.Parse(output);
        var cases = doc.RootElement.GetProperty("cases");
        Assert.Equal(4, cases.GetArrayLength());
        foreach (var c in cases.EnumerateArray())
        {
            Assert.Equal(40, c.GetProperty("n").GetInt32());
            Assert.Equal(2, c.GetProperty("threads").GetInt32());
            Assert.True(c.GetProperty("ours").GetDouble() > 0);
            Assert.Equal(JsonValueKind.Null, c.GetProperty("ratio").ValueKind);
        }
        Assert.Equal(Runahead.Numerics.GemmBenchmark.Bf16KernelStatus, doc.RootElement.GetProperty("bf16Kernel").GetString());
    }

    [Fact]
    public void TableNamesTheBf16PathWhenBf16IsMeasured()
    {
        var (code, output, err) = Run("bench", "gemm", "--m", "5", "--n", "33", "--k", "31", "--dtype", "bf16", "--threads", "1", "--repeats", "1");
        Assert.True(code == 0, err);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(3, lines.Length);
        Assert.StartsWith("bf16 kernel (vdpbf16ps): " + (Runahead.Numerics.Jit.Bf16Dot.Enabled ? "on: " : "off: "), lines[2]);
    }

    [Fact]
    public void TablePrintsOneRowPerCase()
    {
        var (code, output, err) = Run("bench", "gemm", "--m", "3", "--n", "33", "--k", "32", "--dtype", "q8_0", "--threads", "1", "--repeats", "1");
        Assert.True(code == 0, err);
        Assert.Equal(2, output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
        Assert.Contains("q8_0", output);
    }

    [Theory]
    [InlineData("--dtype", "f64", "--dtype")]
    [InlineData("--m", "0", "--m")]
    [InlineData("--k", "x", "--k")]
    [InlineData("--compare", "mkl", "--compare")]
    public void BadOptionsGiveOneLineErrors(string option, string value, string named)
    {
        var (code, _, err) = Run("bench", "gemm", option, value, "--repeats", "1");
        Assert.Equal(1, code);
        Assert.Contains(named, err);
        Assert.Single(err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public void CompareOpenBlasRunsWhenInstalledOrSaysWhatIsMissing()
    {
        var (code, output, err) = Run("bench", "gemm", "--m", "16", "--n", "64", "--k", "64", "--threads", "1", "--repeats", "1", "--compare", "openblas", "--json");
        if (code == 0)
        {
            using var doc = JsonDocument.Parse(output);
            Assert.True(doc.RootElement.GetProperty("cases")[0].GetProperty("ratio").GetDouble() > 0);
        }
        else
        {
            Assert.Equal(1, code);
            Assert.Contains("OpenBLAS not found", err);
        }
    }
}
