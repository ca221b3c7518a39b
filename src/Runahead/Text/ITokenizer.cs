namespace Runahead.Text;

/// <summary>Text to token ids and back.</summary>
public interface ITokenizer
{
    int VocabSize { get; }

    /// <summary>Beginning-of-sequence id, or -1 when the vocabulary has none.</summary>
    int BosId { get; }

    /// <summary>End-of-sequence id, or -1 when the vocabulary has none.</summary>
    int EosId { get; }

    /// <summary>Whether the model expects BOS before a prompt (GGUF tokenizer.ggml.add_bos_token, llama2.c: yes).</summary>
    bool AddBosByDefault { get; }

    /// <summary>Encodes text; special-token text in the input is treated as plain text.</summary>
    int[] Encode(string text, bool addBos);

    /// <summary>
    /// The bytes a token stands for when decoding (byte-fallback tokens give their single byte; byte-level BPE tokens
    /// their original bytes; control tokens nothing). Streaming decoders concatenate these and emit whole UTF-8
    /// characters.
    /// </summary>
    byte[] TokenBytes(int id);

    /// <summary>Decodes a whole sequence (SentencePiece removes the leading-space prefix of the first token).</summary>
    string Decode(ReadOnlySpan<int> ids);

    /// <summary>
    /// Whether decoding drops one leading space from the first piece that has bytes (SentencePiece's dummy prefix;
    /// llama2.c: the piece after BOS). Streaming decoders apply the same rule.
    /// </summary>
    bool DecodeStripsLeadingSpace => false;
}
