using System.Text.Json;
using Runahead.Text;

namespace Runahead.Tests.Text;

public sealed class PreTokenizerTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("runahead-pretok-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>The hand-written GPT-2 and Llama-3 splitters agree with .NET's regex engine on the original patterns
    /// (including the \s+(?!\S) lookahead) on every test string.</summary>
    [SkippableTheory]
    [InlineData(PreTokenizerKind.Gpt2, PreTokenizer.Gpt2Pattern)]
    [InlineData(PreTokenizerKind.Llama3, PreTokenizer.Llama3Pattern)]
    [InlineData(PreTokenizerKind.Qwen2, PreTokenizer.Qwen2Pattern)]
    public void ScannerAgreesWithDotNetRegex(PreTokenizerKind kind, string pattern)
    {
        var scanner = PreTokenizer.Create(kind);
        var regex = PreTokenizer.FromRegex(pattern);
        var extra = new[] { "a  \n\n  b", "x\r\n\r\ny", "  ", "\t\tz", "1234567", "don'T 'LL 'Re", "é\u00a0\u3000x", "a\u2028b" };
        foreach (var text in TokenizerFixtures.Vectors("gpt-2").Select(v => v.Text).Concat(extra))
            Assert.Equal(regex.Split(text), scanner.Split(text));
    }

    [Theory]
    [InlineData(PreTokenizerKind.Falcon, "3333333 a!!==b", new[] { "333", "333", "3", " a", "!!==", "b" })]
    [InlineData(PreTokenizerKind.Starcoder, "ab12 c", new[] { "ab", "1", "2", " c" })]
    [InlineData(PreTokenizerKind.DeepseekCoder, "Hi 世界\nx,y 12", new[] { "Hi", " ", "世界", "\n", "x", ",", "y", " ", "1", "2" })]
    public void RegexListStagesSplitLikeLlamaCpp(PreTokenizerKind kind, string text, string[] expected) =>
        Assert.Equal(expected, PreTokenizer.Create(kind).Split(text));

    /// <summary>A Llama-3 tokenizer.json (Split regex + ByteLevel, ignore_merges) gives llama.cpp's llama-bpe ids.</summary>
    [SkippableFact]
    public void Llama3TokenizerJsonReproducesTheLlamaBpeVectors()
    {
        var encoder = File.ReadAllText(Fixtures.Path("tokenizers/llama3.2-bpe/encoder.json"));
        var merges = File.ReadAllLines(Fixtures.Path("tokenizers/llama3.2-bpe/vocab.bpe")).Where(l => l.Length > 0 && !l.StartsWith("#version"));
        string json = $$$"""
            {"model": {"type": "BPE", "ignore_merges": true, "vocab": {{{encoder}}}, "merges": {{{JsonSerializer.Serialize(merges.ToArray())}}}},
             "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": {{{JsonSerializer.Serialize(PreTokenizer.Llama3Pattern)}}}}, "behavior": "Isolated", "invert": false},
                {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]},
             "decoder": {"type": "ByteLevel"}}
            """;
        string path = Path.Combine(_dir, "tokenizer.json");
        File.WriteAllText(path, json);
        var tok = TokenizerLoader.LoadFile(path);
        foreach (var (text, expected) in TokenizerFixtures.Vectors("llama-bpe"))
        {
            Assert.Equal(expected, tok.Encode(text, addBos: false));
            Assert.Equal(text, tok.Decode(expected));
        }
    }
}
