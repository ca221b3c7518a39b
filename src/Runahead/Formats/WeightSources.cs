using Runahead.Formats.Gguf;
using Runahead.Formats.Llama2c;
using Runahead.Formats.Safetensors;

namespace Runahead.Formats;

/// <summary>Opens any supported model file or folder as an <see cref="IWeightSource"/>.</summary>
public static class WeightSources
{
    /// <summary>
    /// Picks the format: a folder with config.json (or a .safetensors / index / config.json file) is a Hugging Face
    /// checkpoint, *.gguf is GGUF, *.bin is llama2.c; other names and ambiguous ones are decided by their first bytes.
    /// Throws <see cref="InvalidModelFileException"/> for anything unreadable or invalid.
    /// </summary>
    public static IWeightSource Open(string path)
    {
        if (string.IsNullOrWhiteSpace(path)) throw new RunaheadException("model path is empty");
        return Detect(path) switch
        {
            "gguf" => GgufWeightSource.Open(path),
            "safetensors" => SafetensorsWeightSource.Open(path),
            _ => Llama2cWeightSource.Open(path),
        };
    }

    /// <summary>"gguf", "safetensors" or "llama2c" for a path, by name and content (see <see cref="Open"/>).</summary>
    public static string Detect(string path)
    {
        if (Directory.Exists(path))
        {
            if (File.Exists(Path.Combine(path, "config.json"))) return "safetensors";
            var ggufs = Directory.GetFiles(path, "*.gguf");
            throw new InvalidModelFileException(path, ggufs.Length > 0
                ? "is a folder without config.json; pass the .gguf file itself"
                : "is a folder without config.json (not a Hugging Face checkpoint)");
        }
        if (!File.Exists(path)) throw new InvalidModelFileException(path, "file not found");
        string name = Path.GetFileName(path);
        if (name.Equals("config.json", StringComparison.OrdinalIgnoreCase)
            || name.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase)
            || name.EndsWith(".safetensors.index.json", StringComparison.OrdinalIgnoreCase))
            return "safetensors";
        // Names can lie (a GGUF saved as .bin is common), so the magic wins over the extension.
        Span<byte> head = stackalloc byte[16];
        int n;
        long size;
        try
        {
            using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1);
            size = fs.Length;
            n = fs.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        }
        catch (Exception e)
        {
            throw new InvalidModelFileException(path, "cannot open: " + e.Message);
        }
        if (n >= 4 && BitConverter.ToUInt32(head) == GgufFile.Magic) return "gguf";
        if (name.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase)) return "gguf"; // the reader explains the bad magic
        if (SafetensorsFile.LooksLikeSafetensors(head[..n], size)) return "safetensors";
        if (n >= 4 && head[0] == (byte)'P' && head[1] == (byte)'K' && head[2] == 3 && head[3] == 4)
            throw new InvalidModelFileException(path, "is a PyTorch (zip/pickle) checkpoint, which is not supported; use its safetensors or GGUF form");
        return "llama2c";
    }
}
