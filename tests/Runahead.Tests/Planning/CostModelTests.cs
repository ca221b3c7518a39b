using Runahead.Planning;

namespace Runahead.Tests.Planning;

public class CostModelTests
{
    private static (int, int, double)[] Samples(CostFit truth)
    {
        var list = new List<(int, int, double)>();
        foreach (int c in new[] { 128, 512, 2048, 8192 })
            foreach (int p in new[] { 0, 1024, 4096, 12288 })
                list.Add((c, p, truth.Evaluate(c, p)));
        return list.ToArray();
    }

    [Fact]
    public void FitRecoversExactCoefficients()
    {
        var truth = new CostFit(3e-4, 5e-7, 8e-11);
        var fit = CostFit.Fit(Samples(truth));
        Assert.Equal(truth.A0, fit.A0, 1e-9);
        Assert.Equal(truth.A1, fit.A1, 1e-12);
        Assert.Equal(truth.A2, fit.A2, 1e-15);
    }

    [Fact]
    public void FitNeverGoesNegative()
    {
        // Data that an unconstrained fit would explain with a negative intercept.
        (int, int, double)[] samples = [(100, 0, 1e-6), (200, 0, 3e-6), (400, 0, 7e-6), (800, 0, 15e-6)];
        var fit = CostFit.Fit(samples);
        Assert.True(fit.A0 >= 0 && fit.A1 >= 0 && fit.A2 >= 0, fit.ToString());
    }

    [Fact]
    public void GridInterpolatesBilinearlyAndSaysWhenOutside()
    {
        (int, int, double)[] samples = [(100, 0, 1), (100, 100, 2), (200, 0, 3), (200, 100, 5)];
        var grid = new CostGrid(samples);
        Assert.Equal(1, grid.Evaluate(100, 0));
        Assert.Equal(1.5, grid.Evaluate(100, 50), 12);
        Assert.Equal(2.0, grid.Evaluate(150, 0), 12);
        Assert.Equal((1.5 + 4.0) / 2, grid.Evaluate(150, 50), 12);
        Assert.True(double.IsNaN(grid.Evaluate(50, 0)));
        Assert.True(double.IsNaN(grid.Evaluate(150, 200)));
        Assert.Equal((200, 100), grid.Clamp(300, 500));
    }

    [SkippableFact]
    public void H200CalibrationLoadsBothModels()
    {
        var cal = Calibration.Load(PlanningData.H200Path());
        Assert.Equal(["llama2-7b", "falcon-7b"], cal.Models);
        Assert.Equal(2, cal.KvBytesPerElement);
        Assert.False(cal.IsRunaheadFormat);
        var llama = cal.CostModel(ShapeCatalog.Get("llama2-7b"), "llama2-7b");
        // Interpolation inside the grid returns the measured values exactly.
        Assert.Equal(15.555e-3, llama.Layer(16384, 0), 1e-6);
        Assert.Equal(27.936e-3, llama.Dense(16384, 1024, out bool fromGrid), 1e-6);
        Assert.True(fromGrid);
        // Outside the grid (c=16384 was measured up to p=4096) the fit answers, continuous with the edge.
        llama.Layer(16384, 8192, out fromGrid);
        Assert.False(fromGrid);
        Assert.True(llama.Layer(16384, 8192) > llama.Layer(16384, 4096));
        // t_qkv is a fraction of the layer; Falcon's one KV head makes its hand-off 64x smaller than Llama's.
        Assert.InRange(llama.Qkv(4096) / llama.Layer(4096, 0), 0.1, 0.5);
        var falcon = cal.CostModel(ShapeCatalog.Get("falcon-7b"), "falcon-7b");
        Assert.Equal(2 * 4096 * 2, llama.KvBytesPerToken);
        Assert.Equal(2 * 64 * 2, falcon.KvBytesPerToken);
        Assert.True(llama.HeadSeconds > 0);
    }

    [SkippableFact]
    public void TheFitFollowsTheMeasurementsWithinReason()
    {
        var cal = Calibration.Load(PlanningData.H200Path());
        var fit = cal.CostModel(ShapeCatalog.Get("llama2-7b"), "llama2-7b", CostSource.Fit);
        foreach (var r in cal.Rows.Where(r => r.Model == "llama2-7b" && r.C >= 2048))
        {
            double ratio = fit.Layer(r.C, r.P) / (r.CausalMs * 1e-3);
            Assert.InRange(ratio, 0.6, 1.5);
        }
    }

    [Fact]
    public void WritesAndReadsTheRunaheadFormat()
    {
        var cal = new Calibration
        {
            Device = "test host", KvBytesPerElement = 4, Threads = 2, TransportBytesPerSecond = 5e9, TransportLatencySeconds = 2e-6,
            TransportMethod = "memcpy", HeadMs = new Dictionary<string, double> { ["tiny"] = 0.01 },
            Rows = [new CalibrationRow("tiny", 16, 0, 0.5, 0.5, 0.1), new CalibrationRow("tiny", 32, 0, 0.9, 0.9, 0.2),
                new CalibrationRow("tiny", 16, 32, 0.7, 0.8, 0.1), new CalibrationRow("tiny", 32, 32, 1.3, 1.5, 0.2)],
        };
        var path = Path.Combine(Path.GetTempPath(), $"runahead-cal-{Guid.NewGuid():N}.json");
        try
        {
            cal.Save(path);
            var back = Calibration.Load(path);
            Assert.True(back.IsRunaheadFormat);
            Assert.Equal(4, back.KvBytesPerElement);
            Assert.Equal(5e9, back.TransportBytesPerSecond!.Value, 3);
            var model = back.CostModel(ShapeCatalog.Get("tiny"), "tiny");
            Assert.True(model.QkvMeasured);
            Assert.Equal(0.1e-3, model.Qkv(16), 9);
            Assert.Equal(0.01e-3, model.HeadSeconds, 9);
            Assert.Equal(2 * 32 * 4, model.KvBytesPerToken);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Theory]
    [InlineData("not json", "not valid JSON")]
    [InlineData("[]", "expected a JSON object")]
    [InlineData("{\"rows\": []}", "'rows' is empty")]
    [InlineData("{\"rows\": [{\"model\": \"m\", \"c\": 0, \"p\": 0, \"causal_ms\": 1}]}", "c = 0 is out of range")]
    [InlineData("{\"rows\": [{\"model\": \"m\", \"c\": 4, \"p\": 0, \"causal_ms\": -1}]}", "'causal_ms' must be a positive number")]
    [InlineData("{\"rows\": [{\"c\": 4, \"p\": 0, \"causal_ms\": 1}]}", "missing 'model'")]
    [InlineData("{\"meta\": {\"format\": \"other/9\"}, \"rows\": []}", "unsupported calibration format")]
    public void BadCalibrationFilesGiveOneLineErrors(string json, string expected)
    {
        var e = Assert.Throws<RunaheadException>(() => Calibration.Parse(json, "cal.json"));
        Assert.Contains(expected, e.Message);
        Assert.StartsWith("cal.json", e.Message);
    }

    [Fact]
    public void AskingForAModelTheFileLacksNamesWhatItHas()
    {
        var cal = Calibration.Parse("{\"rows\": [{\"model\": \"m\", \"c\": 4, \"p\": 0, \"causal_ms\": 1}]}", "cal.json");
        var e = Assert.Throws<RunaheadException>(() => cal.CostModel(ShapeCatalog.Get("tiny"), "tiny"));
        Assert.Contains("it has: m", e.Message);
    }

    [Theory]
    [InlineData("4k", 4096)]
    [InlineData("1000", 1000)]
    public void ParsesTokenCounts(string text, int expected) => Assert.Equal(expected, Units.ParseTokens(text, "--tokens"));

    [Theory]
    [InlineData("300GB/s", 300e9)]
    [InlineData("10 GB/s", 10e9)]
    [InlineData("512MB/s", 512e6)]
    public void ParsesBandwidths(string text, double expected) => Assert.Equal(expected, Units.ParseBandwidth(text, "--link-bandwidth"));

    [Fact]
    public void RejectsBadUnits()
    {
        Assert.Throws<RunaheadException>(() => Units.ParseBandwidth("fast", "--link-bandwidth"));
        Assert.Throws<RunaheadException>(() => Units.ParseDuration("-5us", "--link-latency"));
        Assert.Throws<RunaheadException>(() => Units.ParseTokens("0", "--tokens"));
        Assert.Equal(5e-6, Units.ParseDuration("5us", "--link-latency"), 15);
    }
}
