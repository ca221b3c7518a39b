using Runahead.Text;

namespace Runahead.Tests.Text;

/// <summary>llama2.c's tokenizer.bin and the same vocabulary in stories260K.gguf against run.c / llama.cpp ids.</summary>
public class Llama2cTokenizerTests
{
    public static IEnumerable<object[]> Sources() => [["tok512.bin"], ["stories260K.gguf"]];

    private static ITokenizer Load(string source) => source == "tok512.bin"
        ? TokenizerFixtures.Get("tok512", () => TokenizerLoader.Load(Fixtures.Path("llama2c/stories260K.bin"), Fixtures.Path("llama2c/tok512.bin")))
        : TokenizerFixtures.Get("stories260K.gguf", () => TokenizerLoader.Load(Fixtures.Path("gguf/stories260K.gguf"), null));

    private static List<(string Text, int[] RunC, int[] LlamaCpp)> Reference()
    {
        var rows = new List<(string, int[], int[])>();
        foreach (var line in File.ReadAllLines(Fixtures.Path("reference/tok512_encode_ref.tsv")))
        {
            if (line.StartsWith('#') || line.Length == 0) continue;
            var cols = line.Split('\t');
            rows.Add((cols[0], Ids(cols[1]), Ids(cols[2])));
        }
        return rows;

        static int[] Ids(string s) => s.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray();
    }

    [SkippableTheory]
    [MemberData(nameof(Sources))]
    public void EncodeWithBosMatchesRunCAndLlamaCpp(string source)
    {
        var tokenizer = Load(source);
        var rows = Reference();
        Assert.Equal(13, rows.Count);
        var mismatches = new List<string>();
        foreach (var (text, runC, llamaCpp) in rows)
        {
            Assert.Equal(runC, llamaCpp); // the reference says they agree everywhere
            var actual = tokenizer.Encode(text, addBos: true);
            if (!actual.SequenceEqual(runC)) mismatches.Add($"'{text}': expected{TokenizerFixtures.Show(runC)}, got{TokenizerFixtures.Show(actual)}");
        }
        Assert.True(mismatches.Count == 0, string.Join('\n', mismatches));
    }

    [SkippableTheory]
    [MemberData(nameof(Sources))]
    public void DecodeDropsTheDummyPrefixAfterBos(string source)
    {
        var tokenizer = Load(source);
        Assert.True(tokenizer.AddBosByDefault);
        Assert.Equal(1, tokenizer.BosId);
        Assert.Equal(2, tokenizer.EosId);
        Assert.Equal(512, tokenizer.VocabSize);
        foreach (var (text, ids, _) in Reference())
        {
            Assert.Equal(text, tokenizer.Decode(ids));
            Assert.Equal(text, tokenizer.Decode(tokenizer.Encode(text, addBos: false)));
        }
    }

    [SkippableFact]
    public void PromptIdsOfTheReferenceRunMatch()
    {
        var tokenizer = Load("tok512.bin");
        var ids = ReferenceRunIds();
        Assert.Equal(ids[..5], tokenizer.Encode("Once upon a time", addBos: true));
    }

    [SkippableFact]
    public void StreamingTheReferenceRunGivesRunCsText()
    {
        var tokenizer = Load("tok512.bin");
        var ids = ReferenceRunIds();
        string expected = File.ReadAllText(Fixtures.Path("reference/out_t0_n64_p1.txt"));
        // run.c prints the prompt pieces (BOS excluded) and then every generated piece.
        var stream = new TokenTextStream(tokenizer);
        var sb = new System.Text.StringBuilder();
        foreach (int id in ids) sb.Append(stream.Append(id));
        sb.Append(stream.Flush());
        // run.c ends its output with a newline of its own.
        Assert.Equal(expected, sb.ToString() + "\n");
        Assert.Equal(sb.ToString(), tokenizer.Decode(ids));
    }

    /// <summary>PROMPT_IDS (BOS first) then GEN_IDS of run.c's greedy run.</summary>
    private static int[] ReferenceRunIds() =>
        File.ReadAllText(Fixtures.Path("reference/ids_t0_n64_p1.txt"))
            .Split((char[])[' ', '\n', '\t', '\r'], StringSplitOptions.RemoveEmptyEntries)
            .Where(t => t.All(char.IsAsciiDigit)).Select(int.Parse).ToArray();
}
