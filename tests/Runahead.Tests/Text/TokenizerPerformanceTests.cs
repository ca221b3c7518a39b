using System.Diagnostics;
using Runahead.Text;
using Xunit.Abstractions;

namespace Runahead.Tests.Text;

/// <summary>
/// Long prompts must encode in well under a second (no quadratic merging). The assertions are only generous upper
/// bounds against hangs (the test machine is shared); the measured times are written to the test output.
/// </summary>
// Alone, after the parallel tests: their bounds guard against quadratic encoding, and beside the compute-heavy tests on
// 2 cores a 0.2 s encode was once seen taking 22 s of wall time.
[Collection(Runahead.Tests.Distributed.TimingCollection.Name)]
public class TokenizerPerformanceTests(ITestOutputHelper output)
{
    private static string LongText(int minChars)
    {
        var parts = TokenizerFixtures.Vectors("gpt-2").Select(v => v.Text).ToArray();
        var sb = new System.Text.StringBuilder();
        for (int i = 0; sb.Length < minChars; i++) sb.Append(parts[i % parts.Length]).Append('\n');
        return sb.ToString();
    }

    [SkippableTheory]
    [MemberData(nameof(Sets))]
    public void SixteenThousandTokenPromptEncodesQuickly(string set)
    {
        var tok = TokenizerFixtures.ForVectorSet(set);
        string text = LongText(60_000);
        tok.Encode(text[..2000], addBos: false); // warm up the JIT
        var sw = Stopwatch.StartNew();
        var ids = tok.Encode(text, addBos: false);
        sw.Stop();
        output.WriteLine($"{set}: {ids.Length} tokens from {text.Length} chars in {sw.Elapsed.TotalMilliseconds:F1} ms");
        Assert.True(ids.Length >= 16_000, $"only {ids.Length} tokens");
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10), $"took {sw.Elapsed}");
        Assert.Equal(text, tok.Decode(ids));
    }

    [SkippableTheory]
    [MemberData(nameof(Sets))]
    public void OneVeryLongWordIsNotQuadratic(string set)
    {
        var tok = TokenizerFixtures.ForVectorSet(set);
        string word = string.Concat(Enumerable.Repeat("abcdefghij", 20_000));
        var sw = Stopwatch.StartNew();
        var ids = tok.Encode(word, addBos: false);
        sw.Stop();
        output.WriteLine($"{set}: 200000-char word -> {ids.Length} tokens in {sw.Elapsed.TotalMilliseconds:F1} ms");
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10), $"took {sw.Elapsed}");
        Assert.Equal(word, tok.Decode(ids));
    }

    public static IEnumerable<object[]> Sets() => TokenizerFixtures.AllVectorSets.Select(s => new object[] { s });
}
