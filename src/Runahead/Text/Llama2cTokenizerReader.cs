using System.Buffers.Binary;
using System.Text;

namespace Runahead.Text;

/// <summary>
/// llama2.c's tokenizer.bin: int32 max_token_length, then per token float32 score, int32 length and that many bytes
/// (little-endian). Pieces hold real spaces; bytes are "&lt;0xNN&gt;" tokens 3..258; 0 is &lt;unk&gt;, 1 BOS, 2 EOS.
/// The file does not store the vocabulary size: it is the model's, or every record up to the end of the file.
/// </summary>
public static class Llama2cTokenizerReader
{
    private const int MaxReasonableTokenLength = 1 << 16;

    /// <summary>Whether the bytes look like a tokenizer.bin (a plausible first record), without reading it all.</summary>
    public static bool LooksLikeTokenizerBin(ReadOnlySpan<byte> head)
    {
        if (head.Length < 12) return false;
        int maxLen = BinaryPrimitives.ReadInt32LittleEndian(head);
        int firstLen = BinaryPrimitives.ReadInt32LittleEndian(head[8..]);
        float score = BinaryPrimitives.ReadSingleLittleEndian(head[4..]);
        return maxLen is > 0 and <= MaxReasonableTokenLength && firstLen >= 0 && firstLen <= maxLen && float.IsFinite(score);
    }

    public static SentencePieceTokenizer Read(string path, int? vocabSize = null)
    {
        byte[] data;
        try
        {
            data = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidModelFileException(path, "cannot read: " + e.Message);
        }
        return Parse(path, data, vocabSize);
    }

    public static SentencePieceTokenizer Parse(string path, ReadOnlySpan<byte> data, int? vocabSize = null)
    {
        if (data.Length < 4) throw new InvalidModelFileException(path, "file is too short to be a llama2.c tokenizer");
        int maxLen = BinaryPrimitives.ReadInt32LittleEndian(data);
        if (maxLen <= 0 || maxLen > MaxReasonableTokenLength)
            throw new InvalidModelFileException(path, $"max_token_length {maxLen} is not plausible (not a llama2.c tokenizer.bin?)");
        if (vocabSize is <= 0) throw new InvalidModelFileException(path, $"vocabulary size {vocabSize} is not positive");
        var pieces = new List<string>(vocabSize ?? 32000);
        var scores = new List<float>(vocabSize ?? 32000);
        var strict = new UTF8Encoding(false, true);
        int pos = 4;
        while (vocabSize is int v ? pieces.Count < v : pos < data.Length)
        {
            int id = pieces.Count;
            if (data.Length - pos < 8)
                throw new InvalidModelFileException(path, $"truncated at token {id} (byte {pos}){(vocabSize is int w ? $"; the model needs {w} tokens" : "")}");
            float score = BinaryPrimitives.ReadSingleLittleEndian(data[pos..]);
            int len = BinaryPrimitives.ReadInt32LittleEndian(data[(pos + 4)..]);
            pos += 8;
            if (len < 0 || len > maxLen)
                throw new InvalidModelFileException(path, $"token {id} has length {len}, outside 0..max_token_length {maxLen}");
            if (len > data.Length - pos) throw new InvalidModelFileException(path, $"token {id} runs past the end of the file (truncated)");
            if (!float.IsFinite(score)) throw new InvalidModelFileException(path, $"token {id} has a non-finite score");
            string piece;
            try
            {
                piece = strict.GetString(data.Slice(pos, len));
            }
            catch (DecoderFallbackException)
            {
                throw new InvalidModelFileException(path, $"token {id} is not valid UTF-8");
            }
            pos += len;
            pieces.Add(piece);
            scores.Add(score);
        }
        if (pieces.Count < 3) throw new InvalidModelFileException(path, $"only {pieces.Count} tokens; a llama2.c vocabulary starts with <unk>, BOS, EOS");

        var types = new TokenType[pieces.Count];
        for (int i = 0; i < types.Length; i++)
            types[i] = i == 0 ? TokenType.Unknown : i <= 2 ? TokenType.Control
                : VocabularyTokenizer.ParseBytePiece(pieces[i]) >= 0 ? TokenType.Byte : TokenType.Normal;
        var vocab = new Vocabulary(path, pieces.ToArray(), scores.ToArray(), types);
        return new SentencePieceTokenizer(vocab, bosId: 1, eosId: 2, addBos: true, addSpacePrefix: true, escapeWhitespace: false, unknownId: 0);
    }
}
