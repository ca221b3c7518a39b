namespace Runahead.Tests.Text;

/// <summary>
/// User-defined tokens are split out before tokenization (llama.cpp tokenizer_st_partition with parse_special off);
/// control tokens are not.
/// </summary>
public class UserDefinedTokenTests
{
    [SkippableFact]
    public void DeepseekCoderSingleCharacterUserTokensAreSplitOut()
    {
        var tok = TokenizerFixtures.ForVectorSet("deepseek-coder");
        var ids = tok.Encode("x\u00f5y", addBos: false); // "õ" is user-defined token 32000
        Assert.Equal([.. tok.Encode("x", false), 32000, .. tok.Encode("y", false)], ids);
        Assert.Equal("x\u00f5y", tok.Decode(ids));
    }

    [SkippableFact]
    public void SentencePieceAddsTheSpacePrefixAgainAfterAUserToken()
    {
        var tok = TokenizerFixtures.ForVectorSet("phi-3");
        var ids = tok.Encode("a</s>b", addBos: false); // "</s>" is user-defined in phi-3's GGUF
        Assert.Equal([.. tok.Encode("a", false), 2, .. tok.Encode("b", false)], ids);
    }

    [SkippableFact]
    public void ControlTokenTextStaysPlainText()
    {
        var tok = TokenizerFixtures.ForVectorSet("gpt-2");
        var ids = tok.Encode("<|endoftext|>", addBos: false);
        Assert.DoesNotContain(50256, ids);
        Assert.Equal("<|endoftext|>", tok.Decode(ids));
        Assert.Equal("", tok.Decode([50256]));
    }
}
