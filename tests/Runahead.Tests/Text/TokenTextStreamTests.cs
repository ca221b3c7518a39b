using Runahead.Text;

namespace Runahead.Tests.Text;

public class TokenTextStreamTests
{
    private static ITokenizer Tok512() =>
        TokenizerFixtures.Get("tok512", () => TokenizerLoader.Load(Fixtures.Path("llama2c/stories260K.bin"), Fixtures.Path("llama2c/tok512.bin")));

    [SkippableFact]
    public void HoldsBackAnEmojiSplitOverByteTokens()
    {
        var tok = Tok512();
        var ids = tok.Encode("emoji \U0001F642 ok", addBos: true);
        int first = Array.IndexOf(ids, 0xF0 + 3); // <0xF0> is id 243
        Assert.True(first > 0);
        var stream = new TokenTextStream(tok);
        var chunks = ids.Select(stream.Append).ToList();
        Assert.Equal("", chunks[first]);
        Assert.Equal("", chunks[first + 1]);
        Assert.Equal("", chunks[first + 2]);
        Assert.Equal("\U0001F642", chunks[first + 3]);
        Assert.Equal("", stream.Flush());
        Assert.Equal("emoji \U0001F642 ok", stream.Text);
        Assert.Equal("", chunks[0]); // BOS
    }

    [SkippableFact]
    public void FirstPieceLosesTheDummyPrefixOnlyOnce()
    {
        var tok = Tok512();
        var stream = new TokenTextStream(tok);
        foreach (int id in tok.Encode(" Hello world", addBos: true)) stream.Append(id);
        Assert.Equal(" Hello world", stream.Text);
    }

    [SkippableFact]
    public void UnfinishedCharacterBecomesReplacementOnFlush()
    {
        var tok = Tok512();
        var stream = new TokenTextStream(tok);
        Assert.Equal("", stream.Append(0xE6 + 3));
        Assert.Equal("", stream.Append(0x97 + 3));
        Assert.Equal("\uFFFD", stream.Flush());
    }

    [SkippableTheory]
    [MemberData(nameof(Sets))]
    public void StreamingEqualsWholeDecodeOnEveryVector(string set)
    {
        var tok = TokenizerFixtures.ForVectorSet(set);
        foreach (var (text, _) in TokenizerFixtures.Vectors(set))
        {
            var ids = tok.Encode(text, addBos: false);
            var stream = new TokenTextStream(tok);
            var sb = new System.Text.StringBuilder();
            foreach (int id in ids)
            {
                string chunk = stream.Append(id);
                Assert.DoesNotContain('\uFFFD', chunk.Where(_ => !text.Contains('\uFFFD')));
                sb.Append(chunk);
            }
            sb.Append(stream.Flush());
            Assert.Equal(text, sb.ToString());
            Assert.Equal(tok.Decode(ids), sb.ToString());
        }
    }

    public static IEnumerable<object[]> Sets() => TokenizerFixtures.AllVectorSets.Select(s => new object[] { s });
}
