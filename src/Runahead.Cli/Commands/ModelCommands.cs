using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Runahead.Formats;
using Runahead.Formats.Gguf;
using Runahead.Formats.Synthetic;
using Runahead.Models;

namespace Runahead.Cli.Commands;

/// <summary>`runahead model info|synth|convert` (formats issue).</summary>
public static class ModelCommands
{
    public static Command Build()
    {
        var model = new Command("model", "Inspect, synthesize or convert model files");
        model.Subcommands.Add(BuildInfo());
        model.Subcommands.Add(BuildSynth());
        model.Subcommands.Add(BuildConvert());
        return model;
    }

    private static Command BuildInfo()
    {
        var path = new Argument<string>("path") { Description = "A .gguf file, a llama2.c .bin checkpoint, or a Hugging Face folder (config.json + safetensors)" };
        var json = new Option<bool>("--json") { Description = "Print machine-readable JSON" };
        var tensors = new Option<bool>("--tensors") { Description = "List every tensor (default: the global tensors and layer 0)" };
        var cmd = new Command("info", "Show a model's architecture, shapes, dtypes, parameter count and vocabulary") { path, json, tensors };
        cmd.SetAction(parse =>
        {
            var output = parse.InvocationConfiguration.Output;
            using var source = WeightSources.Open(parse.GetValue(path)!);
            var summary = ModelSummary.Describe(source);
            if (parse.GetValue(json)) WriteJson(output, summary);
            else WriteText(output, summary, parse.GetValue(tensors));
            return 0;
        });
        return cmd;
    }

    private static Command BuildSynth()
    {
        var arch = new Option<string>("--arch") { Description = "llama or falcon", Required = true };
        arch.AcceptOnlyFromAmong("llama", "falcon");
        var shape = new Option<string>("--shape") { Description = "Model shape: " + string.Join(", ", ModelShapes.Names), Required = true };
        shape.AcceptOnlyFromAmong([.. ModelShapes.Names]);
        var dtype = new Option<string>("--dtype") { Description = "Matrix element type: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0 or q5_1", DefaultValueFactory = _ => "f16" };
        dtype.AcceptOnlyFromAmong("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1");
        var outPath = new Option<string>("--out") { Description = "Output .gguf file", Required = true };
        var seed = new Option<ulong>("--seed") { Description = "Random seed (same seed, same file)", DefaultValueFactory = _ => 0 };
        var context = new Option<int?>("--context") { Description = "Context length written to the file (default: the shape's, e.g. 2048 for smollm-135m)" };
        var cmd = new Command("synth", "Write a GGUF model with seeded random weights and a synthetic vocabulary") { arch, shape, dtype, outPath, seed, context };
        cmd.SetAction((parse, ct) => Task.FromResult(Run(() =>
        {
            var architecture = parse.GetValue(arch) == "falcon" ? ModelArchitecture.Falcon : ModelArchitecture.Llama;
            string shapeName = parse.GetValue(shape)!;
            var config = ModelShapes.Get(shapeName, architecture);
            if (parse.GetValue(context) is int contextLength)
            {
                if (contextLength is < 1 or > 1 << 24) throw new RunaheadException($"--context: {contextLength} is outside 1..{1 << 24}");
                config = config with { ContextLength = contextLength };
            }
            var type = ParseType(parse.GetValue(dtype)!);
            string file = parse.GetValue(outPath)!;
            var sw = Stopwatch.StartNew();
            SyntheticModel.Write(config, type, file, parse.GetValue(seed), $"synthetic-{parse.GetValue(arch)}-{shapeName}", ct);
            parse.InvocationConfiguration.Output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"wrote {file}: {parse.GetValue(arch)} {shapeName}, {type}, {new FileInfo(file).Length / 1048576.0:0.0} MiB in {sw.Elapsed.TotalSeconds:0.0} s"));
            return 0;
        })));
        return cmd;
    }

    private static Command BuildConvert()
    {
        var path = new Argument<string>("path") { Description = "A .gguf file, a llama2.c .bin checkpoint, or a Hugging Face folder" };
        var outPath = new Option<string>("--out") { Description = "Output .gguf file", Required = true };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "llama2.c tokenizer.bin or tokenizer.json (default: found beside the model)" };
        var dtype = new Option<string?>("--dtype") { Description = "Store matrices as f32, f16, bf16, q8_0, q4_0, q4_1, q5_0 or q5_1 (default: as stored)" };
        dtype.AcceptOnlyFromAmong("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1");
        var cmd = new Command("convert", "Convert a model to GGUF (llama.cpp compatible)") { path, outPath, tokenizer, dtype };
        cmd.SetAction((parse, ct) => Task.FromResult(Run(() =>
        {
            using var source = WeightSources.Open(parse.GetValue(path)!);
            var vocab = GgufModelWriter.FindTokenizer(source, parse.GetValue(tokenizer));
            string? t = parse.GetValue(dtype);
            string file = parse.GetValue(outPath)!;
            GgufModelWriter.Convert(source, file, vocab, t == null ? null : ParseType(t), ct);
            parse.InvocationConfiguration.Output.WriteLine($"wrote {file}" + (vocab == null ? " (no tokenizer found)" : $" with a {vocab.Model} vocabulary of {vocab.TokenCount} tokens"));
            return 0;
        })));
        return cmd;
    }

    /// <summary>Runs a synchronous body as the result of an async action (those receive the cancellation token).</summary>
    private static int Run(Func<int> body) => body();

    private static TensorType ParseType(string s) => s switch
    {
        "f32" => TensorType.F32,
        "f16" => TensorType.F16,
        "bf16" => TensorType.BF16,
        "q8_0" => TensorType.Q8_0,
        "q4_0" => TensorType.Q4_0,
        "q4_1" => TensorType.Q4_1,
        "q5_0" => TensorType.Q5_0,
        "q5_1" => TensorType.Q5_1,
        _ => throw new RunaheadException($"--dtype: unknown type '{s}'"),
    };

    private static string Inv(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);

    private static void WriteText(TextWriter o, ModelSummary s, bool allTensors)
    {
        var c = s.Config;
        o.WriteLine($"file:           {s.Path}");
        o.WriteLine($"format:         {s.Format}");
        o.WriteLine($"architecture:   {ArchText(c)}");
        o.WriteLine(Inv($"shape:          dim {c.Dim}, layers {c.Layers}, heads {c.Heads}, KV heads {c.KvHeads}, head size {c.HeadDim}, FFN {c.FfnDim}"));
        o.WriteLine(Inv($"context length: {c.ContextLength}"));
        o.WriteLine(Inv($"rope:           {(c.Rope == RopeStyle.NeoX ? "rotate-half (NeoX)" : "interleaved")}, theta {c.RopeTheta}"));
        o.WriteLine(Inv($"norm epsilon:   {c.NormEps}"));
        o.WriteLine($"embeddings:     {(c.TiedEmbeddings ? "tied (output uses token_embd)" : "separate output.weight")}");
        o.WriteLine(Inv($"vocabulary:     {c.VocabSize} (tokenizer: {s.TokenizerModel}{(s.TokenizerVocabSize > 0 ? $", {s.TokenizerVocabSize} tokens" : "")}), BOS {c.BosId}, EOS {c.EosId}"));
        o.WriteLine(Inv($"parameters:     {ModelSummary.FormatCount(s.ParameterCount)} ({s.ParameterCount:N0})"));
        o.WriteLine(Inv($"tensors:        {s.Tensors.Count} ({string.Join(", ", s.TensorCountByType.Select(kv => $"{kv.Value} {kv.Key}"))}), {s.TensorBytes / 1048576.0:0.0} MiB"));
        int width = 0;
        foreach (var t in s.Tensors) width = Math.Max(width, t.Name.Length);
        int hidden = 0;
        foreach (var t in s.Tensors)
        {
            if (!allTensors && t.Name.StartsWith("blk.", StringComparison.Ordinal) && !t.Name.StartsWith("blk.0.", StringComparison.Ordinal))
            {
                hidden++;
                continue;
            }
            o.WriteLine($"  {t.Name.PadRight(width)}  {t.Type,-5} {t.ShapeText}");
        }
        if (hidden > 0) o.WriteLine($"  ... {hidden} more in layers 1..{c.Layers - 1} (--tensors lists them)");
    }

    private static string ArchText(ModelConfig c) => c.Architecture == ModelArchitecture.Falcon
        ? "falcon" + (c.FalconNewDecoder ? " (new decoder architecture)" : "") + (c.ParallelAttention ? ", parallel attention" : "")
        : "llama";

    private static void WriteJson(TextWriter o, ModelSummary s)
    {
        var c = s.Config;
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("path", s.Path);
            w.WriteString("format", s.Format);
            w.WriteString("architecture", c.Architecture == ModelArchitecture.Falcon ? "falcon" : "llama");
            w.WriteNumber("dim", c.Dim);
            w.WriteNumber("layers", c.Layers);
            w.WriteNumber("heads", c.Heads);
            w.WriteNumber("kv_heads", c.KvHeads);
            w.WriteNumber("head_dim", c.HeadDim);
            w.WriteNumber("ffn_dim", c.FfnDim);
            w.WriteNumber("vocab_size", c.VocabSize);
            w.WriteNumber("context_length", c.ContextLength);
            w.WriteNumber("norm_eps", c.NormEps);
            w.WriteNumber("rope_theta", c.RopeTheta);
            w.WriteString("rope", c.Rope == RopeStyle.NeoX ? "neox" : "interleaved");
            w.WriteBoolean("tied_embeddings", c.TiedEmbeddings);
            w.WriteBoolean("parallel_attention", c.ParallelAttention);
            w.WriteBoolean("falcon_new_decoder", c.FalconNewDecoder);
            w.WriteNumber("bos_id", c.BosId);
            w.WriteNumber("eos_id", c.EosId);
            w.WriteString("tokenizer_model", s.TokenizerModel);
            w.WriteNumber("tokenizer_tokens", s.TokenizerVocabSize);
            w.WriteNumber("parameters", s.ParameterCount);
            w.WriteNumber("tensor_bytes", s.TensorBytes);
            w.WriteNumber("tensor_count", s.Tensors.Count);
            w.WriteStartArray("tensors");
            foreach (var t in s.Tensors)
            {
                w.WriteStartObject();
                w.WriteString("name", t.Name);
                w.WriteString("dtype", t.Type.ToString());
                w.WriteStartArray("shape");
                foreach (var d in t.Shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        o.WriteLine(System.Text.Encoding.UTF8.GetString(ms.ToArray()));
    }
}
