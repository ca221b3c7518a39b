using System.Buffers.Binary;
using Runahead.Formats;
using Runahead.Numerics;

namespace Runahead.Models;

/// <summary>
/// Writes a packed-weight cache file (layout in <see cref="PackedWeightCache"/>) one weight at a time as the model
/// loads: each weight is packed privately, appended, and replaced by a weight over the (later bound) mapping, so the
/// builder never holds more than one private packed weight at a time.
/// </summary>
internal sealed class PackedWeightWriter
{
    private readonly FileStream _file;
    private readonly string _key;
    private readonly List<PackedWeightTable.Entry> _entries = [];
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);

    public MappedPanels Mapping { get; } = MappedPanels.CreateUnbound();

    public PackedWeightWriter(string tempPath, string key)
    {
        _key = key;
        _file = new FileStream(tempPath, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 20);
        _file.Write(new byte[PackedWeightCache.HeaderBytes]);
    }

    /// <summary>Appends <paramref name="packed"/>'s panels and returns the same weight over the cache mapping.</summary>
    public unsafe LinearWeight Append(string name, LinearWeight packed)
    {
        // A tied LM head reads token_embd.weight like any matrix; a name asked for twice is stored once.
        if (!_names.Add(name)) throw new InvalidOperationException($"weight '{name}' is packed twice");
        long offset = Align(_file.Position);
        Pad(offset);
        var bytes = packed.PrivatePanelBytes;
        _file.Write(bytes);
        ulong hash;
        fixed (byte* p = bytes) hash = PanelHash.Of(p, bytes.Length);
        _entries.Add(new PackedWeightTable.Entry(name, packed.StoredType, packed.PanelType, packed.OutFeatures, packed.InFeatures,
            offset, bytes.Length, hash));
        return LinearWeight.FromMapped(Mapping, offset, packed.PanelType, packed.OutFeatures, packed.InFeatures, packed.StoredType);
    }

    /// <summary>Writes the table and the header and closes the file (not fsynced: a torn file fails its hashes and is rebuilt).</summary>
    public void Finish()
    {
        long tableOffset = _file.Position;
        var table = PackedWeightTable.Serialize(_key, _entries);
        _file.Write(table);
        long length = _file.Position;
        Span<byte> header = stackalloc byte[PackedWeightCache.HeaderBytes];
        PackedWeightCache.WriteHeader(header, length, tableOffset, table.Length, PanelHash.Of(table));
        _file.Position = 0;
        _file.Write(header);
        _file.Dispose();
    }

    public void Abandon()
    {
        _file.Dispose();
        Mapping.Dispose();
    }

    private void Pad(long to)
    {
        long gap = to - _file.Position;
        if (gap > 0) _file.Write(new byte[gap]);
    }

    private static long Align(long position) =>
        (position + PackedWeightCache.PanelAlignment - 1) / PackedWeightCache.PanelAlignment * PackedWeightCache.PanelAlignment;
}
