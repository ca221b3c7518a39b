using System.Runtime.CompilerServices;
using System.Text;

namespace Runahead.Text;

/// <summary>
/// SentencePiece-style BPE driven by piece scores, as llama.cpp's llm_tokenizer_spm and llama2.c's run.c encode:
/// the text (with a leading space, spaces written as "▁" where the vocabulary does) is split into code points, then
/// the adjacent pair whose concatenation is the best-scoring token is merged (ties: leftmost) until no pair forms a
/// token; pieces that are not tokens become byte tokens "&lt;0xNN&gt;".
/// </summary>
public sealed class SentencePieceTokenizer : VocabularyTokenizer
{
    private const char SpaceMarker = '\u2581';

    private readonly bool _addSpacePrefix;
    private readonly bool _escapeWhitespace;
    private readonly int[] _byteTokens = new int[256];
    private readonly int _unknownId;

    /// <param name="escapeWhitespace">True when the pieces write spaces as "▁" (GGUF, tokenizer.json); false for
    /// llama2.c's tokenizer.bin, whose pieces hold real spaces.</param>
    public SentencePieceTokenizer(Vocabulary vocabulary, int bosId, int eosId, bool addBos, bool addSpacePrefix, bool escapeWhitespace, int unknownId = -1)
        : base(vocabulary, bosId, eosId, addBos, stripsLeadingSpace: addSpacePrefix)
    {
        _addSpacePrefix = addSpacePrefix;
        _escapeWhitespace = escapeWhitespace;
        _unknownId = unknownId;
        for (int b = 0; b < 256; b++)
        {
            int id = vocabulary.IdOf(BytePiece(b));
            // Like llama.cpp's byte_to_token: fall back to the byte as a one-character piece.
            if (id < 0 && b < 128) id = vocabulary.IdOf(((char)b).ToString());
            _byteTokens[b] = id;
        }
    }

    /// <summary>A bigram candidate: merging symbols Left and Right (Size chars together) gives a token.</summary>
    private readonly record struct Bigram(int Left, int Right, int Size);

    private sealed class BigramOrder : IComparer<(float Score, int Left)>
    {
        public static readonly BigramOrder Instance = new();

        // Best score first; equal scores: leftmost first.
        public int Compare((float Score, int Left) a, (float Score, int Left) b)
        {
            if (a.Score > b.Score) return -1;
            if (a.Score < b.Score) return 1;
            return a.Left.CompareTo(b.Left);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    protected override void EncodeFragment(string text, bool isFirstOrAfterSpecial, List<int> output)
    {
        if (_addSpacePrefix && isFirstOrAfterSpecial) text = " " + text;
        if (_escapeWhitespace) text = text.Replace(' ', SpaceMarker);
        if (text.Length == 0) return;

        int n = 0;
        var start = new int[text.Length];
        var length = new int[text.Length];
        for (int i = 0; i < text.Length; n++)
        {
            int len = char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]) ? 2 : 1;
            start[n] = i;
            length[n] = len;
            i += len;
        }
        var prev = new int[n];
        var next = new int[n];
        for (int i = 0; i < n; i++)
        {
            prev[i] = i - 1;
            next[i] = i + 1 < n ? i + 1 : -1;
        }

        var queue = new PriorityQueue<Bigram, (float, int)>(n, BigramOrder.Instance);
        void TryAdd(int left, int right)
        {
            if (left < 0 || right < 0) return;
            int size = length[left] + length[right];
            if (!Vocabulary.TryGetId(text.AsSpan(start[left], size), out int id)) return;
            queue.Enqueue(new Bigram(left, right, size), (Vocabulary.Score(id), left));
        }

        for (int i = 1; i < n; i++) TryAdd(i - 1, i);
        while (queue.TryDequeue(out var bigram, out _))
        {
            int l = bigram.Left, r = bigram.Right;
            // Stale: one side was merged away or grew since this pair was queued.
            if (length[l] == 0 || length[r] == 0 || length[l] + length[r] != bigram.Size) continue;
            length[l] += length[r];
            length[r] = 0;
            next[l] = next[r];
            if (next[r] >= 0) prev[next[r]] = l;
            TryAdd(prev[l], l);
            TryAdd(l, next[l]);
        }

        Span<byte> utf8 = stackalloc byte[8];
        for (int i = 0; i != -1; i = next[i])
        {
            var piece = text.AsSpan(start[i], length[i]);
            if (Vocabulary.TryGetId(piece, out int id))
            {
                output.Add(id);
                continue;
            }
            // A symbol that is not a token is always a single code point (merges only ever form tokens).
            int count = Encoding.UTF8.GetBytes(piece, utf8);
            for (int b = 0; b < count; b++)
            {
                int byteId = _byteTokens[utf8[b]];
                if (byteId >= 0) output.Add(byteId);
                else if (_unknownId >= 0) output.Add(_unknownId);
            }
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
            case TokenType.Byte:
                int b = ParseBytePiece(piece);
                return b >= 0 ? [(byte)b] : [];
            case TokenType.UserDefined:
                return Encoding.UTF8.GetBytes(piece);
            default:
                return Encoding.UTF8.GetBytes(_escapeWhitespace ? piece.Replace(SpaceMarker, ' ') : piece);
        }
    }
}
