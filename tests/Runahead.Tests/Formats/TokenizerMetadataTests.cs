using Runahead.Formats;
using Runahead.Formats.Gguf;

namespace Runahead.Tests.Formats;

public class TokenizerMetadataTests
{
    private static GgufFile WriteAndOpen(TempDir dir, GgufTokenizerMetadata meta)
    {
        var w = new GgufWriter();
        meta.ApplyTo(w);
        string path = dir.File("vocab.gguf");
        w.Write(path);
        return GgufFile.Open(path);
    }

    [SkippableFact]
    public void Gpt2TokenizerJsonBecomesByteLevelBpe()
    {
        using var dir = new TempDir();
        var meta = GgufTokenizerMetadata.FromHfTokenizerJson(Fixtures.Path("tokenizers/hf/gpt2/tokenizer.json"), 50256, 50256, 50257);
        Assert.Equal("gpt2", meta.Model);
        using var f = WriteAndOpen(dir, meta);
        var tokens = f.GetArray<string>("tokenizer.ggml.tokens")!;
        var merges = f.GetArray<string>("tokenizer.ggml.merges")!;
        var types = f.GetArray<long>("tokenizer.ggml.token_type")!;
        Assert.True(tokens.Length >= 50257);
        Assert.Equal("!", tokens[0]);
        Assert.Equal("<|endoftext|>", tokens[50256]);
        Assert.Equal(GgufTokenizerMetadata.Control, types[50256]);
        Assert.Equal(50000, merges.Length);
        Assert.Equal("\u0120 t", merges[0]);
        Assert.Equal("gpt-2", f.GetString("tokenizer.ggml.pre"));
        Assert.Equal(50256, f.GetInt("tokenizer.ggml.eos_token_id", -1));
    }

    [SkippableFact]
    public void Phi3TokenizerJsonBecomesSentencePieceWithByteFallback()
    {
        using var dir = new TempDir();
        var meta = GgufTokenizerMetadata.FromHfTokenizerJson(Fixtures.Path("tokenizers/hf/phi3/tokenizer.json"), 1, 32000, 32064);
        Assert.Equal("llama", meta.Model);
        using var f = WriteAndOpen(dir, meta);
        var tokens = f.GetArray<string>("tokenizer.ggml.tokens")!;
        var types = f.GetArray<long>("tokenizer.ggml.token_type")!;
        var scores = f.GetArray<double>("tokenizer.ggml.scores")!;
        Assert.Equal(32064, tokens.Length);
        Assert.Equal(["<unk>", "<s>"], tokens[..2]);
        Assert.Equal("<0x00>", tokens[3]);
        Assert.Equal(GgufTokenizerMetadata.Byte, types[3]);
        Assert.Equal(GgufTokenizerMetadata.Control, types[1]);
        Assert.Equal(0, f.GetInt("tokenizer.ggml.unknown_token_id", -1));
        Assert.True(scores[1000] > scores[2000]);
    }

    [Fact]
    public void Llama3SplitRegexAndTokenizerConfigAreCarriedOver()
    {
        using var dir = new TempDir();
        const string regex = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
        string json = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [[\"a\", \"b\"]]},"
            + "\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": "
            + System.Text.Json.JsonSerializer.Serialize(regex) + "}}, {\"type\": \"ByteLevel\"}]}}";
        File.WriteAllText(dir.File("tokenizer.json"), json);
        File.WriteAllText(dir.File("tokenizer_config.json"), "{\"add_bos_token\": true}");
        var meta = GgufTokenizerMetadata.FromHfTokenizerJson(dir.File("tokenizer.json"), 0, 1, 3);
        var w = new GgufWriter();
        meta.ApplyTo(w);
        w.Write(dir.File("v.gguf"));
        using var f = GgufFile.Open(dir.File("v.gguf"));
        Assert.Equal("llama-bpe", f.GetString("tokenizer.ggml.pre"));
        Assert.True(f.GetBool("tokenizer.ggml.add_bos_token", false));
        Assert.Equal(["a b"], f.GetArray<string>("tokenizer.ggml.merges")!);
    }

    [Fact]
    public void BrokenTokenizerJsonIsOneLineError()
    {
        using var dir = new TempDir();
        string path = dir.File("tokenizer.json");
        foreach (var text in new[] { "{", "[]", "{\"model\": {\"type\": \"Unigram\"}}", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -1}}}" })
        {
            File.WriteAllText(path, text);
            var e = Assert.Throws<InvalidModelFileException>(() => GgufTokenizerMetadata.FromHfTokenizerJson(path, 1, 2, 10));
            Assert.DoesNotContain('\n', e.Message);
            Assert.StartsWith(path, e.Message);
        }
    }

    [Fact]
    public void BrokenLlama2cTokenizerIsRejected()
    {
        using var dir = new TempDir();
        string path = dir.File("tok.bin");
        File.WriteAllBytes(path, [4, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 127]);
        var e = Assert.Throws<InvalidModelFileException>(() => GgufTokenizerMetadata.FromLlama2c(path, 1));
        Assert.Contains("token 0", e.Message);
        e = Assert.Throws<InvalidModelFileException>(() => GgufTokenizerMetadata.FromLlama2c(path, 100));
        Assert.Contains("100 tokens", e.Message);
    }

    [SkippableFact]
    public void Llama2cTokenizerIsFoundBesideTheCheckpointByItsVocabSize()
    {
        using var s = WeightSources.Open(Fixtures.Path("llama2c/stories260K.bin"));
        var meta = GgufModelWriter.FindTokenizer(s);
        Assert.NotNull(meta);
        Assert.Equal(512, meta.TokenCount);
    }
}
