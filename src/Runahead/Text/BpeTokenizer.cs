using System.Runtime.CompilerServices;
using System.Text;

namespace Runahead.Text;

/// <summary>How a BPE vocabulary spells text before merging.</summary>
public sealed record BpeOptions
{
    /// <summary>Word splitting before merging (None: the whole text is one word).</summary>
    public PreTokenizerKind PreTokenizer { get; init; } = PreTokenizerKind.Gpt2;

    /// <summary>A pre-tokenizer built from a Hugging Face pattern; overrides <see cref="PreTokenizer"/>.</summary>
    public PreTokenizer? CustomPreTokenizer { get; init; }

    /// <summary>GPT-2 byte-level alphabet: words are spelled as their UTF-8 bytes mapped to printable characters.</summary>
    public bool ByteLevel { get; init; } = true;

    /// <summary>
    /// Hugging Face byte_fallback: a character that is not a token is spelled as "&lt;0xNN&gt;" tokens before merging.
    /// </summary>
    public bool ByteFallback { get; init; }

    /// <summary>A word that is already a token is not merged (Llama-3).</summary>
    public bool IgnoreMerges { get; init; }

    /// <summary>SentencePiece-style normalization (phi-3 tokenizer.json): spaces become "▁".</summary>
    public bool SpacesAsMarker { get; init; }

    /// <summary>Prepend "▁" to non-empty text (Hugging Face Prepend normalizer).</summary>
    public bool PrependMarker { get; init; }
}

/// <summary>
/// BPE with ranked merges, as llama.cpp's llm_tokenizer_bpe and Hugging Face's BPE model do: each word is split
/// into characters, then the adjacent pair with the lowest merge rank (ties: leftmost) is merged until no ranked pair
/// is left. Pieces are interned to ids once, so the merge loop compares integers and a word costs O(n log n).
/// </summary>
public sealed class BpeTokenizer : VocabularyTokenizer
{
    private const char SpaceMarker = '\u2581';

    private readonly BpeOptions _options;
    private readonly PreTokenizer _preTokenizer;
    // Piece ids below Vocabulary.Count are tokens; above are strings that only occur inside merges.
    private readonly List<string> _extraPieces = new();
    private readonly Dictionary<string, int> _extraIds = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _extraLookup;
    private readonly Dictionary<long, (int Rank, int Result)> _merges;
    private readonly int[] _byteFallbackTokens = new int[256];
    private readonly int _unknownId;

    /// <param name="merges">Merge rules in rank order, each "left right" (split at the first space after the
    /// first character, like llama.cpp) or as a pair.</param>
    public BpeTokenizer(Vocabulary vocabulary, IReadOnlyList<(string Left, string Right)> merges, BpeOptions options,
        int bosId, int eosId, bool addBos, int unknownId = -1)
        : base(vocabulary, bosId, eosId, addBos, stripsLeadingSpace: options.PrependMarker)
    {
        _options = options;
        _preTokenizer = options.CustomPreTokenizer ?? PreTokenizer.Create(options.PreTokenizer);
        _unknownId = unknownId;
        _extraLookup = _extraIds.GetAlternateLookup<ReadOnlySpan<char>>();
        _merges = new Dictionary<long, (int, int)>(merges.Count);
        for (int rank = 0; rank < merges.Count; rank++)
        {
            var (left, right) = merges[rank];
            if (left.Length == 0 || right.Length == 0) continue;
            int a = Intern(left), b = Intern(right), result = Intern(left + right);
            _merges.TryAdd(Key(a, b), (rank, result)); // the first (best) rank of a duplicate rule wins
        }
        for (int b = 0; b < 256; b++) _byteFallbackTokens[b] = vocabulary.IdOf(BytePiece(b));
    }

    /// <summary>Splits a merges line "a b" at the first space after position 0 (llama.cpp's rule).</summary>
    public static (string Left, string Right) SplitMergeLine(string line)
    {
        int space = line.Length > 1 ? line.IndexOf(' ', 1) : -1;
        return space < 0 ? ("", "") : (line[..space], line[(space + 1)..]);
    }

    private static long Key(int a, int b) => ((long)a << 32) | (uint)b;

    private int Intern(string piece)
    {
        if (Vocabulary.TryGetId(piece, out int id)) return id;
        if (_extraIds.TryGetValue(piece, out id)) return id;
        id = Vocabulary.Count + _extraPieces.Count;
        _extraPieces.Add(piece);
        _extraIds.Add(piece, id);
        return id;
    }

    private int PieceIdOf(ReadOnlySpan<char> text)
    {
        if (Vocabulary.TryGetId(text, out int id)) return id;
        return _extraLookup.TryGetValue(text, out id) ? id : -1;
    }

    private readonly record struct Bigram(int Left, int Right, int LeftPiece, int RightPiece, int Result);

    private sealed class BigramOrder : IComparer<(int Rank, int Left)>
    {
        public static readonly BigramOrder Instance = new();

        public int Compare((int Rank, int Left) a, (int Rank, int Left) b) =>
            a.Rank != b.Rank ? a.Rank.CompareTo(b.Rank) : a.Left.CompareTo(b.Left);
    }

    protected override void EncodeFragment(string text, bool isFirstOrAfterSpecial, List<int> output)
    {
        if (_options.SpacesAsMarker) text = text.Replace(' ', SpaceMarker);
        if (_options.PrependMarker && text.Length > 0) text = SpaceMarker + text;
        var words = _preTokenizer.Split(text);
        var state = new WordState();
        foreach (string raw in words)
        {
            string word = _options.ByteLevel ? ByteLevelAlphabet.EncodeUtf8(raw) : raw;
            if (_options.IgnoreMerges && Vocabulary.TryGetId(word, out int whole))
            {
                output.Add(whole);
                continue;
            }
            EncodeWord(word, state, output);
        }
    }

    /// <summary>Scratch arrays reused across the words of one call.</summary>
    private sealed class WordState
    {
        public int[] Piece = new int[64], Start = new int[64], Length = new int[64], Prev = new int[64], Next = new int[64];
        public readonly PriorityQueue<Bigram, (int, int)> Queue = new(BigramOrder.Instance);

        public void Ensure(int n)
        {
            if (Piece.Length >= n) return;
            int size = Math.Max(n, Piece.Length * 2);
            Piece = new int[size]; Start = new int[size]; Length = new int[size]; Prev = new int[size]; Next = new int[size];
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void EncodeWord(string word, WordState s, List<int> output)
    {
        s.Ensure(word.Length * 4 + 1);
        int n = 0;
        Span<byte> utf8 = stackalloc byte[8];
        for (int i = 0; i < word.Length;)
        {
            int len = char.IsHighSurrogate(word[i]) && i + 1 < word.Length && char.IsLowSurrogate(word[i + 1]) ? 2 : 1;
            int piece = PieceIdOf(word.AsSpan(i, len));
            if (piece < 0 && _options.ByteFallback)
            {
                int count = Encoding.UTF8.GetBytes(word.AsSpan(i, len), utf8);
                bool all = true;
                for (int b = 0; b < count; b++) all &= _byteFallbackTokens[utf8[b]] >= 0;
                if (all)
                {
                    for (int b = 0; b < count; b++) AddSymbol(s, ref n, _byteFallbackTokens[utf8[b]], i, b == count - 1 ? len : 0);
                }
                else AddSymbol(s, ref n, _unknownId, i, len);
            }
            else AddSymbol(s, ref n, piece, i, len);
            i += len;
        }
        if (n == 0) return;
        for (int i = 0; i < n; i++)
        {
            s.Prev[i] = i - 1;
            s.Next[i] = i + 1 < n ? i + 1 : -1;
        }

        var queue = s.Queue;
        queue.Clear();
        for (int i = 1; i < n; i++) TryAdd(s, i - 1, i);
        while (queue.TryDequeue(out var bigram, out _))
        {
            int l = bigram.Left, r = bigram.Right;
            // Stale: a side was merged away or has changed since this pair was queued.
            if (s.Piece[l] != bigram.LeftPiece || s.Piece[r] != bigram.RightPiece || s.Prev[r] != l) continue;
            s.Piece[l] = bigram.Result;
            s.Length[l] += s.Length[r];
            s.Piece[r] = int.MinValue;
            s.Next[l] = s.Next[r];
            if (s.Next[r] >= 0) s.Prev[s.Next[r]] = l;
            s.Prev[r] = -2;
            TryAdd(s, s.Prev[l], l);
            TryAdd(s, l, s.Next[l]);
        }

        for (int i = 0; i != -1; i = s.Next[i])
        {
            int piece = s.Piece[i];
            if (piece >= 0 && piece < Vocabulary.Count)
            {
                output.Add(piece);
                continue;
            }
            EmitUnknownSymbol(word, s.Start[i], s.Length[i], piece, output);
        }
    }

    private static void AddSymbol(WordState s, ref int n, int piece, int start, int length)
    {
        s.Piece[n] = piece;
        s.Start[n] = start;
        s.Length[n] = length;
        n++;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void TryAdd(WordState s, int left, int right)
    {
        if (left < 0 || right < 0) return;
        int a = s.Piece[left], b = s.Piece[right];
        if (a < 0 || b < 0) return;
        if (!_merges.TryGetValue(Key(a, b), out var merge)) return;
        s.Queue.Enqueue(new Bigram(left, right, a, b, merge.Result), (merge.Rank, left));
    }

    /// <summary>
    /// A merged string that is no token, or a character outside the vocabulary. llama.cpp looks each byte of its
    /// UTF-8 up as a one-byte token (so only ASCII survives); without the byte-level alphabet it uses "&lt;0xNN&gt;".
    /// </summary>
    private void EmitUnknownSymbol(string word, int start, int length, int piece, List<int> output)
    {
        if (piece == _unknownId && piece >= 0) { output.Add(piece); return; }
        var text = word.AsSpan(start, length);
        var bytes = Encoding.UTF8.GetBytes(text.ToArray());
        foreach (byte b in bytes)
        {
            int id = _options.ByteLevel
                ? (b < 0x80 ? Vocabulary.IdOf(((char)b).ToString()) : -1)
                : _byteFallbackTokens[b];
            if (id >= 0) output.Add(id);
        }
    }

    protected override byte[] ComputeTokenBytes(int id)
    {
        string piece = Vocabulary.Piece(id);
        switch (Vocabulary.Type(id))
        {
            case TokenType.Control:
            case TokenType.Unknown:
            case TokenType.Unused:
                return [];
            case TokenType.UserDefined:
                return Encoding.UTF8.GetBytes(piece);
        }
        int fallback = ParseBytePiece(piece);
        if (fallback >= 0 && (_options.ByteFallback || Vocabulary.Type(id) == TokenType.Byte)) return [(byte)fallback];
        if (!_options.ByteLevel) return Encoding.UTF8.GetBytes(_options.SpacesAsMarker ? piece.Replace(SpaceMarker, ' ') : piece);
        var bytes = new List<byte>(piece.Length);
        Span<byte> utf8 = stackalloc byte[4];
        foreach (char c in piece)
        {
            int b = ByteLevelAlphabet.Decode(c);
            if (b >= 0) bytes.Add((byte)b);
            else
            {
                // Not part of the alphabet (malformed vocabulary): keep the character itself.
                int count = Encoding.UTF8.GetBytes([c], utf8);
                for (int k = 0; k < count; k++) bytes.Add(utf8[k]);
            }
        }
        return bytes.ToArray();
    }
}
