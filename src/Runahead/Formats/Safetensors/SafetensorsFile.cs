using System.Text.Json;

namespace Runahead.Formats.Safetensors;

/// <summary>A tensor entry of a safetensors file: row-major shape and the absolute offset of its bytes.</summary>
public sealed record SafetensorsTensor(string Name, TensorType Type, long[] Shape, long DataOffset, long ByteSize)
{
    public TensorInfo Info { get; } = new(Name, Type, Shape);
}

/// <summary>
/// One .safetensors file, memory-mapped and validated: an 8-byte little-endian header length, a JSON header
/// {name: {dtype, shape, data_offsets}}, then the data. Every size and offset is checked against the file before use.
/// </summary>
public sealed unsafe class SafetensorsFile : IDisposable
{
    /// <summary>Headers are small (a few hundred bytes a tensor); a larger claim is a lie, not a model.</summary>
    public const long MaxHeaderBytes = 100L << 20;

    private readonly MappedFile _file;
    private readonly Dictionary<string, SafetensorsTensor> _byName = new(StringComparer.Ordinal);

    public string Path => _file.Path;
    public IReadOnlyList<SafetensorsTensor> Tensors { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }

    private SafetensorsFile(MappedFile file)
    {
        _file = file;
        string path = file.Path;
        long size = file.Length;
        if (size < 10) throw new InvalidModelFileException(path, "file is too short to be safetensors");
        long headerLen = *(long*)file.Base;
        if (headerLen < 2 || headerLen > size - 8)
            throw new InvalidModelFileException(path, $"safetensors header length {(ulong)headerLen} runs past the end of the file ({size} bytes)");
        if (headerLen > MaxHeaderBytes)
            throw new InvalidModelFileException(path, $"safetensors header length {headerLen} is absurd");
        long dataStart = 8 + headerLen;
        long dataSize = size - dataStart;

        var tensors = new List<SafetensorsTensor>();
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        {
            using var doc = JsonFiles.Parse(path, file.Span(8, (int)headerLen).ToArray(), "safetensors header", maxDepth: 16);
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new InvalidModelFileException(path, "safetensors header is not a JSON object");
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                if (prop.Name == "__metadata__")
                {
                    if (prop.Value.ValueKind == JsonValueKind.Object)
                        foreach (var m in prop.Value.EnumerateObject())
                            if (m.Value.ValueKind == JsonValueKind.String) metadata[m.Name] = m.Value.GetString()!;
                    continue;
                }
                var t = ParseEntry(path, prop.Name, prop.Value, dataStart, dataSize);
                if (!_byName.TryAdd(t.Name, t)) throw new InvalidModelFileException(path, $"duplicate tensor name '{t.Name}'");
                tensors.Add(t);
            }
        }
        Tensors = tensors;
        Metadata = metadata;
    }

    private static SafetensorsTensor ParseEntry(string path, string name, JsonElement e, long dataStart, long dataSize)
    {
        InvalidModelFileException Bad(string what) => new(path, $"tensor '{name}': {what}");
        if (e.ValueKind != JsonValueKind.Object) throw Bad("header entry is not an object");
        if (!e.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String) throw Bad("dtype is missing");
        string dtype = dt.GetString()!;
        TensorType type = dtype switch
        {
            "F32" => TensorType.F32,
            "F16" => TensorType.F16,
            "BF16" => TensorType.BF16,
            _ => throw Bad($"dtype {dtype} is not supported (F32, F16, BF16 are)"),
        };
        if (!e.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array) throw Bad("shape is missing");
        int rank = sh.GetArrayLength();
        if (rank > 8) throw Bad($"shape has {rank} dimensions");
        var shape = new long[rank];
        long elements = 1;
        int i = 0;
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long v) || v < 0 || v > int.MaxValue)
                throw Bad($"shape dimension {d} is not a valid size");
            if (v != 0 && elements > (1L << 40) / v) throw Bad("shape has too many elements");
            elements *= v;
            shape[i++] = v;
        }
        if (!e.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
            throw Bad("data_offsets is missing or not [begin, end]");
        long begin = OffsetValue(off[0]), end = OffsetValue(off[1]);
        if (begin < 0 || end < 0) throw Bad("data_offsets are not valid offsets");
        if (end < begin) throw Bad($"data_offsets [{begin}, {end}] end before they begin");
        if (end > dataSize) throw Bad($"data ({begin}..{end}) runs past the end of the file");
        long bytes = TensorTypeInfo.ByteSize(type, elements);
        if (end - begin != bytes) throw Bad($"data_offsets span {end - begin} bytes but shape {FormatShape(shape)} of {dtype} needs {bytes}");
        return new SafetensorsTensor(name, type, shape, dataStart + begin, bytes);
    }

    private static long OffsetValue(JsonElement e) =>
        e.ValueKind == JsonValueKind.Number && e.TryGetInt64(out long v) && v >= 0 ? v : -1;

    internal static string FormatShape(long[] shape) => "[" + string.Join(", ", shape) + "]";

    public static SafetensorsFile Open(string path)
    {
        var file = MappedFile.Open(path);
        try
        {
            return new SafetensorsFile(file);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    public bool TryGetTensor(string name, out SafetensorsTensor tensor) => _byName.TryGetValue(name, out tensor!);

    public ReadOnlySpan<byte> GetBytes(SafetensorsTensor t)
    {
        if (t.ByteSize > int.MaxValue) throw new InvalidOperationException($"tensor '{t.Name}' is over 2 GiB; use GetPointer");
        return _file.Span(t.DataOffset, (int)t.ByteSize);
    }

    public byte* GetPointer(SafetensorsTensor t) => _file.Pointer(t.DataOffset);

    /// <summary>True when the first bytes look like a safetensors header (length, then '{').</summary>
    public static bool LooksLikeSafetensors(ReadOnlySpan<byte> head, long fileSize)
    {
        if (head.Length < 9) return false;
        long len = BitConverter.ToInt64(head);
        return len >= 2 && len <= fileSize - 8 && head[8] == (byte)'{';
    }

    public void Dispose() => _file.Dispose();
}
