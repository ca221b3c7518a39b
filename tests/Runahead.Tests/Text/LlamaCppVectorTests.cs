using Runahead.Text;

namespace Runahead.Tests.Text;

/// <summary>llama.cpp's tokenizer test vectors (test-tokenizer-0): every case must match exactly.</summary>
public class LlamaCppVectorTests
{
    public static IEnumerable<object[]> AllCases() => TokenizerFixtures.Rows(TokenizerFixtures.AllVectorSets);

    private static (ITokenizer Tokenizer, string Text, int[] Expected) Case(string set, int index)
    {
        var vectors = TokenizerFixtures.Vectors(set); // skips when the fixture is absent
        Skip.If(index < 0, "no vectors");
        return (TokenizerFixtures.ForVectorSet(set), vectors[index].Text, vectors[index].Ids);
    }

    [SkippableTheory]
    [MemberData(nameof(AllCases))]
    public void EncodeMatchesLlamaCpp(string set, int index)
    {
        var (tokenizer, text, expected) = Case(set, index);
        var actual = tokenizer.Encode(text, addBos: false);
        Assert.True(expected.SequenceEqual(actual),
            $"{set} case {index} {System.Text.Json.JsonSerializer.Serialize(text)}:\n expected{TokenizerFixtures.Show(expected)}\n actual  {TokenizerFixtures.Show(actual)}");
    }

    [SkippableTheory]
    [MemberData(nameof(AllCases))]
    public void DecodeOfEncodeGivesTheTextBack(string set, int index)
    {
        var (tokenizer, text, _) = Case(set, index);
        var ids = tokenizer.Encode(text, addBos: false);
        Assert.Equal(text, tokenizer.Decode(ids));
        // The expected ids decode to the same text (so the decoder does not depend on our encoder's choices).
        var expected = TokenizerFixtures.Vectors(set)[index].Ids;
        if (tokenizer.VocabSize > expected.DefaultIfEmpty(0).Max()) Assert.Equal(text, tokenizer.Decode(expected));
    }
}
