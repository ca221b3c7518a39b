using Runahead.Formats.Gguf;

namespace Runahead.Text;

/// <summary>Builds the tokenizer embedded in a GGUF file's tokenizer.ggml.* metadata, with llama.cpp's defaults.</summary>
public static class GgufTokenizerReader
{
    public static ITokenizer Read(string path)
    {
        using var file = GgufFile.Open(path);
        return Read(file);
    }

    public static ITokenizer Read(GgufFile file)
    {
        string path = file.Path;
        string model = file.GetString("tokenizer.ggml.model")
            ?? throw new InvalidModelFileException(path, "metadata 'tokenizer.ggml.model' is missing (the file has no vocabulary)");
        var tokens = file.GetArray<string>("tokenizer.ggml.tokens")
            ?? throw new InvalidModelFileException(path, "metadata 'tokenizer.ggml.tokens' is missing");
        if (tokens.Length == 0) throw new InvalidModelFileException(path, "metadata 'tokenizer.ggml.tokens' is empty");
        int n = tokens.Length;

        float[]? scores = null;
        if (file.Metadata.TryGetValue("tokenizer.ggml.scores", out var s))
        {
            scores = s switch
            {
                double[] d => Array.ConvertAll(d, x => (float)x),
                long[] l => Array.ConvertAll(l, x => (float)x),
                _ => throw new InvalidModelFileException(path, $"metadata 'tokenizer.ggml.scores' should be an array of numbers, found {GgufFile.Describe(s)}"),
            };
            if (scores.Length < n) throw new InvalidModelFileException(path, $"tokenizer.ggml.scores has {scores.Length} entries for {n} tokens");
        }
        TokenType[]? types = null;
        var rawTypes = file.GetArray<long>("tokenizer.ggml.token_type");
        if (rawTypes != null)
        {
            if (rawTypes.Length < n) throw new InvalidModelFileException(path, $"tokenizer.ggml.token_type has {rawTypes.Length} entries for {n} tokens");
            types = new TokenType[n];
            for (int i = 0; i < n; i++)
                types[i] = rawTypes[i] is >= 0 and <= 6 ? (TokenType)rawTypes[i] : TokenType.Undefined;
        }
        var vocab = new Vocabulary(path, tokens, scores, types);

        switch (model)
        {
            case "llama":
            {
                int bos = TokenId(file, "tokenizer.ggml.bos_token_id", n, 1);
                int eos = TokenId(file, "tokenizer.ggml.eos_token_id", n, 2);
                int unk = TokenId(file, "tokenizer.ggml.unknown_token_id", n, 0);
                bool addBos = file.GetBool("tokenizer.ggml.add_bos_token", true);
                bool addSpacePrefix = file.GetBool("tokenizer.ggml.add_space_prefix", true);
                if (addBos && bos < 0) throw new InvalidModelFileException(path, "tokenizer.ggml.add_bos_token is true but there is no BOS token");
                return new SentencePieceTokenizer(vocab, bos, eos, addBos, addSpacePrefix, escapeWhitespace: true, unknownId: unk);
            }
            case "gpt2":
            {
                var mergeLines = file.GetArray<string>("tokenizer.ggml.merges")
                    ?? throw new InvalidModelFileException(path, "metadata 'tokenizer.ggml.merges' is missing (a gpt2 vocabulary needs merges)");
                var merges = new (string, string)[mergeLines.Length];
                for (int i = 0; i < mergeLines.Length; i++) merges[i] = BpeTokenizer.SplitMergeLine(mergeLines[i]);
                string pre = file.GetString("tokenizer.ggml.pre") ?? "default";
                var (kind, ignoreMerges, addBosDefault) = PreTokenizerFor(path, pre);
                int bos = TokenId(file, "tokenizer.ggml.bos_token_id", n, -1);
                int eos = TokenId(file, "tokenizer.ggml.eos_token_id", n, -1);
                bool addBos = file.GetBool("tokenizer.ggml.add_bos_token", addBosDefault);
                if (addBos && bos < 0) throw new InvalidModelFileException(path, "tokenizer.ggml.add_bos_token is true but there is no BOS token");
                var options = new BpeOptions { PreTokenizer = kind, ByteLevel = true, IgnoreMerges = ignoreMerges };
                return new BpeTokenizer(vocab, merges, options, bos, eos, addBos);
            }
            default:
                throw new InvalidModelFileException(path, $"tokenizer model '{model}' is not supported (llama and gpt2 are)");
        }
    }

    /// <summary>llama.cpp's tokenizer.ggml.pre names: (splitter, ignore merges, add BOS by default).</summary>
    public static (PreTokenizerKind Kind, bool IgnoreMerges, bool AddBos) PreTokenizerFor(string path, string pre) => pre switch
    {
        "default" => (PreTokenizerKind.Default, false, false),
        "llama3" or "llama-v3" or "llama-bpe" or "falcon3" or "pixtral" => (PreTokenizerKind.Llama3, true, true),
        "dbrx" or "smaug-bpe" => (PreTokenizerKind.Llama3, false, false),
        "qwen2" or "deepseek-r1-qwen" or "stablelm2" or "megrez" => (PreTokenizerKind.Qwen2, false, false),
        "falcon" => (PreTokenizerKind.Falcon, false, false),
        "starcoder" or "refact" or "command-r" or "smollm" or "codeshell" or "exaone" or "minerva-7b" => (PreTokenizerKind.Starcoder, false, false),
        "deepseek-coder" => (PreTokenizerKind.DeepseekCoder, false, false),
        "gpt-2" or "phi-2" or "mpt" or "olmo" or "jais" or "jina-es" or "jina-de" or "jina-v2-es" or "jina-v2-de"
            or "jina-v1-en" or "jina-v2-code" or "roberta-bpe" or "gigachat" or "exaone4" => (PreTokenizerKind.Gpt2, false, false),
        _ => throw new InvalidModelFileException(path, $"pre-tokenizer '{pre}' (tokenizer.ggml.pre) is not supported"),
    };

    /// <summary>A token id from metadata: absent gives the default (if in range), -1 / 0xFFFFFFFF means none.</summary>
    private static int TokenId(GgufFile file, string key, int vocabSize, int fallback)
    {
        if (!file.Has(key)) return fallback < vocabSize ? fallback : -1;
        long id = file.GetInt(key, -1);
        if (id is -1 or 0xFFFFFFFF) return -1;
        if (id < 0 || id >= vocabSize)
            throw new InvalidModelFileException(file.Path, $"metadata '{key}' = {id} is outside the vocabulary (0..{vocabSize - 1})");
        return (int)id;
    }
}
