using Runahead.Cli;
using Runahead.Models;
using Runahead.Planning;

namespace Runahead.Tests.Planning;

public class HostCalibratorTests
{
    [SkippableFact]
    public void MeasuresARealLayerWithTheQkvSplit()
    {
        using var model = Model.Load(Fixtures.Path("gguf/stories260K.gguf"), new ModelLoadOptions { Threads = 1, MaxChunkTokens = 16, ContextLength = 80 });
        var rows = HostCalibrator.MeasureLayer(model, "stories", new HostCalibrationOptions { ChunkTokens = [8, 16], PrefixTokens = [0, 64], Repeats = 1 });
        Assert.Equal(4, rows.Count);
        Assert.All(rows, r =>
        {
            Assert.True(r.QkvMs > 0 && r.CausalMs > r.QkvMs && r.DenseMs > r.QkvMs, r.ToString());
            Assert.Equal("stories", r.Model);
        });
    }

    [Fact]
    public void MeasuresTheSharedMemoryTransport()
    {
        var (bandwidth, latency) = HostCalibrator.MeasureTransport(CancellationToken.None);
        Assert.True(bandwidth > 1e6, $"{bandwidth} B/s");
        Assert.InRange(latency, 1e-9, 0.1);
    }

    [SkippableFact]
    public void CalibrateCommandWritesAFileSimulateReads()
    {
        var model = Fixtures.Path("gguf/stories260K.gguf");
        var dir = Directory.CreateTempSubdirectory("runahead-cal-");
        try
        {
            var outPath = Path.Combine(dir.FullName, "host.json");
            var stdout = new StringWriter();
            var stderr = new StringWriter();
            int code = Program.Run(["calibrate", "--model", model, "--threads", "1", "--tokens", "8,16", "--prefix", "0,32", "--repeats", "1", "--out", outPath], stdout, stderr);
            Assert.True(code == 0, stderr.ToString());
            var cal = Calibration.Load(outPath);
            Assert.True(cal.IsRunaheadFormat);
            Assert.Equal(4, cal.KvBytesPerElement);
            Assert.True(cal.TransportBytesPerSecond > 0);
            Assert.True(cal.HeadMs["stories260K"] > 0);

            stdout = new StringWriter();
            code = Program.Run(["simulate", "--calibration", outPath, "--model-shape", model, "--tokens", "32", "--ranks", "2",
                "--strategy", "single,kvr", "--link-bandwidth", "5GB/s"], stdout, stderr);
            Assert.True(code == 0, stderr.ToString());
            Assert.Contains("t_qkv measured; t_head measured", stdout.ToString());
        }
        finally
        {
            dir.Delete(true);
        }
    }

    [Fact]
    public void CalibrateRejectsAMissingModelInOneLine()
    {
        var stderr = new StringWriter();
        int code = Program.Run(["calibrate", "--model", "/nonexistent/model.gguf"], new StringWriter(), stderr);
        Assert.Equal(1, code);
        Assert.Single(stderr.ToString().TrimEnd().Split('\n'));
    }
}

public class HostValidationTests
{
    [SkippableFact]
    public void ReproduceRunsRealPrefillsBesideTheSimulator()
    {
        var model = Fixtures.Path("gguf/stories260K.gguf");
        var dir = Directory.CreateTempSubdirectory("runahead-host-");
        try
        {
            var doc = Path.Combine(dir.FullName, "REPRODUCTION.md");
            var stderr = new StringWriter();
            int code = Program.Run(["reproduce", "--calibration", PlanningData.H200Path(), "--out", doc, "--scale", "tiny",
                "--host-model", model, "--host-tokens", "32", "--host-ranks", "1,2", "--host-repeats", "1", "--host-calibration-batch", "0"],
                new StringWriter(), stderr);
            Assert.True(code == 0, stderr.ToString());
            var text = File.ReadAllText(doc);
            Assert.DoesNotContain("**Not done yet**", text);
            Assert.Contains("| Single | - | 1 | 32 | 32 |", text);
            Assert.Contains("| Kvr | searched | 2 | 32 |", text);
            Assert.Contains("| Tsp | even | 2 | 32 | 16/16 |", text);
            Assert.Contains("| cores simulated |", text);
            Assert.Contains("processor sharing", text);
            Assert.Contains("Without processor sharing", text);
            Assert.Contains("shared-memory transport", text);
            Assert.Contains("load average", text);
            Assert.Matches(@"\d+ of 4 points are within 15 %", text);
        }
        finally
        {
            dir.Delete(true);
        }
    }
}

public class HostValidationPointsTests
{
    [Fact]
    public void TwoRankPointsLetEveryRowReachPastTheSplitDiagonal()
    {
        var points = HostValidation.CalibrationPoints([512]);
        Assert.Contains((512, 0), points);
        Assert.Contains((256, 256), points);
        Assert.Contains((256, 320), points);
        Assert.DoesNotContain((512, 64), points);
        Assert.All(points, x => Assert.True(x.C + x.P <= 576, x.ToString()));
        Assert.Equal([(256, 0), (512, 0)], HostValidation.SingleRankPoints([512]));
    }

    [SkippableFact]
    public void ConcurrentCalibrationTimesOneRowPerPointWithEveryThread()
    {
        var path = Fixtures.Path("gguf/stories260K.gguf");
        var models = new[] { 0, 1 }.Select(_ => Model.Load(path, new ModelLoadOptions { Threads = 1, MaxChunkTokens = 16, ContextLength = 80 })).ToArray();
        try
        {
            var rows = HostCalibrator.MeasureLayer(models, "x2", new HostCalibrationOptions { Points = [(16, 0), (8, 32)], Repeats = 2, MinBatchMilliseconds = 2 });
            Assert.Equal(2, rows.Count);
            Assert.All(rows, r => Assert.True(r.QkvMs > 0 && r.CausalMs > r.QkvMs && r.DenseMs > r.QkvMs, r.ToString()));
            Assert.Equal((8, 32), (rows[1].C, rows[1].P));
        }
        finally
        {
            foreach (var m in models) m.Dispose();
        }
    }
}

public class InProcessCandidateMeasurerTests
{
    [SkippableFact]
    public void KvrSearchRemeasuresItsBestCandidatesOnRealRanks()
    {
        var model = Fixtures.Path("gguf/stories260K.gguf");
        using var measurer = new InProcessCandidateMeasurer(model, threadsPerRank: 1, repeats: 1);
        var sim = new Simulator(PlanningData.Mixed(), LinkTopology.Uniform(1e10, 5e-6));
        var r = PartitionSearch.Search(new SimulatedTtft(sim), 48, 3, new PartitionSearchOptions { Measurer = measurer, Remeasure = 2, Refine = 4 });
        Assert.NotEmpty(measurer.Measurements);
        Assert.True(r.MeasuredSeconds > 0);
        Assert.Contains(measurer.Measurements, m => m.Chunks.SequenceEqual(r.Chunks) && m.Seconds == r.MeasuredSeconds);
    }
}
