namespace Runahead.Text;

/// <summary>
/// Token pieces with their scores and kinds, and the reverse map from piece text to id. Lookups take spans so that
/// the merge loops never allocate.
/// </summary>
public sealed class Vocabulary
{
    private readonly string[] _pieces;
    private readonly float[] _scores;
    private readonly TokenType[] _types;
    private readonly Dictionary<string, int> _ids;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _lookup;

    /// <param name="source">File name for error messages.</param>
    /// <param name="pieces">Token texts, indexed by id.</param>
    /// <param name="scores">Merge scores (SentencePiece), or null for all zero.</param>
    /// <param name="types">Token kinds, or null for all normal.</param>
    public Vocabulary(string source, string[] pieces, float[]? scores, TokenType[]? types)
    {
        if (pieces.Length == 0) throw new InvalidModelFileException(source, "the vocabulary is empty");
        if (scores != null && scores.Length < pieces.Length)
            throw new InvalidModelFileException(source, $"{scores.Length} scores for {pieces.Length} tokens");
        if (types != null && types.Length < pieces.Length)
            throw new InvalidModelFileException(source, $"{types.Length} token types for {pieces.Length} tokens");
        _pieces = (string[])pieces.Clone();
        _scores = scores ?? new float[pieces.Length];
        _types = types ?? Enumerable.Repeat(TokenType.Normal, pieces.Length).ToArray();
        _ids = new Dictionary<string, int>(pieces.Length, StringComparer.Ordinal);
        for (int i = 0; i < _pieces.Length; i++)
        {
            if (string.IsNullOrEmpty(_pieces[i])) _pieces[i] = $"[EMPTY_{i}]"; // as llama.cpp does, so the piece stays unique
            if (!_ids.TryAdd(_pieces[i], i))
                throw new InvalidModelFileException(source, $"duplicate token '{Printable(_pieces[i])}' with ids {_ids[_pieces[i]]} and {i}");
        }
        _lookup = _ids.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    public int Count => _pieces.Length;
    public string Piece(int id) => _pieces[id];
    public float Score(int id) => _scores[id];
    public TokenType Type(int id) => _types[id];

    public bool TryGetId(ReadOnlySpan<char> text, out int id) => _lookup.TryGetValue(text, out id);

    public int IdOf(ReadOnlySpan<char> text) => _lookup.TryGetValue(text, out int id) ? id : -1;

    internal static string Printable(string s) => s.Length > 40 ? s[..40] + "…" : s.Replace("\n", "\\n");
}
