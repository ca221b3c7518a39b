using System.Runtime.CompilerServices;
using System.Text.RegularExpressions;

namespace Runahead.Text;

/// <summary>
/// Splits text into words before BPE merging, reproducing llama.cpp's unicode_regex_split: a list of stages, each
/// splitting every piece produced by the previous one into its matches and the gaps between them. The stages are
/// hand-written scanners with exactly llama.cpp's semantics (its custom GPT-2 / Llama-3 splitters and the
/// std::regex patterns it falls back to, including their "collapsed" Unicode classes), so no regex engine
/// difference can change a split. Unknown Hugging Face patterns fall back to .NET <see cref="Regex"/>.
/// </summary>
public sealed class PreTokenizer
{
    /// <summary>One stage: split cpts[start, end) into consecutive pieces, appending their lengths.</summary>
    internal delegate void Stage(ReadOnlySpan<int> cpts, int start, int end, List<int> lengths);

    private readonly Stage[] _stages;

    public PreTokenizerKind Kind { get; }

    private PreTokenizer(PreTokenizerKind kind, params Stage[] stages)
    {
        Kind = kind;
        _stages = stages;
    }

    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
    public const string Llama3Pattern =
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    public const string Qwen2Pattern =
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    public static PreTokenizer Create(PreTokenizerKind kind) => kind switch
    {
        PreTokenizerKind.None => new(kind),
        PreTokenizerKind.Gpt2 => new(kind, Gpt2Words),
        PreTokenizerKind.Llama3 => new(kind, Llama3Words),
        PreTokenizerKind.Qwen2 => new(kind, Qwen2Words),
        // "[\p{P}\$\+<=>\^~\|`]+", the GPT-2 rule, "[0-9][0-9][0-9]"
        PreTokenizerKind.Falcon => new(kind, (c, s, e, l) => Runs(c, s, e, l, IsFalconPunctuation), Gpt2Words, AsciiDigitTriples),
        // "\p{N}", the GPT-2 rule
        PreTokenizerKind.Starcoder => new(kind, (c, s, e, l) => Singles(c, s, e, l, CodepointFlags.IsNumber), Gpt2Words),
        // "[\r\n]", "\s?\p{L}+", "\s?\p{P}+", "[一-龥ࠀ-一가-퟿]+", "\p{N}"
        PreTokenizerKind.DeepseekCoder => new(kind,
            (c, s, e, l) => Singles(c, s, e, l, static cp => cp is '\r' or '\n'),
            (c, s, e, l) => OptionalSpaceThenRun(c, s, e, l, CodepointFlags.IsLetter),
            (c, s, e, l) => OptionalSpaceThenRun(c, s, e, l, CodepointFlags.IsPunctuation),
            (c, s, e, l) => Runs(c, s, e, l, IsDeepseekCjk),
            (c, s, e, l) => Singles(c, s, e, l, CodepointFlags.IsNumber)),
        // "[\p{P}\$\+<=>\^~\|]+", the GPT-2 rule, "\p{N}+", "[0-9][0-9][0-9]"
        PreTokenizerKind.Default => new(kind,
            (c, s, e, l) => Runs(c, s, e, l, IsDefaultPunctuation),
            Gpt2Words,
            (c, s, e, l) => Runs(c, s, e, l, CodepointFlags.IsNumber),
            AsciiDigitTriples),
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    /// <summary>
    /// A pre-tokenizer for a Hugging Face Split/ByteLevel regex: the known GPT-2, Llama-3 and Qwen2 patterns get the
    /// exact scanners, anything else .NET's regex engine (matches and the gaps between them become words).
    /// </summary>
    public static PreTokenizer FromPattern(string pattern)
    {
        if (pattern == Gpt2Pattern) return Create(PreTokenizerKind.Gpt2);
        if (pattern == Llama3Pattern) return Create(PreTokenizerKind.Llama3);
        if (pattern == Qwen2Pattern) return Create(PreTokenizerKind.Qwen2);
        return FromRegex(pattern);
    }

    /// <summary>A pre-tokenizer that always runs <paramref name="pattern"/> on .NET's regex engine.</summary>
    public static PreTokenizer FromRegex(string pattern)
    {
        Regex regex;
        try
        {
            regex = new Regex(pattern, RegexOptions.Compiled | RegexOptions.CultureInvariant, TimeSpan.FromSeconds(5));
        }
        catch (ArgumentException e)
        {
            throw new RunaheadException($"pre-tokenizer pattern '{pattern}' is not a valid regular expression: {e.Message}");
        }
        return new PreTokenizer(PreTokenizerKind.None, (c, s, e, l) => RegexSplit(regex, c, s, e, l));
    }

    /// <summary>Chains two pre-tokenizers (a Hugging Face Sequence).</summary>
    internal static PreTokenizer Sequence(IReadOnlyList<PreTokenizer> parts)
    {
        var stages = new List<Stage>();
        foreach (var p in parts) stages.AddRange(p._stages);
        return new PreTokenizer(parts.Count == 1 ? parts[0].Kind : PreTokenizerKind.None, stages.ToArray());
    }

    /// <summary>Hugging Face's Digits pre-tokenizer with individual_digits: every digit is its own word.</summary>
    internal static PreTokenizer IndividualDigits() =>
        new(PreTokenizerKind.None, (c, s, e, l) => Singles(c, s, e, l, CodepointFlags.IsNumber));

    public bool SplitsAnything => _stages.Length > 0;

    /// <summary>Splits <paramref name="text"/> into words (concatenated they give the text back).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public List<string> Split(string text)
    {
        var words = new List<string>();
        if (text.Length == 0) return words;
        if (_stages.Length == 0)
        {
            words.Add(text);
            return words;
        }
        // Code points, and where each starts in the string (so words are substrings, not rebuilt).
        var cpts = new int[text.Length];
        var charStart = new int[text.Length + 1];
        int n = 0;
        for (int i = 0; i < text.Length; n++)
        {
            charStart[n] = i;
            char c = text[i];
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                cpts[n] = char.ConvertToUtf32(c, text[i + 1]);
                i += 2;
            }
            else
            {
                cpts[n] = c; // the caller already replaced unpaired surrogates
                i++;
            }
        }
        charStart[n] = text.Length;
        var lengths = new List<int> { n };
        var next = new List<int>();
        var span = cpts.AsSpan(0, n);
        foreach (var stage in _stages)
        {
            next.Clear();
            int start = 0;
            foreach (int len in lengths)
            {
                stage(span, start, start + len, next);
                start += len;
            }
            (lengths, next) = (next, lengths);
        }
        int at = 0;
        foreach (int len in lengths)
        {
            words.Add(text.Substring(charStart[at], charStart[at + len] - charStart[at]));
            at += len;
        }
        return words;
    }

    // ---- scanners ----

    /// <summary>Reads code points and classes of one piece; positions outside it read as -1 / None.</summary>
    private ref struct Piece
    {
        private readonly ReadOnlySpan<int> _cpts;
        private readonly int _start;
        private readonly int _end;
        private readonly List<int> _lengths;
        private int _prevEnd;

        public Piece(ReadOnlySpan<int> cpts, int start, int end, List<int> lengths)
        {
            _cpts = cpts;
            _start = start;
            _end = end;
            _lengths = lengths;
            _prevEnd = start;
        }

        public readonly int End => _end;
        public readonly int Cpt(int pos) => pos >= _start && pos < _end ? _cpts[pos] : -1;
        public readonly CodepointClass Flags(int pos) => pos >= _start && pos < _end ? CodepointFlags.Of(_cpts[pos]) : CodepointClass.None;

        /// <summary>Ends the current word at <paramref name="end"/> (empty words are dropped).</summary>
        public void Emit(int end)
        {
            if (end > _prevEnd) _lengths.Add(end - _prevEnd);
            _prevEnd = end;
        }
    }

    private const CodepointClass Wln = CodepointClass.Whitespace | CodepointClass.Letter | CodepointClass.Number;

    private static bool IsContractionAt(ref Piece p, int pos, bool ignoreCase, out int length)
    {
        length = 0;
        if (p.Cpt(pos) != '\'' || pos + 1 >= p.End) return false;
        int a = Lower(p.Cpt(pos + 1), ignoreCase);
        if (a is 's' or 't' or 'm' or 'd') { length = 2; return true; }
        if (pos + 2 < p.End)
        {
            int b = Lower(p.Cpt(pos + 2), ignoreCase);
            if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) { length = 3; return true; }
        }
        return false;
    }

    private static int Lower(int cp, bool ignoreCase) => ignoreCase && cp is >= 'A' and <= 'Z' ? cp + 32 : cp;

    /// <summary>'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Gpt2Words(ReadOnlySpan<int> cpts, int start, int end, List<int> lengths)
    {
        var p = new Piece(cpts, start, end, lengths);
        for (int pos = start; pos < end;)
        {
            int cpt = p.Cpt(pos);
            var flags = p.Flags(pos);
            if (IsContractionAt(ref p, pos, ignoreCase: false, out int clen))
            {
                pos += clen;
                p.Emit(pos);
                continue;
            }
            var flags2 = cpt == ' ' ? p.Flags(pos + 1) : flags;
            if ((flags2 & CodepointClass.Letter) != 0)
            {
                if (cpt == ' ') pos++;
                while ((p.Flags(pos) & CodepointClass.Letter) != 0) pos++;
                p.Emit(pos);
                continue;
            }
            if ((flags2 & CodepointClass.Number) != 0)
            {
                if (cpt == ' ') pos++;
                while ((p.Flags(pos) & CodepointClass.Number) != 0) pos++;
                p.Emit(pos);
                continue;
            }
            if ((flags2 & Wln) == 0 && flags2 != CodepointClass.None)
            {
                if (cpt == ' ') pos++;
                while (true)
                {
                    var f = p.Flags(pos);
                    if ((f & Wln) != 0 || f == CodepointClass.None) break;
                    pos++;
                }
                p.Emit(pos);
                continue;
            }
            if (WhitespaceRun(ref p, ref pos, newlineRule: false)) continue;
            p.Emit(++pos);
        }
    }

    /// <summary>
    /// \s*[\r\n]+ (when <paramref name="newlineRule"/>), then \s+(?!\S), then \s+: a whitespace run followed by more
    /// text leaves its last character to the next word.
    /// </summary>
    private static bool WhitespaceRun(ref Piece p, ref int pos, bool newlineRule)
    {
        int count = 0;
        int lastNewlineEnd = 0;
        while ((p.Flags(pos + count) & CodepointClass.Whitespace) != 0)
        {
            int c = p.Cpt(pos + count);
            if (c is '\r' or '\n') lastNewlineEnd = pos + count + 1;
            count++;
        }
        if (newlineRule && lastNewlineEnd > 0)
        {
            pos = lastNewlineEnd;
            p.Emit(pos);
            return true;
        }
        if (count > 1 && p.Cpt(pos + count) != -1)
        {
            pos += count - 1;
            p.Emit(pos);
            return true;
        }
        if (count > 0)
        {
            pos += count;
            p.Emit(pos);
            return true;
        }
        return false;
    }

    private static void Llama3Words(ReadOnlySpan<int> cpts, int start, int end, List<int> lengths) =>
        Llama3Like(cpts, start, end, lengths, maxDigits: 3);

    private static void Qwen2Words(ReadOnlySpan<int> cpts, int start, int end, List<int> lengths) =>
        Llama3Like(cpts, start, end, lengths, maxDigits: 1);

    /// <summary>
    /// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,maxDigits}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Llama3Like(ReadOnlySpan<int> cpts, int start, int end, List<int> lengths, int maxDigits)
    {
        var p = new Piece(cpts, start, end, lengths);
        for (int pos = start; pos < end;)
        {
            int cpt = p.Cpt(pos);
            var flags = p.Flags(pos);
            if (IsContractionAt(ref p, pos, ignoreCase: true, out int clen))
            {
                pos += clen;
                p.Emit(pos);
                continue;
            }
            if (!(cpt is '\r' or '\n' || (flags & CodepointClass.Number) != 0)
                && ((flags & CodepointClass.Letter) != 0 || (p.Flags(pos + 1) & CodepointClass.Letter) != 0))
            {
                pos++;
                while ((p.Flags(pos) & CodepointClass.Letter) != 0) pos++;
                p.Emit(pos);
                continue;
            }
            if ((flags & CodepointClass.Number) != 0)
            {
                int groupStart = pos;
                while ((p.Flags(pos) & CodepointClass.Number) != 0)
                {
                    if (++pos - groupStart >= maxDigits)
                    {
                        p.Emit(pos);
                        groupStart = pos;
                    }
                }
                p.Emit(pos);
                continue;
            }
            var flags2 = cpt == ' ' ? p.Flags(pos + 1) : flags;
            // llama.cpp tests the current character's flags here (not flags2), so " " at the end of a piece is taken
            // by this branch; it gives the same word as the whitespace rules would.
            if ((flags2 & Wln) == 0 && flags != CodepointClass.None)
            {
                if (cpt == ' ') pos++;
                while (true)
                {
                    var f = p.Flags(pos);
                    if ((f & Wln) != 0 || f == CodepointClass.None) break;
                    pos++;
                }
                while (p.Cpt(pos) is '\r' or '\n') pos++;
                p.Emit(pos);
                continue;
            }
            if (WhitespaceRun(ref p, ref pos, newlineRule: true)) continue;
            p.Emit(++pos);
        }
    }

    /// <summary>"[class]+": every maximal run of matching code points is a word; so is every gap.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Runs(ReadOnlySpan<int> cpts, int start, int end, List<int> lengths, Func<int, bool> match)
    {
        var p = new Piece(cpts, start, end, lengths);
        int pos = start;
        while (pos < end)
        {
            if (!match(cpts[pos])) { pos++; continue; }
            p.Emit(pos);
            while (pos < end && match(cpts[pos])) pos++;
            p.Emit(pos);
        }
        p.Emit(end);
    }

    /// <summary>"[class]": every matching code point is a word of its own.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Singles(ReadOnlySpan<int> cpts, int start, int end, List<int> lengths, Func<int, bool> match)
    {
        var p = new Piece(cpts, start, end, lengths);
        for (int pos = start; pos < end; pos++)
        {
            if (!match(cpts[pos])) continue;
            p.Emit(pos);
            p.Emit(pos + 1);
        }
        p.Emit(end);
    }

    /// <summary>"\s?X+" with leftmost-first matching.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void OptionalSpaceThenRun(ReadOnlySpan<int> cpts, int start, int end, List<int> lengths, Func<int, bool> match)
    {
        var p = new Piece(cpts, start, end, lengths);
        int pos = start;
        while (pos < end)
        {
            int runStart;
            if (CodepointFlags.IsWhitespace(cpts[pos]) && pos + 1 < end && match(cpts[pos + 1])) runStart = pos + 1;
            else if (match(cpts[pos])) runStart = pos;
            else { pos++; continue; }
            p.Emit(pos);
            pos = runStart;
            while (pos < end && match(cpts[pos])) pos++;
            p.Emit(pos);
        }
        p.Emit(end);
    }

    /// <summary>"[0-9][0-9][0-9]": non-overlapping triples of ASCII digits, scanning left to right.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AsciiDigitTriples(ReadOnlySpan<int> cpts, int start, int end, List<int> lengths)
    {
        var p = new Piece(cpts, start, end, lengths);
        int pos = start;
        while (pos + 3 <= end)
        {
            if (cpts[pos] is >= '0' and <= '9' && cpts[pos + 1] is >= '0' and <= '9' && cpts[pos + 2] is >= '0' and <= '9')
            {
                p.Emit(pos);
                pos += 3;
                p.Emit(pos);
            }
            else pos++;
        }
        p.Emit(end);
    }

    private static void RegexSplit(Regex regex, ReadOnlySpan<int> cpts, int start, int end, List<int> lengths)
    {
        // Regex works on UTF-16; map match boundaries back to code point counts.
        var sb = new System.Text.StringBuilder(end - start);
        var charToCpt = new List<int>(end - start + 1);
        for (int i = start; i < end; i++)
        {
            string s = char.ConvertFromUtf32(cpts[i]);
            foreach (char _ in s) charToCpt.Add(i - start);
            sb.Append(s);
        }
        charToCpt.Add(end - start);
        var p = new Piece(cpts, start, end, lengths);
        try
        {
            foreach (Match m in regex.Matches(sb.ToString()))
            {
                if (m.Length == 0) continue;
                p.Emit(start + charToCpt[m.Index]);
                p.Emit(start + charToCpt[m.Index + m.Length]);
            }
        }
        catch (RegexMatchTimeoutException)
        {
            throw new RunaheadException("pre-tokenizer pattern took too long on the input text");
        }
        p.Emit(end);
    }

    // ---- character classes of the std::regex stages (llama.cpp's "collapsed" classes) ----

    /// <summary>[\p{P}\$\+&lt;=&gt;\^~\|`]: Unicode punctuation plus the ASCII symbols named.</summary>
    private static bool IsFalconPunctuation(int cp) =>
        cp < 128 ? IsAsciiPunctOrSymbol(cp) : CodepointFlags.IsPunctuation(cp) && !CodepointFlags.IsWhitespace(cp);

    /// <summary>[\p{P}\$\+&lt;=&gt;\^~\|]: like Falcon's class without the backquote.</summary>
    private static bool IsDefaultPunctuation(int cp) => cp != '`' && IsFalconPunctuation(cp);

    private static bool IsAsciiPunctOrSymbol(int cp) =>
        cp is (>= '!' and <= '/') or (>= ':' and <= '@') or (>= '[' and <= '`') or (>= '{' and <= '~');

    /// <summary>[一-龥ࠀ-一가-퟿] on text where non-ASCII whitespace was replaced (so U+3000 never matches).</summary>
    private static bool IsDeepseekCjk(int cp) =>
        (cp is (>= 0x4E00 and <= 0x9FA5) or (>= 0x0800 and <= 0x4E00) or (>= 0xAC00 and <= 0xD7FF))
        && !CodepointFlags.IsWhitespace(cp);
}
