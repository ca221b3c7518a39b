using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using Runahead.Formats.Safetensors;

namespace Runahead.Tests.Formats;

/// <summary>Writes safetensors files for tests (shards, mutated headers) from tensors read out of a fixture.</summary>
public static class SafetensorsTestFiles
{
    public sealed record Tensor(string Name, string DType, long[] Shape, byte[] Data);

    public static List<Tensor> ReadAll(string path)
    {
        using var f = SafetensorsFile.Open(path);
        var list = new List<Tensor>();
        foreach (var t in f.Tensors)
            list.Add(new Tensor(t.Name, t.Type switch
            {
                Runahead.Formats.TensorType.F16 => "F16",
                Runahead.Formats.TensorType.BF16 => "BF16",
                _ => "F32",
            }, t.Shape, f.GetBytes(t).ToArray()));
        return list;
    }

    /// <summary>The JSON header for <paramref name="tensors"/> laid out back to back.</summary>
    public static string Header(IEnumerable<Tensor> tensors)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            w.WriteStartObject("__metadata__");
            w.WriteString("format", "pt");
            w.WriteEndObject();
            long offset = 0;
            foreach (var t in tensors)
            {
                w.WriteStartObject(t.Name);
                w.WriteString("dtype", t.DType);
                w.WriteStartArray("shape");
                foreach (var d in t.Shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + t.Data.Length);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += t.Data.Length;
            }
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    /// <summary>A whole file: header length, header (padded with spaces to 8 bytes), data.</summary>
    public static byte[] Build(string header, IEnumerable<Tensor> tensors)
    {
        var h = Encoding.UTF8.GetBytes(header);
        int padded = (h.Length + 7) / 8 * 8;
        using var ms = new MemoryStream();
        Span<byte> len = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)padded);
        ms.Write(len);
        ms.Write(h);
        for (int i = h.Length; i < padded; i++) ms.WriteByte((byte)' ');
        foreach (var t in tensors) ms.Write(t.Data);
        return ms.ToArray();
    }

    public static byte[] Build(IReadOnlyList<Tensor> tensors) => Build(Header(tensors), tensors);
}
