using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Runahead.Formats;
using Runahead.Numerics;

namespace Runahead.Cli.Commands;

/// <summary>
/// `runahead bench gemm`: GFLOP/s of our packed GEMM (Y = X W^T), optionally against OpenBLAS sgemm in the same
/// process. --m, --n, --k, --dtype and --threads take comma-separated lists; every combination is one case.
/// </summary>
public static class BenchGemmCommand
{
    public static Command Build()
    {
        var m = new Option<string>("--m") { Description = "Rows of X (tokens), comma list", DefaultValueFactory = _ => "1024" };
        var n = new Option<string>("--n") { Description = "Output features (rows of W), comma list", DefaultValueFactory = _ => "2048" };
        var k = new Option<string>("--k") { Description = "Input features, comma list", DefaultValueFactory = _ => "2048" };
        var dtype = new Option<string>("--dtype") { Description = "Weight type: f32, f16, bf16, q8_0 (comma list)", DefaultValueFactory = _ => "f32" };
        var threads = new Option<string>("--threads") { Description = "Thread counts, comma list (default: all cores)" };
        var compare = new Option<string?>("--compare") { Description = "Also time this library in the same run: openblas" };
        var repeats = new Option<int>("--repeats") { Description = "Timed repeats per case (median reported)", DefaultValueFactory = _ => 7 };
        var json = new Option<bool>("--json") { Description = "Print one JSON document instead of a table" };
        var cmd = new Command("gemm", "GEMM throughput of the packed kernels, optionally against OpenBLAS")
        {
            m, n, k, dtype, threads, compare, repeats, json,
        };
        cmd.SetAction(parse => Execute(parse, m, n, k, dtype, threads, compare, repeats, json));
        return cmd;
    }

    private static int Execute(ParseResult parse, Option<string> m, Option<string> n, Option<string> k, Option<string> dtype,
        Option<string> threads, Option<string?> compare, Option<int> repeats, Option<bool> json)
    {
        var output = parse.InvocationConfiguration.Output;
        var ms = ParseInts(parse.GetValue(m)!, "--m");
        var ns = ParseInts(parse.GetValue(n)!, "--n");
        var ks = ParseInts(parse.GetValue(k)!, "--k");
        var types = ParseTypes(parse.GetValue(dtype)!);
        var threadCounts = parse.GetValue(threads) is string t ? ParseInts(t, "--threads") : [Environment.ProcessorCount];
        foreach (int th in threadCounts)
            if (th > 1024) throw new RunaheadException($"--threads: {th} is more than 1024");
        int rep = parse.GetValue(repeats);
        if (rep is < 1 or > 1000) throw new RunaheadException($"--repeats: must be in [1, 1000], got {rep}");
        OpenBlas? blas = parse.GetValue(compare) switch
        {
            null => null,
            var c when c.Equals("openblas", StringComparison.OrdinalIgnoreCase) => OpenBlas.Load(),
            var c => throw new RunaheadException($"--compare: unknown library '{c}' (supported: openblas)"),
        };
        bool asJson = parse.GetValue(json);
        var results = new List<GemmBenchmarkResult>();
        if (!asJson)
            output.WriteLine($"{"M",6} {"N",6} {"K",6} {"dtype",5} {"thr",3} {"ours GF/s",10} {"best",7}" +
                (blas is null ? "" : $" {"OpenBLAS",10} {"best",7} {"ratio",6} {"best ratio",10}"));
        foreach (int th in threadCounts)
            foreach (var type in types)
                foreach (int mm in ms)
                    foreach (int nn in ns)
                        foreach (int kk in ks)
                        {
                            var r = GemmBenchmark.Run(mm, nn, kk, type, th, blas, rep);
                            results.Add(r);
                            if (!asJson) output.WriteLine(FormatRow(r));
                        }
        if (asJson) output.WriteLine(ToJson(results, blas));
        else if (types.Contains(TensorType.BF16)) output.WriteLine($"bf16 kernel (vdpbf16ps): {GemmBenchmark.Bf16KernelStatus}");
        return 0;
    }

    private static string FormatRow(GemmBenchmarkResult r)
    {
        var ci = CultureInfo.InvariantCulture;
        string row = string.Format(ci, "{0,6} {1,6} {2,6} {3,5} {4,3} {5,10:F1} {6,7:F1}", r.M, r.N, r.K,
            r.DType.ToString().ToLowerInvariant(), r.Threads, r.OursGflops, r.OursBestGflops);
        if (r.OpenBlasGflops is double t)
            row += string.Format(ci, " {0,10:F1} {1,7:F1} {2,6:F3} {3,10:F3}", t, r.OpenBlasBestGflops, r.Ratio, r.BestRatio);
        return row;
    }

    private static string ToJson(List<GemmBenchmarkResult> results, OpenBlas? blas)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("benchmark", "gemm");
            w.WriteNumber("processorCount", Environment.ProcessorCount);
            w.WriteString("units", "GFLOP/s = 2MNK / time; ours, theirs, ratio: median repeat; *Best: fastest repeat");
            if (blas is not null) w.WriteString("compare", blas.LibraryName);
            w.WriteString("bf16Kernel", GemmBenchmark.Bf16KernelStatus);
            if (GemmBenchmark.Bf16KernelSpeedup is double speedup) w.WriteNumber("bf16KernelSpeedup", Math.Round(speedup, 3));
            w.WriteNumber("bf16DecisionMs", Math.Round(GemmBenchmark.Bf16DecisionTime.TotalMilliseconds, 2));
            w.WriteStartArray("cases");
            foreach (var r in results)
            {
                w.WriteStartObject();
                w.WriteNumber("m", r.M);
                w.WriteNumber("n", r.N);
                w.WriteNumber("k", r.K);
                w.WriteString("dtype", r.DType.ToString().ToLowerInvariant());
                w.WriteNumber("threads", r.Threads);
                w.WriteNumber("ours", r.OursGflops);
                w.WriteNumber("oursBest", r.OursBestGflops);
                if (r.OpenBlasGflops is double t)
                {
                    w.WriteNumber("theirs", t);
                    w.WriteNumber("theirsBest", r.OpenBlasBestGflops!.Value);
                    w.WriteNumber("ratio", r.Ratio!.Value);
                    w.WriteNumber("ratioBest", r.BestRatio!.Value);
                }
                else
                {
                    w.WriteNull("theirs");
                    w.WriteNull("ratio");
                }
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }

    private static int[] ParseInts(string text, string option)
    {
        var parts = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (parts.Length == 0) throw new RunaheadException($"{option}: expected a positive integer or a comma list, got '{text}'");
        var values = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out values[i]) || values[i] < 1 || values[i] > 1 << 20)
                throw new RunaheadException($"{option}: '{parts[i]}' is not an integer in [1, {1 << 20}]");
        }
        return values;
    }

    private static TensorType[] ParseTypes(string text)
    {
        var parts = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (parts.Length == 0) throw new RunaheadException($"--dtype: expected f32, f16, bf16 or q8_0, got '{text}'");
        return Array.ConvertAll(parts, p => p.ToLowerInvariant() switch
        {
            "f32" => TensorType.F32,
            "f16" => TensorType.F16,
            "bf16" => TensorType.BF16,
            "q8_0" or "q8" => TensorType.Q8_0,
            _ => throw new RunaheadException($"--dtype: unknown type '{p}' (f32, f16, bf16, q8_0)"),
        });
    }
}
