using System.Text.Json;

namespace Runahead.Text;

/// <summary>
/// The original GPT-2 release format of a byte-level BPE vocabulary: encoder.json (piece to id) and vocab.bpe (one
/// merge "a b" per line in rank order, optionally after a "#version" line).
/// </summary>
public static class Gpt2VocabularyFilesReader
{
    public static BpeTokenizer Read(string encoderJsonPath, string vocabBpePath, PreTokenizerKind preTokenizer,
        bool ignoreMerges = false, int bosId = -1, int eosId = -1, bool addBos = false)
    {
        var encoder = new Dictionary<string, int>(StringComparer.Ordinal);
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(encoderJsonPath));
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new InvalidModelFileException(encoderJsonPath, "expected a JSON object of piece -> id");
            foreach (var entry in doc.RootElement.EnumerateObject())
            {
                if (entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetInt32(out int id))
                    throw new InvalidModelFileException(encoderJsonPath, $"token '{Vocabulary.Printable(entry.Name)}' has id {entry.Value.GetRawText()}, not an integer");
                if (!encoder.TryAdd(entry.Name, id))
                    throw new InvalidModelFileException(encoderJsonPath, $"token '{Vocabulary.Printable(entry.Name)}' appears twice");
            }
        }
        catch (JsonException e)
        {
            throw new InvalidModelFileException(encoderJsonPath, $"not valid JSON: {e.Message}");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidModelFileException(encoderJsonPath, "cannot read: " + e.Message);
        }
        if (encoder.Count == 0) throw new InvalidModelFileException(encoderJsonPath, "the vocabulary is empty");
        var pieces = new string?[encoder.Count];
        foreach (var (piece, id) in encoder)
        {
            if (id < 0 || id >= pieces.Length)
                throw new InvalidModelFileException(encoderJsonPath, $"token '{Vocabulary.Printable(piece)}' has id {id}, outside 0..{pieces.Length - 1}");
            if (pieces[id] != null)
                throw new InvalidModelFileException(encoderJsonPath, $"token id {id} is used twice");
            pieces[id] = piece;
        }

        string[] lines;
        try
        {
            lines = File.ReadAllLines(vocabBpePath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidModelFileException(vocabBpePath, "cannot read: " + e.Message);
        }
        var merges = new List<(string, string)>(lines.Length);
        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i];
            if (line.Length == 0 || (i == 0 && line.StartsWith("#version", StringComparison.Ordinal))) continue;
            var pair = BpeTokenizer.SplitMergeLine(line);
            if (pair.Left.Length == 0) throw new InvalidModelFileException(vocabBpePath, $"line {i + 1} is not a merge \"a b\"");
            merges.Add(pair);
        }
        if (bosId >= pieces.Length || eosId >= pieces.Length)
            throw new InvalidModelFileException(encoderJsonPath, $"BOS/EOS id outside the vocabulary of {pieces.Length}");
        var vocab = new Vocabulary(encoderJsonPath, pieces!, null, null);
        var options = new BpeOptions { PreTokenizer = preTokenizer, ByteLevel = true, IgnoreMerges = ignoreMerges };
        return new BpeTokenizer(vocab, merges, options, bosId, eosId, addBos);
    }
}
