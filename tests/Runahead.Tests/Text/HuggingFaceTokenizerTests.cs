using Runahead.Text;

namespace Runahead.Tests.Text;

/// <summary>
/// tokenizer.json (GPT-2 byte-level, phi-3 SentencePiece-style BPE) against the GGUF vocabulary of the same model on
/// llama.cpp's test strings.
/// </summary>
public class HuggingFaceTokenizerTests
{
    private static ITokenizer Json(string model) =>
        TokenizerFixtures.Get("json:" + model, () => TokenizerLoader.Load(Fixtures.Path($"tokenizers/hf/{model}"), null));

    [SkippableFact]
    public void Gpt2JsonMatchesTheGgufVocabularyWhereTheVocabulariesAgree()
    {
        var json = Json("gpt2");
        var gguf = TokenizerFixtures.ForVectorSet("gpt-2");
        Assert.Equal(50256, json.BosId);
        Assert.False(json.AddBosByDefault);
        int compared = 0;
        var mismatches = new List<string>();
        foreach (var (text, expected) in TokenizerFixtures.Vectors("gpt-2"))
        {
            var ids = json.Encode(text, addBos: false);
            Assert.Equal(text, json.Decode(ids));
            Assert.Equal(expected, gguf.Encode(text, addBos: false));
            // This tokenizer.json adds whitespace-run tokens past GPT-2's 50257; texts that use them differ by design.
            if (ids.Any(id => id >= gguf.VocabSize)) continue;
            compared++;
            if (!ids.SequenceEqual(expected)) mismatches.Add($"{System.Text.Json.JsonSerializer.Serialize(text)}: gguf{TokenizerFixtures.Show(expected)} json{TokenizerFixtures.Show(ids)}");
        }
        Assert.True(mismatches.Count == 0, string.Join('\n', mismatches));
        Assert.True(compared >= 30, $"only {compared} strings compared");
    }

    [SkippableFact]
    public void Gpt2JsonSplitsOutItsWhitespaceRunTokens()
    {
        var json = Json("gpt2");
        var ids = json.Encode("a    b", addBos: false);
        Assert.Contains(ids, id => id >= 50257);
        Assert.Equal("a    b", json.Decode(ids));
    }

    [SkippableFact]
    public void Phi3JsonMatchesTheGgufVocabulary()
    {
        var json = Json("phi3");
        var gguf = TokenizerFixtures.ForVectorSet("phi-3");
        Assert.Equal(1, json.BosId);
        Assert.Equal(32000, json.EosId);
        Assert.True(json.AddBosByDefault);
        var mismatches = new List<string>();
        foreach (var (text, expected) in TokenizerFixtures.Vectors("phi-3"))
        {
            var ids = json.Encode(text, addBos: false);
            Assert.Equal(text, json.Decode(ids));
            if (!ids.SequenceEqual(expected)) mismatches.Add($"{System.Text.Json.JsonSerializer.Serialize(text)}: gguf{TokenizerFixtures.Show(expected)} json{TokenizerFixtures.Show(ids)}");
        }
        Assert.True(mismatches.Count == 0, string.Join('\n', mismatches));
    }
}
