using System.Buffers.Binary;
using System.Text;
using System.Text.Json;

namespace Runahead.Formats.Gguf;

/// <summary>
/// The tokenizer.* metadata of a GGUF file, gathered from whatever the source model ships with (a GGUF vocabulary,
/// a llama2.c tokenizer.bin, a Hugging Face tokenizer.json), ready to be written by <see cref="GgufWriter"/>.
/// The Text helper reads these keys back: tokenizer.ggml.model, .tokens, .scores, .token_type, .merges,
/// .bos_token_id, .eos_token_id, .unknown_token_id, .add_bos_token, .pre.
/// </summary>
public sealed class GgufTokenizerMetadata
{
    /// <summary>GGUF / llama.cpp token types.</summary>
    public const int Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6;

    private readonly List<(string Key, GgufValueType Type, GgufValueType ElementType, object Value)> _entries = new();

    public string Model { get; }
    public int TokenCount { get; }

    private GgufTokenizerMetadata(string model, int tokenCount)
    {
        Model = model;
        TokenCount = tokenCount;
    }

    public IEnumerable<string> Keys
    {
        get { foreach (var e in _entries) yield return e.Key; }
    }

    public void ApplyTo(GgufWriter writer)
    {
        foreach (var e in _entries) writer.AddValue(e.Key, e.Type, e.ElementType, e.Value);
    }

    private void Add(string key, GgufValueType type, object value, GgufValueType elementType = default) =>
        _entries.Add((key, type, type == GgufValueType.Array ? elementType : type, value));

    /// <summary>Every tokenizer.* key of a GGUF file, copied with its stored type; null when it has no vocabulary.</summary>
    public static GgufTokenizerMetadata? FromGguf(GgufFile file)
    {
        string? model = file.GetString("tokenizer.ggml.model");
        if (model == null) return null;
        var tokens = file.GetArray<string>("tokenizer.ggml.tokens");
        var result = new GgufTokenizerMetadata(model, tokens?.Length ?? 0);
        foreach (var (key, value) in file.Metadata)
        {
            if (!key.StartsWith("tokenizer.", StringComparison.Ordinal)) continue;
            var (type, elementType) = file.MetadataTypes[key];
            result._entries.Add((key, type, elementType, value));
        }
        return result;
    }

    /// <summary>
    /// A llama2.c tokenizer.bin (int32 max_token_length, then per token: float32 score, int32 length, bytes) as a
    /// SentencePiece vocabulary the way llama.cpp's converter writes it: spaces back to U+2581, the llama2.c
    /// "\n&lt;s&gt;\n" / "\n&lt;/s&gt;\n" spellings back to &lt;s&gt; / &lt;/s&gt;, byte pieces typed as bytes.
    /// </summary>
    public static GgufTokenizerMetadata FromLlama2c(string path, int vocabSize, int bosId = 1, int eosId = 2)
    {
        byte[] data;
        try
        {
            var fi = new FileInfo(path);
            if (!fi.Exists) throw new InvalidModelFileException(path, "file not found");
            if (fi.Length > 256L << 20) throw new InvalidModelFileException(path, "tokenizer file is absurdly large");
            data = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is not RunaheadException)
        {
            throw new InvalidModelFileException(path, "cannot read: " + e.Message);
        }
        if (vocabSize <= 0 || vocabSize > data.Length / 8)
            throw new InvalidModelFileException(path, $"cannot hold {vocabSize} tokens (file has {data.Length} bytes)");
        var utf8 = new UTF8Encoding(false, true);
        var tokens = new string[vocabSize];
        var scores = new double[vocabSize];
        var types = new long[vocabSize];
        int p = 4;
        for (int i = 0; i < vocabSize; i++)
        {
            if (p > data.Length - 8) throw new InvalidModelFileException(path, $"truncated at token {i}");
            float score = BinaryPrimitives.ReadSingleLittleEndian(data.AsSpan(p));
            int len = BinaryPrimitives.ReadInt32LittleEndian(data.AsSpan(p + 4));
            p += 8;
            if (len < 0 || len > data.Length - p) throw new InvalidModelFileException(path, $"token {i} length {len} runs past the end of the file");
            string piece;
            try
            {
                piece = utf8.GetString(data, p, len);
            }
            catch (DecoderFallbackException)
            {
                throw new InvalidModelFileException(path, $"token {i} is not valid UTF-8");
            }
            p += len;
            if (i == 0 && piece == "<unk>") types[i] = Unknown;
            else if (i == bosId || i == eosId)
            {
                types[i] = Control;
                piece = piece.Trim('\n');
            }
            else if (IsBytePiece(piece)) types[i] = Byte;
            else types[i] = Normal;
            tokens[i] = types[i] == Normal ? piece.Replace(' ', '\u2581') : piece;
            scores[i] = score;
        }
        var result = new GgufTokenizerMetadata("llama", vocabSize);
        result.Add("tokenizer.ggml.model", GgufValueType.String, "llama");
        result.Add("tokenizer.ggml.tokens", GgufValueType.Array, tokens, GgufValueType.String);
        result.Add("tokenizer.ggml.scores", GgufValueType.Array, scores, GgufValueType.Float32);
        result.Add("tokenizer.ggml.token_type", GgufValueType.Array, types, GgufValueType.Int32);
        result.AddSpecialIds(0, bosId, eosId);
        result.Add("tokenizer.ggml.add_bos_token", GgufValueType.Bool, true); // run.c always starts with BOS
        return result;
    }

    private void AddSpecialIds(int unk, int bos, int eos)
    {
        if (unk >= 0) Add("tokenizer.ggml.unknown_token_id", GgufValueType.UInt32, (long)unk);
        if (bos >= 0) Add("tokenizer.ggml.bos_token_id", GgufValueType.UInt32, (long)bos);
        if (eos >= 0) Add("tokenizer.ggml.eos_token_id", GgufValueType.UInt32, (long)eos);
    }

    internal static bool IsBytePiece(string piece) =>
        piece.Length == 6 && piece.StartsWith("<0x", StringComparison.Ordinal) && piece[5] == '>' && Uri.IsHexDigit(piece[3]) && Uri.IsHexDigit(piece[4]);

    /// <summary>
    /// A Hugging Face tokenizer.json with a BPE model. Byte-level BPE (GPT-2 style) becomes model "gpt2" with tokens
    /// and merges; SentencePiece-style BPE with byte fallback becomes model "llama", scored by id (SentencePiece exports pieces
    /// in score order).
    /// </summary>
    public static GgufTokenizerMetadata FromHfTokenizerJson(string path, int bosId, int eosId, int vocabSize)
    {
        byte[] bytes = JsonFiles.ReadBounded(path, 512L << 20);
        using var doc = JsonFiles.Parse(path, bytes, "tokenizer.json");
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object)
            throw new InvalidModelFileException(path, "has no 'model' object");
        string type = model.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()! : "";
        if (type != "BPE") throw new InvalidModelFileException(path, $"tokenizer model '{type}' is not supported (BPE is)");
        bool byteFallback = model.TryGetProperty("byte_fallback", out var bf) && bf.ValueKind == JsonValueKind.True;
        if (!model.TryGetProperty("vocab", out var vocab) || vocab.ValueKind != JsonValueKind.Object)
            throw new InvalidModelFileException(path, "has no BPE vocabulary");

        var byId = new Dictionary<int, (string text, int type)>();
        int maxId = vocabSize - 1;
        foreach (var entry in vocab.EnumerateObject())
        {
            if (!entry.Value.TryGetInt32(out int id) || id < 0 || id >= 1 << 22) throw new InvalidModelFileException(path, $"token '{entry.Name}' has a bad id");
            byId[id] = (entry.Name, byteFallback && IsBytePiece(entry.Name) ? Byte : Normal);
            maxId = Math.Max(maxId, id);
        }
        if (root.TryGetProperty("added_tokens", out var added) && added.ValueKind == JsonValueKind.Array)
            foreach (var a in added.EnumerateArray())
            {
                if (a.ValueKind != JsonValueKind.Object || !a.TryGetProperty("id", out var idEl) || !idEl.TryGetInt32(out int id)
                    || id < 0 || id >= 1 << 22 || !a.TryGetProperty("content", out var c) || c.ValueKind != JsonValueKind.String)
                    throw new InvalidModelFileException(path, "has a malformed added_tokens entry");
                bool special = a.TryGetProperty("special", out var sp) && sp.ValueKind == JsonValueKind.True;
                byId[id] = (c.GetString()!, special ? Control : UserDefined);
                maxId = Math.Max(maxId, id);
            }
        int count = maxId + 1;
        var tokens = new string[count];
        var types = new long[count];
        var scores = new double[count];
        for (int i = 0; i < count; i++)
        {
            // Holes (ids the embedding has but the tokenizer never produces) get llama.cpp's placeholder.
            var (text, tokenType) = byId.TryGetValue(i, out var e) ? e : ($"[PAD{i}]", Unused);
            tokens[i] = text;
            types[i] = tokenType;
            scores[i] = tokenType == Normal ? -i : 0;
        }

        var merges = new List<string>();
        if (model.TryGetProperty("merges", out var mergeList) && mergeList.ValueKind == JsonValueKind.Array)
            foreach (var m in mergeList.EnumerateArray())
            {
                if (m.ValueKind == JsonValueKind.String) merges.Add(m.GetString()!);
                else if (m.ValueKind == JsonValueKind.Array && m.GetArrayLength() == 2 && m[0].ValueKind == JsonValueKind.String && m[1].ValueKind == JsonValueKind.String)
                    merges.Add(m[0].GetString() + " " + m[1].GetString());
                else throw new InvalidModelFileException(path, "has a malformed merge");
            }

        string ggmlModel = byteFallback ? "llama" : "gpt2";
        var result = new GgufTokenizerMetadata(ggmlModel, count);
        result.Add("tokenizer.ggml.model", GgufValueType.String, ggmlModel);
        if (!byteFallback) result.Add("tokenizer.ggml.pre", GgufValueType.String, PreTokenizerName(root));
        if (ReadAddBos(Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path)) ?? ".", "tokenizer_config.json")) is bool addBos)
            result.Add("tokenizer.ggml.add_bos_token", GgufValueType.Bool, addBos);
        result.Add("tokenizer.ggml.tokens", GgufValueType.Array, tokens, GgufValueType.String);
        result.Add("tokenizer.ggml.token_type", GgufValueType.Array, types, GgufValueType.Int32);
        if (byteFallback) result.Add("tokenizer.ggml.scores", GgufValueType.Array, scores, GgufValueType.Float32);
        result.Add("tokenizer.ggml.merges", GgufValueType.Array, merges.ToArray(), GgufValueType.String);
        int unk = byId.Count > 0 && model.TryGetProperty("unk_token", out var unkEl) && unkEl.ValueKind == JsonValueKind.String
            ? FindId(tokens, unkEl.GetString()!) : -1;
        result.AddSpecialIds(unk, bosId < count ? bosId : -1, eosId < count ? eosId : -1);
        return result;
    }

    private static int FindId(string[] tokens, string text) => Array.IndexOf(tokens, text);

    private const string Llama3Split = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    private const string Qwen2Split = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>
    /// llama.cpp's tokenizer.ggml.pre name for a tokenizer.json pre-tokenizer: plain ByteLevel is GPT-2's regex;
    /// a Split with the Llama 3 or Qwen2 regex is named after them; anything else falls back to "default".
    /// </summary>
    private static string PreTokenizerName(JsonElement root)
    {
        if (!root.TryGetProperty("pre_tokenizer", out var pre) || pre.ValueKind != JsonValueKind.Object) return "default";
        string? type = pre.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
        if (type == "ByteLevel")
            return pre.TryGetProperty("use_regex", out var ur) && ur.ValueKind == JsonValueKind.False ? "default" : "gpt-2";
        if (type != "Sequence" || !pre.TryGetProperty("pretokenizers", out var list) || list.ValueKind != JsonValueKind.Array) return "default";
        foreach (var item in list.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Object || !item.TryGetProperty("pattern", out var pattern) || pattern.ValueKind != JsonValueKind.Object
                || !pattern.TryGetProperty("Regex", out var regex) || regex.ValueKind != JsonValueKind.String)
                continue;
            string r = regex.GetString()!;
            if (r == Llama3Split) return "llama-bpe";
            if (r == Qwen2Split) return "qwen2";
        }
        return "default";
    }

    /// <summary>tokenizer_config.json's add_bos_token, when the file exists and says.</summary>
    private static bool? ReadAddBos(string configPath)
    {
        if (!File.Exists(configPath)) return null;
        var bytes = JsonFiles.ReadBounded(configPath, 64L << 20);
        using var doc = JsonFiles.Parse(configPath, bytes, "tokenizer_config.json");
        return doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("add_bos_token", out var v)
            ? v.ValueKind switch { JsonValueKind.True => true, JsonValueKind.False => false, _ => null }
            : null;
    }

    /// <summary>
    /// A synthetic SentencePiece vocabulary of exactly <paramref name="vocabSize"/> tokens: &lt;unk&gt;, &lt;s&gt;,
    /// &lt;/s&gt;, the 256 byte tokens, then word pieces with decreasing scores, so SPM encoding works on English text.
    /// </summary>
    public static GgufTokenizerMetadata Synthetic(int vocabSize)
    {
        var (tokens, scores, types) = SyntheticVocabulary.Build(vocabSize);
        var result = new GgufTokenizerMetadata("llama", vocabSize);
        result.Add("tokenizer.ggml.model", GgufValueType.String, "llama");
        result.Add("tokenizer.ggml.tokens", GgufValueType.Array, tokens, GgufValueType.String);
        result.Add("tokenizer.ggml.scores", GgufValueType.Array, scores, GgufValueType.Float32);
        result.Add("tokenizer.ggml.token_type", GgufValueType.Array, types, GgufValueType.Int32);
        result.AddSpecialIds(0, 1, 2);
        result.Add("tokenizer.ggml.add_bos_token", GgufValueType.Bool, true);
        return result;
    }
}
