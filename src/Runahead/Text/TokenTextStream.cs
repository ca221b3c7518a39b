using System.Text;

namespace Runahead.Text;

/// <summary>
/// Turns generated token ids into text as they arrive: each call returns the text that became complete, holding back
/// the bytes of a UTF-8 character split across tokens (byte-fallback and byte-level tokens split characters), and
/// dropping the SentencePiece leading space of the first piece (llama2.c run.c: the piece after BOS).
/// </summary>
public sealed class TokenTextStream
{
    private readonly ITokenizer _tokenizer;
    private readonly Decoder _decoder = new UTF8Encoding(false, false).GetDecoder();
    private readonly StringBuilder _all = new();
    private char[] _chars = new char[64];
    private bool _stripPending;

    public TokenTextStream(ITokenizer tokenizer)
    {
        _tokenizer = tokenizer ?? throw new ArgumentNullException(nameof(tokenizer));
        _stripPending = tokenizer.DecodeStripsLeadingSpace;
    }

    /// <summary>All text returned so far.</summary>
    public string Text => _all.ToString();

    /// <summary>Adds one token; returns the newly completed text (possibly empty).</summary>
    public string Append(int tokenId)
    {
        ReadOnlySpan<byte> bytes = _tokenizer.TokenBytes(tokenId);
        if (bytes.Length == 0) return "";
        if (_stripPending && bytes[0] == (byte)' ') bytes = bytes[1..];
        _stripPending = false;
        return Convert(bytes, flush: false);
    }

    /// <summary>Ends the stream: held-back bytes of an unfinished character come out as U+FFFD.</summary>
    public string Flush() => Convert([], flush: true);

    private string Convert(ReadOnlySpan<byte> bytes, bool flush)
    {
        int needed = _decoder.GetCharCount(bytes, flush);
        if (needed > _chars.Length) _chars = new char[Math.Max(needed, _chars.Length * 2)];
        int count = _decoder.GetChars(bytes, _chars, flush);
        if (count == 0) return "";
        var text = new string(_chars, 0, count);
        _all.Append(text);
        return text;
    }
}
