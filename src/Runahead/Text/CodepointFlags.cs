using System.Globalization;
using System.Text;

namespace Runahead.Text;

/// <summary>
/// Unicode classes of a code point the way llama.cpp's unicode.cpp groups them (one general-category group plus the
/// White_Space property). The pre-tokenizers depend on exactly these groups, so they are kept in one place.
/// </summary>
[Flags]
internal enum CodepointClass : ushort
{
    /// <summary>Position outside the text being split (llama.cpp's OUT_OF_RANGE flags: all zero).</summary>
    None = 0,
    Undefined = 0x0001,
    Number = 0x0002,
    Letter = 0x0004,
    Separator = 0x0008,
    AccentMark = 0x0010,
    Punctuation = 0x0020,
    Symbol = 0x0040,
    Control = 0x0080,
    Whitespace = 0x0100,
}

internal static class CodepointFlags
{
    private static readonly CodepointClass[] Bmp = BuildBmp();

    private static CodepointClass[] BuildBmp()
    {
        var table = new CodepointClass[0x10000];
        for (int c = 0; c < table.Length; c++) table[c] = Compute(c);
        return table;
    }

    public static CodepointClass Of(int codepoint) =>
        (uint)codepoint < 0x10000u ? Bmp[codepoint] : (uint)codepoint <= 0x10FFFFu ? Compute(codepoint) : CodepointClass.Undefined;

    public static bool IsLetter(int cp) => (Of(cp) & CodepointClass.Letter) != 0;
    public static bool IsNumber(int cp) => (Of(cp) & CodepointClass.Number) != 0;
    public static bool IsWhitespace(int cp) => (Of(cp) & CodepointClass.Whitespace) != 0;
    public static bool IsPunctuation(int cp) => (Of(cp) & CodepointClass.Punctuation) != 0;

    private static CodepointClass Compute(int cp)
    {
        // Surrogate code points are not scalars; CharUnicodeInfo wants a string for them.
        var category = cp is >= 0xD800 and <= 0xDFFF
            ? UnicodeCategory.Surrogate
            : CharUnicodeInfo.GetUnicodeCategory(cp);
        var flags = category switch
        {
            UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
                or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter => CodepointClass.Letter,
            UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark
                => CodepointClass.AccentMark,
            UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber
                => CodepointClass.Number,
            UnicodeCategory.ConnectorPunctuation or UnicodeCategory.DashPunctuation or UnicodeCategory.OpenPunctuation
                or UnicodeCategory.ClosePunctuation or UnicodeCategory.InitialQuotePunctuation
                or UnicodeCategory.FinalQuotePunctuation or UnicodeCategory.OtherPunctuation => CodepointClass.Punctuation,
            UnicodeCategory.MathSymbol or UnicodeCategory.CurrencySymbol or UnicodeCategory.ModifierSymbol
                or UnicodeCategory.OtherSymbol => CodepointClass.Symbol,
            UnicodeCategory.SpaceSeparator or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator
                => CodepointClass.Separator,
            UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.Surrogate or UnicodeCategory.PrivateUse
                => CodepointClass.Control,
            _ => CodepointClass.Undefined,
        };
        if (IsWhiteSpaceProperty(cp)) flags |= CodepointClass.Whitespace;
        return flags;
    }

    /// <summary>The Unicode White_Space property (what llama.cpp's unicode_set_whitespace and regex \s hold).</summary>
    private static bool IsWhiteSpaceProperty(int cp) => cp switch
    {
        >= 0x09 and <= 0x0D or 0x20 or 0x85 or 0xA0 or 0x1680 or (>= 0x2000 and <= 0x200A)
            or 0x2028 or 0x2029 or 0x202F or 0x205F or 0x3000 => true,
        _ => false,
    };

    /// <summary>Replaces unpaired surrogates by U+FFFD so that every later UTF-8 conversion is lossless.</summary>
    public static string Sanitize(string text)
    {
        bool bad = false;
        for (int i = 0; i < text.Length && !bad; i++)
        {
            char c = text[i];
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1])) i++;
            else if (char.IsSurrogate(c)) bad = true;
        }
        if (!bad) return text;
        var sb = new StringBuilder(text.Length);
        foreach (var r in text.EnumerateRunes()) sb.Append(r.Value == Rune.ReplacementChar.Value ? "\uFFFD" : r.ToString());
        return sb.ToString();
    }
}
