using System.Text;
using Runahead.Formats;
using Runahead.Numerics;

namespace Runahead.Models;

/// <summary>The validated table of a mapped packed-weight cache: where each weight's panels are.</summary>
internal sealed class PackedWeightTable
{
    internal sealed record Entry(string Name, TensorType StoredType, PanelType PanelType, int OutFeatures, int InFeatures,
        long Offset, long Length, ulong Hash);

    private readonly Dictionary<string, Entry> _entries;

    public MappedPanels Mapping { get; }
    public int Count => _entries.Count;

    private PackedWeightTable(MappedPanels mapping, Dictionary<string, Entry> entries)
    {
        Mapping = mapping;
        _entries = entries;
    }

    /// <summary>The weight <paramref name="name"/> over the mapping; a missing or differently shaped entry means a stale cache.</summary>
    public LinearWeight Get(string name, TensorType storedType, int outFeatures, int inFeatures)
    {
        if (!_entries.TryGetValue(name, out var e))
            throw new StaleCacheException($"{Mapping.Path} has no weight '{name}'");
        if (e.StoredType != storedType || e.OutFeatures != outFeatures || e.InFeatures != inFeatures)
            throw new StaleCacheException($"{Mapping.Path} holds '{name}' as [{e.OutFeatures}, {e.InFeatures}] {e.StoredType}, the model has [{outFeatures}, {inFeatures}] {storedType}");
        return LinearWeight.FromMapped(Mapping, e.Offset, e.PanelType, e.OutFeatures, e.InFeatures, e.StoredType);
    }

    public static byte[] Serialize(string key, IReadOnlyList<Entry> entries)
    {
        using var stream = new MemoryStream();
        using (var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true))
        {
            w.Write(key);
            w.Write(entries.Count);
            foreach (var e in entries)
            {
                w.Write(e.Name);
                w.Write((int)e.StoredType);
                w.Write((int)e.PanelType);
                w.Write(e.OutFeatures);
                w.Write(e.InFeatures);
                w.Write(e.Offset);
                w.Write(e.Length);
                w.Write(e.Hash);
            }
        }
        return stream.ToArray();
    }

    /// <summary>
    /// Validates the whole file behind <paramref name="mapping"/> against <paramref name="key"/>: header, table, and the
    /// hash of every weight's bytes (read in parallel; this also brings the shared pages in once for all ranks).
    /// Null and a one-line reason when anything is off.
    /// </summary>
    public static unsafe PackedWeightTable? Read(MappedPanels mapping, string key, out string? reason)
    {
        var header = PackedWeightCache.ReadHeader(mapping.Bytes(0, Math.Min(mapping.Length, PackedWeightCache.HeaderBytes)), mapping.Length, out reason);
        if (header is not { } h) return null;
        var tableBytes = mapping.Bytes(h.TableOffset, h.TableLength);
        if (PanelHash.Of(tableBytes) != h.TableHash)
        {
            reason = "its table is corrupt";
            return null;
        }
        var entries = new Dictionary<string, Entry>(StringComparer.Ordinal);
        var ordered = new List<Entry>();
        try
        {
            using var r = new BinaryReader(new MemoryStream(tableBytes.ToArray()), Encoding.UTF8);
            if (r.ReadString() != key)
            {
                reason = "it was built from another model file, model version or engine build (stale)";
                return null;
            }
            int count = r.ReadInt32();
            if (count < 0 || count > 1 << 20) throw new InvalidDataException($"{count} weights");
            long end = PackedWeightCache.HeaderBytes;
            for (int i = 0; i < count; i++)
            {
                var e = new Entry(r.ReadString(), (TensorType)r.ReadInt32(), (PanelType)r.ReadInt32(), r.ReadInt32(), r.ReadInt32(),
                    r.ReadInt64(), r.ReadInt64(), r.ReadUInt64());
                if (!Enum.IsDefined(e.StoredType) || !Enum.IsDefined(e.PanelType) || e.OutFeatures < 0 || e.InFeatures < 0)
                    throw new InvalidDataException($"weight '{e.Name}' has a bad type or shape");
                if (e.Length != LinearWeight.PackedBytes(e.PanelType, e.OutFeatures, e.InFeatures))
                    throw new InvalidDataException($"weight '{e.Name}' has {e.Length} bytes for its shape");
                if (e.Offset < end || e.Offset % PackedWeightCache.PanelAlignment != 0 || e.Offset > h.TableOffset - e.Length)
                    throw new InvalidDataException($"weight '{e.Name}' lies outside its place in the file");
                if (!entries.TryAdd(e.Name, e)) throw new InvalidDataException($"weight '{e.Name}' appears twice");
                ordered.Add(e);
                end = e.Offset + e.Length;
            }
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException or IOException or ArgumentException)
        {
            reason = $"its table is invalid ({e.Message})";
            return null;
        }
        string? bad = null;
        byte* start = mapping.Acquire();
        try
        {
            nint basePtr = (nint)start;
            Parallel.ForEach(ordered, (e, state) =>
            {
                if (PanelHash.Of((byte*)basePtr + e.Offset, e.Length) != e.Hash)
                {
                    bad = e.Name;
                    state.Stop();
                }
            });
        }
        finally
        {
            mapping.Release();
        }
        if (bad is not null)
        {
            reason = $"the panels of '{bad}' are corrupt";
            return null;
        }
        reason = null;
        return new PackedWeightTable(mapping, entries);
    }
}
