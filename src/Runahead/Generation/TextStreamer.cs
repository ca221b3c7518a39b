using Runahead.Text;

namespace Runahead.Generation;

/// <summary>
/// Turns a growing token sequence into text pieces that concatenate to the tokenizer's own decoding of the whole
/// sequence: it decodes everything and hands out what is new, holding back a trailing incomplete UTF-8 character
/// (decoded as U+FFFD) until the next token completes it. Going through <see cref="ITokenizer.Decode"/> keeps
/// tokenizer-specific rules (SentencePiece's leading space after BOS, byte fallback) in one place.
/// </summary>
public sealed class TextStreamer
{
    private readonly ITokenizer _tokenizer;
    private readonly List<int> _ids = new();
    private int _emitted;

    public TextStreamer(ITokenizer tokenizer, ReadOnlySpan<int> prefix)
    {
        _tokenizer = tokenizer;
        foreach (var id in prefix) _ids.Add(id);
        Prefix = Decode();
        _emitted = Prefix.Length;
        while (_emitted > 0 && Prefix[_emitted - 1] == '\uFFFD') _emitted--;
    }

    /// <summary>The text of the prefix (the prompt), for callers that echo it.</summary>
    public string Prefix { get; }

    /// <summary>Adds a token and returns the text it completes.</summary>
    public string Add(int id)
    {
        _ids.Add(id);
        return Take(flush: false);
    }

    /// <summary>Whatever was held back (an incomplete character at the end of the output).</summary>
    public string Flush() => Take(flush: true);

    private string Take(bool flush)
    {
        var text = Decode();
        int end = text.Length;
        if (!flush)
            while (end > _emitted && text[end - 1] == '\uFFFD') end--;
        if (end <= _emitted) return "";
        var piece = text[_emitted..end];
        _emitted = end;
        return piece;
    }

    private string Decode() => _tokenizer.Decode(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_ids));
}
