using System.Text;

namespace Runahead.Text;

/// <summary>
/// What every vocabulary-based tokenizer shares: user-defined tokens split out of the text first (llama.cpp's
/// tokenizer_st_partition with parse_special off: control and unknown tokens stay plain text), BOS, per-token bytes
/// and whole-sequence decoding with the SentencePiece leading-space rule.
/// </summary>
public abstract class VocabularyTokenizer : ITokenizer
{
    private readonly byte[]?[] _tokenBytes;
    private readonly int[] _userDefinedByLength;

    protected VocabularyTokenizer(Vocabulary vocabulary, int bosId, int eosId, bool addBos, bool stripsLeadingSpace)
    {
        Vocabulary = vocabulary;
        BosId = bosId;
        EosId = eosId;
        AddBosByDefault = addBos;
        DecodeStripsLeadingSpace = stripsLeadingSpace;
        _tokenBytes = new byte[vocabulary.Count][];
        var userDefined = new List<int>();
        for (int i = 0; i < vocabulary.Count; i++)
        {
            if (vocabulary.Type(i) == TokenType.UserDefined) userDefined.Add(i);
        }
        // Longest first, so a user-defined token that contains another wins (llama.cpp sorts the same way).
        _userDefinedByLength = userDefined.OrderByDescending(i => vocabulary.Piece(i).Length).ThenBy(i => i).ToArray();
    }

    public Vocabulary Vocabulary { get; }
    public int VocabSize => Vocabulary.Count;
    public int BosId { get; }
    public int EosId { get; }
    public bool AddBosByDefault { get; }

    /// <summary>Whether decoding drops the leading space of the first piece (SentencePiece's dummy prefix).</summary>
    public bool DecodeStripsLeadingSpace { get; }

    public int[] Encode(string text, bool addBos)
    {
        ArgumentNullException.ThrowIfNull(text);
        var output = new List<int>(text.Length / 3 + 4);
        if (addBos)
        {
            if (BosId < 0) throw new RunaheadException("this vocabulary has no BOS token, so one cannot be added");
            output.Add(BosId);
        }
        if (text.Length == 0) return output.ToArray();
        text = CodepointFlags.Sanitize(text);
        bool afterSpecial = true;
        foreach (var (start, length, token) in Partition(text))
        {
            if (token >= 0)
            {
                output.Add(token);
                afterSpecial = true;
            }
            else
            {
                EncodeFragment(text.Substring(start, length), afterSpecial, output);
                afterSpecial = false;
            }
        }
        return output.ToArray();
    }

    /// <summary>Encodes text without user-defined tokens in it.</summary>
    /// <param name="isFirstOrAfterSpecial">True for the start of the text and right after a split-out token (where
    /// SentencePiece adds its space prefix).</param>
    protected abstract void EncodeFragment(string text, bool isFirstOrAfterSpecial, List<int> output);

    /// <summary>Pieces of the text: (start, length, -1) for plain text, (start, length, id) for a user-defined token.</summary>
    private List<(int Start, int Length, int Token)> Partition(string text)
    {
        var parts = new List<(int Start, int Length, int Token)> { (0, text.Length, -1) };
        foreach (int id in _userDefinedByLength)
        {
            string piece = Vocabulary.Piece(id);
            var next = new List<(int, int, int)>(parts.Count);
            foreach (var part in parts)
            {
                if (part.Token >= 0) { next.Add(part); continue; }
                int at = part.Start, stop = part.Start + part.Length;
                while (at < stop)
                {
                    int found = text.IndexOf(piece, at, stop - at, StringComparison.Ordinal);
                    if (found < 0) break;
                    if (found > at) next.Add((at, found - at, -1));
                    next.Add((found, piece.Length, id));
                    at = found + piece.Length;
                }
                if (at < stop) next.Add((at, stop - at, -1));
            }
            parts = next;
        }
        return parts;
    }

    public byte[] TokenBytes(int id)
    {
        if ((uint)id >= (uint)_tokenBytes.Length)
            throw new ArgumentOutOfRangeException(nameof(id), $"token id {id} is outside the vocabulary (0..{_tokenBytes.Length - 1})");
        return _tokenBytes[id] ??= ComputeTokenBytes(id);
    }

    /// <summary>The bytes token <paramref name="id"/> decodes to (before the leading-space rule).</summary>
    protected abstract byte[] ComputeTokenBytes(int id);

    public string Decode(ReadOnlySpan<int> ids)
    {
        var bytes = new List<byte>(ids.Length * 4);
        bool stripPending = DecodeStripsLeadingSpace;
        foreach (int id in ids)
        {
            var b = TokenBytes(id);
            if (b.Length == 0) continue;
            int skip = stripPending && b[0] == (byte)' ' ? 1 : 0;
            stripPending = false;
            for (int i = skip; i < b.Length; i++) bytes.Add(b[i]);
        }
        return Encoding.UTF8.GetString(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bytes));
    }

    /// <summary>Parses "&lt;0xNN&gt;" (a byte-fallback piece); -1 when the text is not one.</summary>
    internal static int ParseBytePiece(string piece)
    {
        if (piece.Length != 6 || !piece.StartsWith("<0x", StringComparison.Ordinal) || piece[5] != '>') return -1;
        return int.TryParse(piece.AsSpan(3, 2), System.Globalization.NumberStyles.AllowHexSpecifier, null, out int v) ? v : -1;
    }

    internal static string BytePiece(int b) => $"<0x{b:X2}>";
}
