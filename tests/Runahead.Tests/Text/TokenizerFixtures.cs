using System.Collections.Concurrent;
using Runahead.Text;

namespace Runahead.Tests.Text;

/// <summary>Loads (once per test run) the tokenizers and llama.cpp test vectors under shared/fixtures.</summary>
internal static class TokenizerFixtures
{
    public const string Separator = "\n__ggml_vocab_test__\n";

    public static readonly string[] GgufVocabularies = ["llama-spm", "phi-3", "gpt-2", "falcon", "starcoder", "deepseek-coder"];
    public static readonly string[] AllVectorSets = [.. GgufVocabularies, "llama-bpe"];

    private static readonly ConcurrentDictionary<string, Lazy<ITokenizer>> Cache = new();

    public static ITokenizer Get(string key, Func<ITokenizer> load) =>
        Cache.GetOrAdd(key, _ => new Lazy<ITokenizer>(load)).Value;

    /// <summary>The tokenizer a vector set is checked against.</summary>
    public static ITokenizer ForVectorSet(string name) => name == "llama-bpe"
        ? Get("llama3.2-bpe", () => Gpt2VocabularyFilesReader.Read(
            Fixtures.Path("tokenizers/llama3.2-bpe/encoder.json"),
            Fixtures.Path("tokenizers/llama3.2-bpe/vocab.bpe"),
            PreTokenizerKind.Llama3, ignoreMerges: true))
        : Get("gguf:" + name, () => TokenizerLoader.Load(Fixtures.Path($"tokenizers/llamacpp/ggml-vocab-{name}.gguf"), null));

    /// <summary>(text, expected ids) of a vector set, in file order.</summary>
    public static IReadOnlyList<(string Text, int[] Ids)> Vectors(string name)
    {
        string inp = File.ReadAllText(Fixtures.Path($"tokenizers/llamacpp/ggml-vocab-{name}.gguf.inp"));
        string[] outLines = File.ReadAllText(Fixtures.Path($"tokenizers/llamacpp/ggml-vocab-{name}.gguf.out")).Split('\n');
        var texts = inp.Split(Separator);
        // The file ends with a separator, which leaves one empty entry that is not a case.
        int count = inp.EndsWith(Separator, StringComparison.Ordinal) ? texts.Length - 1 : texts.Length;
        if (count == texts.Length && inp.EndsWith(Separator.TrimEnd('\n'), StringComparison.Ordinal)) count--;
        var cases = new List<(string, int[])>(count);
        for (int i = 0; i < count; i++)
        {
            var ids = outLines[i].Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray();
            cases.Add((texts[i], ids));
        }
        return cases;
    }

    /// <summary>Theory rows (set, case index); one placeholder row per set when fixtures are absent (it then skips).</summary>
    public static IEnumerable<object[]> Rows(IEnumerable<string> sets)
    {
        foreach (var set in sets)
        {
            int count;
            try
            {
                count = Vectors(set).Count;
            }
            catch (Exception e) when (e.GetType().Name == "SkipException")
            {
                count = 0;
            }
            if (count == 0) yield return [set, -1];
            for (int i = 0; i < count; i++) yield return [set, i];
        }
    }

    public static string Show(int[] ids) => ids.Length == 0 ? "(none)" : " " + string.Join(' ', ids);
}
