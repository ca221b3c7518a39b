using Runahead.Text;

namespace Runahead.Generation;

/// <summary>
/// Text pieces for generated tokens that continue a prompt: the prompt's tokens go through the same
/// <see cref="TokenTextStream"/> first, so tokenizer rules that depend on position (SentencePiece drops the leading
/// space of the first piece after BOS) and UTF-8 characters split across tokens come out as in a whole-sequence
/// decode. Constant work per token.
/// </summary>
public sealed class TextStreamer
{
    private readonly TokenTextStream _stream;

    public TextStreamer(ITokenizer tokenizer, ReadOnlySpan<int> prefix)
    {
        _stream = new TokenTextStream(tokenizer);
        var text = new System.Text.StringBuilder();
        foreach (var id in prefix) text.Append(_stream.Append(id));
        Prefix = text.ToString();
    }

    /// <summary>The text of the prefix (the prompt), for callers that echo it.</summary>
    public string Prefix { get; }

    /// <summary>Adds a token and returns the text it completes (empty while a character is incomplete).</summary>
    public string Add(int id) => _stream.Append(id);

    /// <summary>Whatever was held back (an incomplete character at the end comes out as U+FFFD).</summary>
    public string Flush() => _stream.Flush();
}
