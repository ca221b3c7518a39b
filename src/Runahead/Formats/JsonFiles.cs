using System.Text.Json;

namespace Runahead.Formats;

/// <summary>Parses JSON from model files, turning every way it can be malformed into InvalidModelFileException.</summary>
internal static class JsonFiles
{
    /// <summary>Reads a whole small file (config.json, an index, tokenizer.json), refusing absurd sizes.</summary>
    public static byte[] ReadBounded(string path, long maxBytes)
    {
        try
        {
            if (!File.Exists(path)) throw new InvalidModelFileException(path, "file not found");
            // The size of the opened file, not of the path (a symlink's own size is not its target's).
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
            if (stream.Length > maxBytes) throw new InvalidModelFileException(path, $"{stream.Length} bytes is absurdly large for this file");
            var bytes = new byte[stream.Length];
            stream.ReadExactly(bytes);
            return bytes;
        }
        catch (Exception e) when (e is not RunaheadException)
        {
            throw new InvalidModelFileException(path, "cannot read: " + e.Message);
        }
    }

    /// <summary>
    /// Parses <paramref name="utf8"/>; invalid UTF-8 is rejected up front because System.Text.Json only notices it
    /// when a string is read, as an InvalidOperationException deep inside the caller.
    /// </summary>
    public static JsonDocument Parse(string path, ReadOnlyMemory<byte> utf8, string what, int maxDepth = 64)
    {
        if (!System.Text.Unicode.Utf8.IsValid(utf8.Span)) throw new InvalidModelFileException(path, $"{what} is not valid UTF-8");
        try
        {
            return JsonDocument.Parse(utf8, new JsonDocumentOptions { MaxDepth = maxDepth, AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new InvalidModelFileException(path, $"{what} is not valid JSON: {FirstLine(e.Message)}");
        }
    }

    public static string FirstLine(string s)
    {
        int i = s.IndexOfAny(['\r', '\n']);
        return i < 0 ? s : s[..i];
    }
}
