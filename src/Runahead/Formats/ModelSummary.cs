using Runahead.Formats.Gguf;
using Runahead.Models;

namespace Runahead.Formats;

/// <summary>What `runahead model info` reports about a weight source.</summary>
public sealed record ModelSummary(
    string Path,
    string Format,
    ModelConfig Config,
    long ParameterCount,
    long TensorBytes,
    IReadOnlyList<TensorInfo> Tensors,
    IReadOnlyDictionary<TensorType, int> TensorCountByType,
    string TokenizerModel,
    int TokenizerVocabSize)
{
    public static ModelSummary Describe(IWeightSource source)
    {
        long parameters = 0, bytes = 0;
        var byType = new SortedDictionary<TensorType, int>();
        foreach (var t in source.Tensors)
        {
            parameters += t.ElementCount;
            bytes += t.ByteSize;
            byType[t.Type] = byType.GetValueOrDefault(t.Type) + 1;
        }
        var (model, count) = DescribeTokenizer(source);
        return new ModelSummary(source.SourcePath, source.FormatName, source.Config, parameters, bytes, source.Tensors, byType, model, count);
    }

    /// <summary>The tokenizer model name and size, "none" when the source has no vocabulary, or why it is unreadable.</summary>
    private static (string model, int count) DescribeTokenizer(IWeightSource source)
    {
        if (source is GgufWeightSource g)
        {
            string? model = g.File.GetString("tokenizer.ggml.model");
            var tokens = g.File.Metadata.TryGetValue("tokenizer.ggml.tokens", out var t) ? t as string[] : null;
            return (model ?? "none", tokens?.Length ?? 0);
        }
        try
        {
            var meta = GgufModelWriter.FindTokenizer(source);
            if (meta == null) return ("none", 0);
            return (source.FormatName == "llama2c" ? "llama (llama2.c tokenizer)" : meta.Model + " (tokenizer.json)", meta.TokenCount);
        }
        catch (InvalidModelFileException e)
        {
            return ("unreadable: " + e.Message, 0);
        }
    }

    public static string FormatCount(long n) => n switch
    {
        >= 1_000_000_000 => $"{n / 1e9:0.00}B",
        >= 1_000_000 => $"{n / 1e6:0.00}M",
        >= 1_000 => $"{n / 1e3:0.0}K",
        _ => n.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };
}
