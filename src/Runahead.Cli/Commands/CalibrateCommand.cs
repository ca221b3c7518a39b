using System.CommandLine;
using System.Globalization;
using Runahead.Models;
using Runahead.Planning;

namespace Runahead.Cli.Commands;

/// <summary>`runahead calibrate`: measures this host's per-layer costs and transport for the planner.</summary>
public static class CalibrateCommand
{
    public static Command Build()
    {
        var cmd = new Command("calibrate", "Measure this host's per-layer costs");
        var model = new Option<string>("--model") { Description = "Model file or folder (GGUF, safetensors, llama2.c)", Required = true };
        var threads = new Option<int>("--threads") { Description = "Compute threads (default: all logical CPUs)", DefaultValueFactory = _ => Environment.ProcessorCount };
        var output = new Option<string>("--out") { Description = "Calibration JSON to write", DefaultValueFactory = _ => "calibration.json" };
        var name = new Option<string?>("--name") { Description = "Model name in the rows (default: the file name); pass it to simulate --calibration-model" };
        var tokens = new Option<string>("--tokens") { Description = "Chunk sizes c to measure", DefaultValueFactory = _ => "32,64,128,256,512" };
        var prefix = new Option<string>("--prefix") { Description = "Prefix lengths p to measure", DefaultValueFactory = _ => "0,512,1024,2048,4096" };
        var repeats = new Option<int>("--repeats") { Description = "Timed runs per point (median kept)", DefaultValueFactory = _ => 3 };
        var batch = new Option<double>("--min-batch-ms")
        {
            Description = "Shortest timed batch per point in ms (long enough to see this process's CPU share on a busy machine; 0: single runs)",
            DefaultValueFactory = _ => 100,
        };
        foreach (var o in new Option[] { model, threads, output, name, tokens, prefix, repeats, batch }) cmd.Options.Add(o);
        cmd.SetAction((parse, cancellationToken) =>
        {
            var stdout = parse.InvocationConfiguration.Output;
            var stderr = parse.InvocationConfiguration.Error;
            try
            {
                int t = parse.GetValue(threads);
                if (t is < 1 or > 1024) throw new RunaheadException($"--threads: {t} must be between 1 and 1024");
                int r = parse.GetValue(repeats);
                if (r is < 1 or > 1000) throw new RunaheadException($"--repeats: {r} must be between 1 and 1000");
                var cs = SimulateCommand.ParseList(parse.GetValue(tokens)!, "--tokens", s => Units.ParseTokens(s, "--tokens"));
                var ps = SimulateCommand.ParseList(parse.GetValue(prefix)!, "--prefix", s =>
                    int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v : s.EndsWith('k') ? Units.ParseTokens(s, "--prefix")
                        : throw new RunaheadException($"--prefix: '{s}' is not a token count"));
                string path = parse.GetValue(model)!;
                string modelName = parse.GetValue(name) ?? Path.GetFileNameWithoutExtension(Path.TrimEndingDirectorySeparator(path));
                double b = parse.GetValue(batch);
                if (!(b >= 0 && b <= 10_000)) throw new RunaheadException($"--min-batch-ms: {b} must be between 0 and 10000");
                var options = new HostCalibrationOptions { ChunkTokens = cs, PrefixTokens = ps, Repeats = r, MinBatchMilliseconds = b, CancellationToken = cancellationToken };
                using var loaded = Model.Load(path, new ModelLoadOptions { Threads = t, MaxChunkTokens = cs.Max(), ContextLength = ps.Max() + cs.Max() });
                var cal = HostCalibrator.Measure(loaded, modelName, options, m => stderr.WriteLine("measuring " + m));
                string outPath = parse.GetValue(output)!;
                cal.Save(outPath);
                var cost = cal.CostModel(loaded.Config, modelName, CostSource.Fit);
                stdout.WriteLine($"wrote {outPath}: {cal.Rows.Count} points for '{modelName}', transport {cal.TransportBytesPerSecond / 1e9:0.##} GB/s, " +
                    $"{cal.TransportLatencySeconds * 1e6:0.##} us");
                stdout.WriteLine(cost.Describe());
                return Task.FromResult(0);
            }
            catch (RunaheadException e)
            {
                stderr.WriteLine("runahead: " + e.Message);
                return Task.FromResult(1);
            }
            catch (OperationCanceledException)
            {
                stderr.WriteLine("runahead: calibration cancelled");
                return Task.FromResult(1);
            }
        });
        return cmd;
    }
}
