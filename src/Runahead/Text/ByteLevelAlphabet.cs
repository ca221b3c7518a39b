namespace Runahead.Text;

/// <summary>
/// GPT-2's reversible map between bytes and printable code points used by byte-level BPE vocabularies (space is "Ġ",
/// newline "Ċ"): printable Latin-1 bytes map to themselves, the other 68 bytes to U+0100 onwards in byte order.
/// </summary>
internal static class ByteLevelAlphabet
{
    private static readonly char[] ByteToChar = BuildByteToChar();
    private static readonly short[] CharToByte = BuildCharToByte();

    private static char[] BuildByteToChar()
    {
        var map = new char[256];
        var assigned = new bool[256];
        for (int b = 0x21; b <= 0x7E; b++) { map[b] = (char)b; assigned[b] = true; }
        for (int b = 0xA1; b <= 0xAC; b++) { map[b] = (char)b; assigned[b] = true; }
        for (int b = 0xAE; b <= 0xFF; b++) { map[b] = (char)b; assigned[b] = true; }
        int next = 0;
        for (int b = 0; b < 256; b++)
        {
            if (!assigned[b]) map[b] = (char)(256 + next++);
        }
        return map;
    }

    private static short[] BuildCharToByte()
    {
        var inverse = new short[512];
        Array.Fill(inverse, (short)-1);
        for (int b = 0; b < 256; b++) inverse[ByteToChar[b]] = (short)b;
        return inverse;
    }

    public static char Encode(byte b) => ByteToChar[b];

    /// <summary>The byte a character stands for, or -1 when it is not part of the alphabet.</summary>
    public static int Decode(char c) => c < CharToByte.Length ? CharToByte[c] : -1;

    /// <summary>UTF-8 bytes of <paramref name="text"/>, each written as its alphabet character.</summary>
    public static string EncodeUtf8(ReadOnlySpan<char> text)
    {
        int byteCount = System.Text.Encoding.UTF8.GetByteCount(text);
        byte[]? rentedBytes = null;
        char[]? rentedChars = null;
        Span<byte> bytes = byteCount <= 256 ? stackalloc byte[256] : (rentedBytes = System.Buffers.ArrayPool<byte>.Shared.Rent(byteCount));
        Span<char> chars = byteCount <= 256 ? stackalloc char[256] : (rentedChars = System.Buffers.ArrayPool<char>.Shared.Rent(byteCount));
        System.Text.Encoding.UTF8.GetBytes(text, bytes);
        for (int i = 0; i < byteCount; i++) chars[i] = ByteToChar[bytes[i]];
        var result = new string(chars[..byteCount]);
        if (rentedBytes != null) System.Buffers.ArrayPool<byte>.Shared.Return(rentedBytes);
        if (rentedChars != null) System.Buffers.ArrayPool<char>.Shared.Return(rentedChars);
        return result;
    }
}
