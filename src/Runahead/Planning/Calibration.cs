using System.Globalization;
using System.Text.Json;
using Runahead.Models;

namespace Runahead.Planning;

/// <summary>
/// Per-layer costs measured on one device: the H200 file (rows {model, c, p, causal_ms, dense_ms}, meta with copy_GBps;
/// fp16, no t_qkv split) or the file `runahead calibrate` writes (the same rows plus qkv_ms, and meta with the
/// format name, K,V element size, the LM head's cost and the transport's bandwidth and latency).
/// </summary>
public sealed class Calibration
{
    public const string FormatName = "runahead-calibration/1";

    /// <summary>Largest number of rows accepted; a calibration is a small grid.</summary>
    private const int MaxRows = 100_000;

    public string Source { get; init; } = "";
    public string Device { get; init; } = "unknown";
    public bool IsRunaheadFormat { get; init; }

    /// <summary>Bytes of one K or V element as the calibrated device stores them (2 for fp16, 4 for F32).</summary>
    public int KvBytesPerElement { get; init; } = 2;

    public double? CopyBytesPerSecond { get; init; }

    /// <summary>Measured fp16 matrix-multiply throughput of the device (H200 file: fp16_matmul_TFLOPs).</summary>
    public double? MatmulTflops { get; init; }
    public double? TransportBytesPerSecond { get; init; }
    public double? TransportLatencySeconds { get; init; }
    public string? TransportMethod { get; init; }
    public int? Threads { get; init; }
    public IReadOnlyDictionary<string, double> HeadMs { get; init; } = new Dictionary<string, double>();
    public IReadOnlyList<CalibrationRow> Rows { get; init; } = [];

    public IReadOnlyList<string> Models => Rows.Select(r => r.Model).Distinct(StringComparer.OrdinalIgnoreCase).ToArray();

    public static Calibration Load(string path)
    {
        string text;
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists) throw new RunaheadException($"{path}: calibration file not found");
            if (info.Length > 64 << 20) throw new RunaheadException($"{path}: calibration file is larger than 64 MiB");
            text = File.ReadAllText(path);
        }
        catch (IOException e)
        {
            throw new RunaheadException($"{path}: cannot read calibration file ({e.Message})");
        }
        catch (UnauthorizedAccessException e)
        {
            throw new RunaheadException($"{path}: cannot read calibration file ({e.Message})");
        }
        return Parse(text, path);
    }

    public static Calibration Parse(string json, string source)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new RunaheadException($"{source}: not valid JSON ({e.Message})");
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new RunaheadException($"{source}: expected a JSON object with 'meta' and 'rows'");
            if (!root.TryGetProperty("rows", out var rowsEl) || rowsEl.ValueKind != JsonValueKind.Array)
                throw new RunaheadException($"{source}: missing 'rows' array");
            if (rowsEl.GetArrayLength() > MaxRows) throw new RunaheadException($"{source}: more than {MaxRows} rows");
            var meta = root.TryGetProperty("meta", out var m) && m.ValueKind == JsonValueKind.Object ? m : default;
            bool ours = meta.ValueKind == JsonValueKind.Object && GetString(meta, "format") == FormatName;
            if (meta.ValueKind == JsonValueKind.Object && GetString(meta, "format") is { } fmt && fmt != FormatName)
                throw new RunaheadException($"{source}: unsupported calibration format '{fmt}' (expected {FormatName})");

            var rows = new List<CalibrationRow>(rowsEl.GetArrayLength());
            int index = 0;
            foreach (var r in rowsEl.EnumerateArray())
            {
                string where = $"{source}: rows[{index}]";
                if (r.ValueKind != JsonValueKind.Object) throw new RunaheadException($"{where} is not an object");
                var model = GetString(r, "model") ?? throw new RunaheadException($"{where}: missing 'model'");
                int c = GetInt(r, "c", where), p = GetInt(r, "p", where);
                if (c < 1 || c > 1 << 24) throw new RunaheadException($"{where}: c = {c} is out of range");
                if (p < 0 || p > 1 << 24) throw new RunaheadException($"{where}: p = {p} is out of range");
                double causal = GetPositive(r, "causal_ms", where, required: true);
                double dense = GetPositive(r, "dense_ms", where, required: false);
                double qkv = GetPositive(r, "qkv_ms", where, required: false);
                if (double.IsNaN(dense)) dense = causal;
                rows.Add(new CalibrationRow(model, c, p, causal, dense, qkv));
                index++;
            }
            if (rows.Count == 0) throw new RunaheadException($"{source}: 'rows' is empty");

            var heads = new Dictionary<string, double>(StringComparer.OrdinalIgnoreCase);
            if (meta.ValueKind == JsonValueKind.Object && meta.TryGetProperty("head_ms", out var h) && h.ValueKind == JsonValueKind.Object)
            {
                foreach (var prop in h.EnumerateObject())
                    heads[prop.Name] = GetPositive(h, prop.Name, $"{source}: meta.head_ms", required: true);
            }
            int kvBytes = ours ? (int)GetPositive(meta, "kv_bytes_per_element", $"{source}: meta", required: true) : 2;
            if (kvBytes is not (1 or 2 or 4)) throw new RunaheadException($"{source}: meta.kv_bytes_per_element must be 1, 2 or 4");
            double Opt(string name, double factor)
            {
                if (meta.ValueKind != JsonValueKind.Object) return double.NaN;
                double v = GetPositive(meta, name, $"{source}: meta", required: false);
                return v * factor;
            }
            double tflops = Opt("fp16_matmul_TFLOPs", 1);
            double copy = Opt("copy_GBps", 1e9), bw = Opt("transport_GBps", 1e9), lat = Opt("transport_latency_us", 1e-6);
            return new Calibration
            {
                Source = Path.GetFileName(source),
                Device = meta.ValueKind == JsonValueKind.Object ? GetString(meta, "device") ?? "unknown" : "unknown",
                IsRunaheadFormat = ours,
                KvBytesPerElement = kvBytes,
                CopyBytesPerSecond = double.IsNaN(copy) ? null : copy,
                MatmulTflops = double.IsNaN(tflops) ? null : tflops,
                TransportBytesPerSecond = double.IsNaN(bw) ? null : bw,
                TransportLatencySeconds = double.IsNaN(lat) ? null : lat,
                TransportMethod = meta.ValueKind == JsonValueKind.Object ? GetString(meta, "transport_method") : null,
                Threads = meta.ValueKind == JsonValueKind.Object && meta.TryGetProperty("threads", out var t) && t.TryGetInt32(out var ti) ? ti : null,
                HeadMs = heads,
                Rows = rows,
            };
        }
    }

    /// <summary>Writes the runahead format (a superset of the H200 layout, so both read the same way).</summary>
    public void Save(string path)
    {
        try
        {
            using var stream = File.Create(path);
            using var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
            w.WriteStartObject();
            w.WriteStartObject("meta");
            w.WriteString("format", FormatName);
            w.WriteString("device", Device);
            if (Threads is { } threads) w.WriteNumber("threads", threads);
            w.WriteNumber("kv_bytes_per_element", KvBytesPerElement);
            if (CopyBytesPerSecond is { } copy) w.WriteNumber("copy_GBps", copy / 1e9);
            if (TransportBytesPerSecond is { } bw) w.WriteNumber("transport_GBps", bw / 1e9);
            if (TransportLatencySeconds is { } lat) w.WriteNumber("transport_latency_us", lat * 1e6);
            if (TransportMethod != null) w.WriteString("transport_method", TransportMethod);
            w.WriteStartObject("head_ms");
            foreach (var (model, ms) in HeadMs) w.WriteNumber(model, ms);
            w.WriteEndObject();
            w.WriteEndObject();
            w.WriteStartArray("rows");
            foreach (var r in Rows)
            {
                w.WriteStartObject();
                w.WriteString("model", r.Model);
                w.WriteNumber("c", r.C);
                w.WriteNumber("p", r.P);
                w.WriteNumber("causal_ms", r.CausalMs);
                w.WriteNumber("dense_ms", r.DenseMs);
                if (!double.IsNaN(r.QkvMs)) w.WriteNumber("qkv_ms", r.QkvMs);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new RunaheadException($"{path}: cannot write calibration file ({e.Message})");
        }
    }

    /// <summary>
    /// The cost model of <paramref name="model"/>'s layer. Without a measured qkv split (the H200 file), t_qkv(c) is
    /// taken as the Q,K,V projections' share of the layer's weight work times the fit's prefix-free linear part
    /// a0 + a1*c (the projections are matrix products like the rest of the linear work, so they get their FLOP
    /// share). Without a measured head, t_head is one read of the LM head's fp16 weights at the device's copy
    /// bandwidth (a one-token matrix-vector product is memory-bound).
    /// </summary>
    public LayerCostModel CostModel(ModelConfig shape, string model, CostSource source = CostSource.Hybrid)
    {
        var mine = Rows.Where(r => string.Equals(r.Model, model, StringComparison.OrdinalIgnoreCase)).ToArray();
        if (mine.Length == 0)
            throw new RunaheadException($"{Source}: no calibration rows for model '{model}' (it has: {string.Join(", ", Models)})");
        var causal = mine.Select(r => (r.C, r.P, r.CausalMs * 1e-3)).ToArray();
        var dense = mine.Select(r => (r.C, r.P, r.DenseMs * 1e-3)).ToArray();
        var causalFit = CostFit.Fit(causal);
        var denseFit = CostFit.Fit(dense);
        bool measuredQkv = mine.All(r => !double.IsNaN(r.QkvMs));
        // t_qkv does not depend on p: one value per c, the mean over the prefixes it was measured with.
        var qkvRows = measuredQkv
            ? mine.GroupBy(r => r.C).Select(g => (g.Key, 0, g.Average(r => r.QkvMs) * 1e-3)).ToArray()
            : [];
        double share = ShapeCatalog.QkvLinearShare(shape);
        string notes;
        CostGrid? qkvGrid = null;
        CostFit qkvFit = default;
        if (measuredQkv)
        {
            qkvGrid = new CostGrid(qkvRows);
            qkvFit = CostFit.Fit(qkvRows, withAttention: false);
            notes = "t_qkv measured";
        }
        else
        {
            notes = FormattableString.Invariant($"t_qkv = {share:0.###} (Q,K,V share of the weight FLOPs) x (a0 + a1*c) of the causal fit");
        }
        double head;
        if (HeadMs.TryGetValue(model, out var headMs))
        {
            head = headMs * 1e-3;
            notes += "; t_head measured";
        }
        else if (CopyBytesPerSecond is { } copy)
        {
            head = (double)shape.VocabSize * shape.Dim * KvBytesPerElement / copy;
            notes += FormattableString.Invariant($"; t_head = LM head weights / copy bandwidth = {head * 1e3:0.###} ms");
        }
        else
        {
            head = 0;
            notes += "; t_head unknown, taken as 0";
        }
        return new LayerCostModel(model, source, causalFit, denseFit, new CostGrid(causal), new CostGrid(dense), qkvGrid,
            qkvFit, share, head, 2.0 * shape.KvDim * KvBytesPerElement, shape.Layers, notes);
    }

    private static string? GetString(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static int GetInt(JsonElement e, string name, string where)
    {
        if (!e.TryGetProperty(name, out var v) || v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out var i))
            throw new RunaheadException($"{where}: '{name}' is missing or not an integer");
        return i;
    }

    /// <summary>A finite positive number; NaN when absent and not required.</summary>
    private static double GetPositive(JsonElement e, string name, string where, bool required)
    {
        if (!e.TryGetProperty(name, out var v))
        {
            if (required) throw new RunaheadException($"{where}: missing '{name}'");
            return double.NaN;
        }
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out var d) || !double.IsFinite(d) || d <= 0)
            throw new RunaheadException($"{where}: '{name}' must be a positive number");
        return d;
    }

}
