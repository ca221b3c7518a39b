using System.Buffers.Binary;

namespace Runahead.Text;

/// <summary>
/// Finds and reads the tokenizer for a model: a GGUF file's embedded vocabulary, tokenizer.json in a Hugging Face
/// folder, or an explicit tokenizer file (llama2.c tokenizer.bin, tokenizer.json or a GGUF vocabulary), recognised by
/// content rather than by name.
/// </summary>
public static class TokenizerLoader
{
    /// <param name="modelPath">A .gguf file, a Hugging Face folder (or a file in one), or a llama2.c checkpoint.</param>
    /// <param name="tokenizerPath">An explicit tokenizer file, or null to use the model's own.</param>
    public static ITokenizer Load(string modelPath, string? tokenizerPath)
    {
        ArgumentNullException.ThrowIfNull(modelPath);
        if (tokenizerPath != null) return LoadFile(tokenizerPath, Llama2cVocabSize(modelPath));

        if (Directory.Exists(modelPath))
        {
            string json = Path.Combine(modelPath, "tokenizer.json");
            if (File.Exists(json)) return HuggingFaceTokenizerReader.Read(json);
            throw new RunaheadException($"{modelPath}: the folder has no tokenizer.json; pass a tokenizer file (tokenizer.json or llama2.c tokenizer.bin)");
        }
        if (!File.Exists(modelPath)) throw new RunaheadException($"{modelPath}: model file or folder not found");
        if (HasGgufMagic(modelPath)) return GgufTokenizerReader.Read(modelPath);
        string? dir = Path.GetDirectoryName(Path.GetFullPath(modelPath));
        string beside = Path.Combine(dir ?? ".", "tokenizer.json");
        if (File.Exists(beside)) return HuggingFaceTokenizerReader.Read(beside);
        throw new RunaheadException($"{modelPath}: the model has no embedded tokenizer; pass a tokenizer file (llama2.c tokenizer.bin or tokenizer.json)");
    }

    /// <summary>Reads a tokenizer file of any supported kind, recognised by its first bytes.</summary>
    /// <param name="vocabSize">The model's vocabulary size when known (a tokenizer.bin does not store it).</param>
    public static ITokenizer LoadFile(string path, int? vocabSize = null)
    {
        if (Directory.Exists(path)) return Load(path, null);
        if (!File.Exists(path)) throw new RunaheadException($"{path}: tokenizer file not found");
        var head = ReadHead(path, 64);
        if (head.Length == 0) throw new InvalidModelFileException(path, "file is empty");
        if (head.Length >= 4 && BinaryPrimitives.ReadUInt32LittleEndian(head) == Formats.Gguf.GgufFile.Magic)
            return GgufTokenizerReader.Read(path);
        if (FirstNonSpace(head) is (byte)'{' or (byte)'[') return HuggingFaceTokenizerReader.Read(path);
        if (Llama2cTokenizerReader.LooksLikeTokenizerBin(head)) return Llama2cTokenizerReader.Read(path, vocabSize);
        throw new InvalidModelFileException(path, "not a recognised tokenizer (expected GGUF, tokenizer.json or llama2.c tokenizer.bin)");
    }

    private static byte[] ReadHead(string path, int count)
    {
        try
        {
            using var stream = File.OpenRead(path);
            var buffer = new byte[count];
            int total = 0, read;
            while (total < count && (read = stream.Read(buffer, total, count - total)) > 0) total += read;
            return buffer[..total];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidModelFileException(path, "cannot read: " + e.Message);
        }
    }

    private static int? FirstNonSpace(byte[] head)
    {
        int i = head.Length >= 3 && head[0] == 0xEF && head[1] == 0xBB && head[2] == 0xBF ? 3 : 0; // UTF-8 BOM
        for (; i < head.Length; i++)
            if (head[i] is not ((byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n')) return head[i];
        return null;
    }

    private static bool HasGgufMagic(string path)
    {
        var head = ReadHead(path, 4);
        return head.Length == 4 && BinaryPrimitives.ReadUInt32LittleEndian(head) == Formats.Gguf.GgufFile.Magic;
    }

    /// <summary>The vocabulary size in a llama2.c checkpoint header (7 int32; negative vocab = unshared classifier).</summary>
    private static int? Llama2cVocabSize(string modelPath)
    {
        if (!File.Exists(modelPath) || HasGgufMagic(modelPath)) return null;
        var head = ReadHead(modelPath, 28);
        if (head.Length < 28) return null;
        for (int i = 0; i < 7; i++)
        {
            int v = BinaryPrimitives.ReadInt32LittleEndian(head.AsSpan(i * 4));
            if (i != 5 && v <= 0) return null; // not a llama2.c header
        }
        int vocab = Math.Abs(BinaryPrimitives.ReadInt32LittleEndian(head.AsSpan(20)));
        return vocab is > 0 and <= 1 << 22 ? vocab : null;
    }
}
