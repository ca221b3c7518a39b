using System.Text.Json;

namespace Runahead.Text;

/// <summary>
/// Hugging Face tokenizer.json with a BPE model: byte-level (GPT-2 style: ByteLevel pre-tokenizer, optional Split
/// regexes) or SentencePiece-style (phi-3: Prepend/Replace "▁" normalizer, byte_fallback). Added tokens that are not
/// special are split out of the text first (Hugging Face does so); special ones stay plain text, like every
/// <see cref="ITokenizer"/>. BOS/EOS come from tokenizer_config.json beside the file when present.
/// </summary>
public static class HuggingFaceTokenizerReader
{
    private const int MaxVocabulary = 1 << 22;

    public static BpeTokenizer Read(string path)
    {
        string json = ReadText(path);
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException e)
        {
            throw new InvalidModelFileException(path, $"not valid JSON: {e.Message}");
        }
        using (doc)
        {
            try
            {
                return Build(path, doc.RootElement, ReadConfig(path));
            }
            catch (Exception e) when (e is InvalidOperationException or KeyNotFoundException or FormatException)
            {
                throw new InvalidModelFileException(path, $"unexpected tokenizer.json structure: {e.Message}");
            }
        }
    }

    private static string ReadText(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidModelFileException(path, "cannot read: " + e.Message);
        }
    }

    private sealed record Config(string? Bos, string? Eos, bool? AddBos);

    /// <summary>
    /// tokenizer_config.json beside tokenizer.json (bos_token, eos_token, add_bos_token), with special_tokens_map.json
    /// filling in BOS/EOS that the config does not name.
    /// </summary>
    private static Config ReadConfig(string tokenizerPath)
    {
        string dir = Path.GetDirectoryName(Path.GetFullPath(tokenizerPath)) ?? ".";
        var config = ReadConfigFile(Path.Combine(dir, "tokenizer_config.json"));
        if (config.Bos == null || config.Eos == null)
        {
            var map = ReadConfigFile(Path.Combine(dir, "special_tokens_map.json"));
            config = config with { Bos = config.Bos ?? map.Bos, Eos = config.Eos ?? map.Eos };
        }
        return config;
    }

    private static Config ReadConfigFile(string configPath)
    {
        if (!File.Exists(configPath)) return new Config(null, null, null);
        try
        {
            using var doc = JsonDocument.Parse(ReadText(configPath));
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new InvalidModelFileException(configPath, "expected a JSON object");
            bool? addBos = root.TryGetProperty("add_bos_token", out var ab) && ab.ValueKind is JsonValueKind.True or JsonValueKind.False
                ? ab.GetBoolean() : null;
            return new Config(TokenText(root, "bos_token"), TokenText(root, "eos_token"), addBos);
        }
        catch (JsonException e)
        {
            throw new InvalidModelFileException(configPath, $"not valid JSON: {e.Message}");
        }
    }

    private static string? TokenText(JsonElement root, string name)
    {
        if (!root.TryGetProperty(name, out var v)) return null;
        return v.ValueKind switch
        {
            JsonValueKind.String => v.GetString(),
            JsonValueKind.Object when v.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String => c.GetString(),
            _ => null,
        };
    }

    private static BpeTokenizer Build(string path, JsonElement root, Config config)
    {
        if (root.ValueKind != JsonValueKind.Object) throw new InvalidModelFileException(path, "expected a JSON object at the top");
        if (!root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object)
            throw new InvalidModelFileException(path, "no \"model\" object");
        string type = model.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()! : "BPE";
        if (type != "BPE") throw new InvalidModelFileException(path, $"model type '{type}' is not supported (BPE is)");
        if (!model.TryGetProperty("vocab", out var vocabJson) || vocabJson.ValueKind != JsonValueKind.Object)
            throw new InvalidModelFileException(path, "model.vocab is missing or not an object");

        var byId = new Dictionary<int, string>();
        var types = new Dictionary<int, TokenType>();
        foreach (var entry in vocabJson.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetInt32(out int id) || id < 0 || id >= MaxVocabulary)
                throw new InvalidModelFileException(path, $"token '{Vocabulary.Printable(entry.Name)}' has id {entry.Value.GetRawText()}, which is not a valid token id");
            if (!byId.TryAdd(id, entry.Name))
                throw new InvalidModelFileException(path, $"token id {id} is used by both '{Vocabulary.Printable(byId[id])}' and '{Vocabulary.Printable(entry.Name)}'");
        }
        if (root.TryGetProperty("added_tokens", out var added) && added.ValueKind == JsonValueKind.Array)
        {
            foreach (var a in added.EnumerateArray())
            {
                if (!a.TryGetProperty("id", out var idEl) || !idEl.TryGetInt32(out int id) || id < 0 || id >= MaxVocabulary)
                    throw new InvalidModelFileException(path, "an added token has a missing or invalid id");
                string content = a.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString()! : "";
                if (content.Length == 0) throw new InvalidModelFileException(path, $"added token {id} has no content");
                bool special = a.TryGetProperty("special", out var sp) && sp.ValueKind == JsonValueKind.True;
                if (byId.TryGetValue(id, out var existing) && existing != content)
                    throw new InvalidModelFileException(path, $"added token {id} '{Vocabulary.Printable(content)}' conflicts with vocabulary token '{Vocabulary.Printable(existing)}'");
                byId[id] = content;
                types[id] = special ? TokenType.Control : TokenType.UserDefined;
            }
        }
        if (byId.Count == 0) throw new InvalidModelFileException(path, "the vocabulary is empty");
        int size = byId.Keys.Max() + 1;
        if (size != byId.Count)
        {
            int missing = Enumerable.Range(0, size).First(i => !byId.ContainsKey(i));
            throw new InvalidModelFileException(path, $"token ids are not contiguous: id {missing} is missing below the largest id {size - 1}");
        }

        bool byteFallback = model.TryGetProperty("byte_fallback", out var bf) && bf.ValueKind == JsonValueKind.True;
        bool ignoreMerges = model.TryGetProperty("ignore_merges", out var im) && im.ValueKind == JsonValueKind.True;
        string? unkToken = model.TryGetProperty("unk_token", out var uk) && uk.ValueKind == JsonValueKind.String ? uk.GetString() : null;

        var pieces = new string[size];
        var tokenTypes = new TokenType[size];
        for (int i = 0; i < size; i++)
        {
            pieces[i] = byId[i];
            tokenTypes[i] = types.TryGetValue(i, out var tt) ? tt
                : byteFallback && VocabularyTokenizer.ParseBytePiece(pieces[i]) >= 0 ? TokenType.Byte : TokenType.Normal;
        }
        var vocab = new Vocabulary(path, pieces, null, tokenTypes);
        int unk = unkToken != null ? vocab.IdOf(unkToken) : -1;
        if (unk >= 0 && tokenTypes[unk] == TokenType.Normal) tokenTypes[unk] = TokenType.Unknown;

        var merges = ReadMerges(path, model);
        var options = new BpeOptions { ByteFallback = byteFallback, IgnoreMerges = ignoreMerges, ByteLevel = false, PreTokenizer = PreTokenizerKind.None };
        options = ApplyNormalizer(path, root, options);
        options = ApplyPreTokenizer(path, root, options);
        if (!options.ByteLevel && root.TryGetProperty("decoder", out var dec) && ContainsType(dec, "ByteLevel"))
            options = options with { ByteLevel = true };

        int bos = config.Bos != null ? vocab.IdOf(config.Bos) : -1;
        int eos = config.Eos != null ? vocab.IdOf(config.Eos) : -1;
        int templateBos = TemplateLeadingSpecial(root, vocab);
        if (bos < 0) bos = templateBos;
        bool addBos = config.AddBos ?? templateBos >= 0;
        if (addBos && bos < 0) throw new InvalidModelFileException(path, "the tokenizer adds BOS but no BOS token is defined");
        return new BpeTokenizer(vocab, merges, options, bos, eos, addBos, unk);
    }

    private static List<(string, string)> ReadMerges(string path, JsonElement model)
    {
        var merges = new List<(string, string)>();
        if (!model.TryGetProperty("merges", out var m)) return merges;
        if (m.ValueKind != JsonValueKind.Array) throw new InvalidModelFileException(path, "model.merges is not an array");
        foreach (var e in m.EnumerateArray())
        {
            if (e.ValueKind == JsonValueKind.String) merges.Add(BpeTokenizer.SplitMergeLine(e.GetString()!));
            else if (e.ValueKind == JsonValueKind.Array && e.GetArrayLength() == 2
                     && e[0].ValueKind == JsonValueKind.String && e[1].ValueKind == JsonValueKind.String)
                merges.Add((e[0].GetString()!, e[1].GetString()!));
            else throw new InvalidModelFileException(path, $"merge rule {merges.Count} is neither \"a b\" nor [\"a\", \"b\"]");
        }
        return merges;
    }

    private static bool ContainsType(JsonElement e, string type)
    {
        if (e.ValueKind != JsonValueKind.Object) return false;
        if (e.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String && t.GetString() == type) return true;
        foreach (var listName in new[] { "decoders", "pretokenizers", "normalizers" })
        {
            if (e.TryGetProperty(listName, out var list) && list.ValueKind == JsonValueKind.Array)
            {
                foreach (var item in list.EnumerateArray())
                    if (ContainsType(item, type)) return true;
            }
        }
        return false;
    }

    private static BpeOptions ApplyNormalizer(string path, JsonElement root, BpeOptions options)
    {
        if (!root.TryGetProperty("normalizer", out var n) || n.ValueKind == JsonValueKind.Null) return options;
        foreach (var step in Flatten(n, "normalizers"))
        {
            string type = step.GetProperty("type").GetString() ?? "";
            if (type == "Prepend" && step.GetProperty("prepend").GetString() == "\u2581")
                options = options with { PrependMarker = true };
            else if (type == "Replace" && step.TryGetProperty("pattern", out var p) && p.TryGetProperty("String", out var s)
                     && s.GetString() == " " && step.GetProperty("content").GetString() == "\u2581")
                options = options with { SpacesAsMarker = true };
            else throw new InvalidModelFileException(path, $"normalizer '{type}' ({step.GetRawText()}) is not supported");
        }
        return options;
    }

    private static BpeOptions ApplyPreTokenizer(string path, JsonElement root, BpeOptions options)
    {
        if (!root.TryGetProperty("pre_tokenizer", out var p) || p.ValueKind == JsonValueKind.Null) return options;
        var parts = new List<PreTokenizer>();
        foreach (var step in Flatten(p, "pretokenizers"))
        {
            string type = step.GetProperty("type").GetString() ?? "";
            switch (type)
            {
                case "ByteLevel":
                    if (step.TryGetProperty("add_prefix_space", out var aps) && aps.ValueKind == JsonValueKind.True)
                        throw new InvalidModelFileException(path, "ByteLevel add_prefix_space=true is not supported");
                    options = options with { ByteLevel = true };
                    if (!step.TryGetProperty("use_regex", out var ur) || ur.ValueKind != JsonValueKind.False)
                        parts.Add(PreTokenizer.Create(PreTokenizerKind.Gpt2));
                    break;
                case "Split":
                {
                    var pattern = step.GetProperty("pattern");
                    string behavior = step.TryGetProperty("behavior", out var b) ? b.GetString() ?? "" : "";
                    bool invert = step.TryGetProperty("invert", out var inv) && inv.ValueKind == JsonValueKind.True;
                    if (behavior != "Isolated" || invert)
                        throw new InvalidModelFileException(path, $"Split pre-tokenizer with behavior '{behavior}'{(invert ? " inverted" : "")} is not supported (Isolated is)");
                    string regex = pattern.TryGetProperty("Regex", out var r) ? r.GetString()!
                        : System.Text.RegularExpressions.Regex.Escape(pattern.GetProperty("String").GetString()!);
                    parts.Add(PreTokenizer.FromPattern(regex));
                    break;
                }
                case "Digits":
                    if (!step.TryGetProperty("individual_digits", out var d) || d.ValueKind != JsonValueKind.True)
                        throw new InvalidModelFileException(path, "Digits pre-tokenizer without individual_digits is not supported");
                    parts.Add(PreTokenizer.IndividualDigits());
                    break;
                default:
                    throw new InvalidModelFileException(path, $"pre-tokenizer '{type}' is not supported");
            }
        }
        return parts.Count == 0 ? options : options with { CustomPreTokenizer = PreTokenizer.Sequence(parts) };
    }

    private static IEnumerable<JsonElement> Flatten(JsonElement e, string listName)
    {
        if (e.ValueKind != JsonValueKind.Object) throw new InvalidOperationException($"expected an object, found {e.ValueKind}");
        if (e.GetProperty("type").GetString() == "Sequence")
        {
            foreach (var item in e.GetProperty(listName).EnumerateArray())
                foreach (var inner in Flatten(item, listName))
                    yield return inner;
        }
        else yield return e;
    }

    /// <summary>The special token a TemplateProcessing post-processor puts before a single sequence, or -1.</summary>
    private static int TemplateLeadingSpecial(JsonElement root, Vocabulary vocab)
    {
        if (!root.TryGetProperty("post_processor", out var pp) || pp.ValueKind != JsonValueKind.Object) return -1;
        if (!pp.TryGetProperty("type", out var t) || t.GetString() != "TemplateProcessing") return -1;
        if (!pp.TryGetProperty("single", out var single) || single.ValueKind != JsonValueKind.Array || single.GetArrayLength() == 0) return -1;
        var first = single[0];
        if (!first.TryGetProperty("SpecialToken", out var st) || !st.TryGetProperty("id", out var id)) return -1;
        return vocab.IdOf(id.GetString() ?? "");
    }
}
