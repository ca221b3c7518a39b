using System.Buffers.Binary;

namespace Runahead.Tests.Formats;

/// <summary>
/// Byte positions of every header field of a valid GGUF file, found by walking it independently of GgufFile, so the
/// mutation tests can aim at counts, lengths, types, dimensions and offsets.
/// </summary>
public sealed class GgufLayout
{
    public enum FieldKind { Count, Length, ValueType, Dimension, TensorType, Offset, DimCount }

    public readonly record struct Field(FieldKind Kind, int Position, int Size, string What);

    public List<Field> Fields { get; } = new();

    /// <summary>Ends of the fixed header, of each metadata pair, of each tensor entry; the data start; tensor data bounds.</summary>
    public List<int> Boundaries { get; } = new();

    public int DataStart { get; }

    public GgufLayout(byte[] d)
    {
        int p = 8;
        ulong U64() { ulong v = BinaryPrimitives.ReadUInt64LittleEndian(d.AsSpan(p)); p += 8; return v; }
        uint U32() { uint v = BinaryPrimitives.ReadUInt32LittleEndian(d.AsSpan(p)); p += 4; return v; }
        Fields.Add(new(FieldKind.Count, p, 8, "tensor count"));
        ulong tensors = U64();
        Fields.Add(new(FieldKind.Count, p, 8, "metadata count"));
        ulong kvs = U64();
        Boundaries.Add(p);
        string Str(string what, bool record)
        {
            if (record) Fields.Add(new(FieldKind.Length, p, 8, what + " length"));
            int n = (int)U64();
            string s = System.Text.Encoding.UTF8.GetString(d, p, n);
            p += n;
            return s;
        }
        int alignment = 32;
        for (ulong i = 0; i < kvs; i++)
        {
            string key = Str("key", true);
            Fields.Add(new(FieldKind.ValueType, p, 4, key + " type"));
            uint type = U32();
            if (type == 9)
            {
                Fields.Add(new(FieldKind.ValueType, p, 4, key + " element type"));
                uint et = U32();
                Fields.Add(new(FieldKind.Count, p, 8, key + " array count"));
                ulong count = U64();
                for (ulong j = 0; j < count; j++)
                {
                    if (et == 8) Str($"{key}[{j}]", j < 4 || j == count - 1);
                    else p += ScalarSize(et);
                }
            }
            else if (type == 8) Str(key + " value", true);
            else
            {
                if (key == "general.alignment") alignment = (int)BinaryPrimitives.ReadUInt32LittleEndian(d.AsSpan(p));
                p += ScalarSize(type);
            }
            Boundaries.Add(p);
        }
        var offsets = new List<(long offset, long bytes)>();
        for (ulong i = 0; i < tensors; i++)
        {
            string name = Str("tensor name", true);
            Fields.Add(new(FieldKind.DimCount, p, 4, name + " dims"));
            uint nd = U32();
            long elements = 1;
            for (int k = 0; k < nd; k++)
            {
                Fields.Add(new(FieldKind.Dimension, p, 8, $"{name} ne[{k}]"));
                elements *= (long)U64();
            }
            Fields.Add(new(FieldKind.TensorType, p, 4, name + " ggml type"));
            uint gt = U32();
            Fields.Add(new(FieldKind.Offset, p, 8, name + " offset"));
            long off = (long)U64();
            offsets.Add((off, gt == 0 ? elements * 4 : gt == 8 ? elements / 32 * 34 : elements * 2));
            Boundaries.Add(p);
        }
        DataStart = (p + alignment - 1) / alignment * alignment;
        Boundaries.Add(DataStart);
        foreach (var (off, bytes) in offsets)
        {
            Boundaries.Add(DataStart + (int)off);
            Boundaries.Add(DataStart + (int)(off + bytes));
        }
    }

    private static int ScalarSize(uint t) => t switch
    {
        0 or 1 or 7 => 1,
        2 or 3 => 2,
        4 or 5 or 6 => 4,
        10 or 11 or 12 => 8,
        _ => throw new InvalidOperationException($"type {t}"),
    };
}
