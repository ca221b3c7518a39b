using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text.Json;
using Runahead.Models;

namespace Runahead.Formats.Safetensors;

/// <summary>
/// A Hugging Face checkpoint folder (config.json + model.safetensors, or shards listed in
/// model.safetensors.index.json) as a weight source under canonical names. Tensors are used in place from the maps,
/// except Falcon's grouped query_key_value rows, which are reordered once into buffers this source owns.
/// </summary>
public sealed unsafe class SafetensorsWeightSource : IWeightSource
{
    public const string IndexFileName = "model.safetensors.index.json";

    private readonly record struct Entry(TensorInfo Info, SafetensorsFile? File, SafetensorsTensor? Stored, byte[]? Owned);

    private readonly List<SafetensorsFile> _files = new();
    private readonly Dictionary<string, Entry> _byName = new(StringComparer.Ordinal);
    private readonly List<TensorInfo> _tensors = new();
    private bool _disposed;

    public string SourcePath { get; }
    public string FormatName => "safetensors";
    public ModelConfig Config { get; }
    public HfConfig HfConfig { get; }
    public string FolderPath { get; }
    public IReadOnlyList<TensorInfo> Tensors => _tensors;

    /// <summary>The checkpoint's files (one, or the shards in index order).</summary>
    public IReadOnlyList<string> Files { get; }

    private SafetensorsWeightSource(string sourcePath, string folder)
    {
        SourcePath = sourcePath;
        FolderPath = folder;
        HfConfig = HfConfig.Load(Path.Combine(folder, "config.json"));
        Config = HfConfig.Config;
        // Before any tensor is touched: the reorders below size buffers from these numbers.
        Config.Validate(Path.Combine(folder, "config.json"));
        bool falcon = Config.Architecture == ModelArchitecture.Falcon;

        try
        {
            var hfTensors = new List<(SafetensorsFile file, SafetensorsTensor t)>();
            Files = OpenFiles(sourcePath, folder, hfTensors);
            // Falcon checkpoints without lm_head use the embeddings whatever tie_word_embeddings says.
            if (falcon && !Config.TiedEmbeddings && !hfTensors.Exists(x => x.t.Name == "lm_head.weight"))
                Config = Config with { TiedEmbeddings = true };
            foreach (var (file, t) in hfTensors)
            {
                string? canonical = HfTensorNames.ToCanonical(t.Name, falcon);
                if (canonical == null) continue;
                // A tied model may still carry a copy of the embeddings as lm_head; the config decides.
                if (canonical == "output.weight" && Config.TiedEmbeddings) continue;
                if (_byName.ContainsKey(canonical))
                    throw new InvalidModelFileException(file.Path, $"tensor '{t.Name}' appears twice (as '{canonical}')");
                Entry entry = canonical.EndsWith("attn_qkv.weight", StringComparison.Ordinal) || canonical.EndsWith("attn_qkv.bias", StringComparison.Ordinal)
                    ? FalconQkv(file, t, canonical)
                    : new Entry(new TensorInfo(canonical, t.Type, t.Shape), file, t, null);
                _byName.Add(canonical, entry);
                _tensors.Add(entry.Info);
            }
            ModelTensors.Validate(sourcePath, Config, this, name => HfTensorNames.FromCanonical(name, falcon, HfConfig.FalconTwoLayerNorms));
        }
        catch
        {
            foreach (var f in _files) f.Dispose();
            throw;
        }
    }

    /// <summary>Opens a folder, its config.json, a .safetensors file or an index file.</summary>
    public static SafetensorsWeightSource Open(string path)
    {
        string folder;
        if (Directory.Exists(path)) folder = path;
        else if (File.Exists(path)) folder = Path.GetDirectoryName(Path.GetFullPath(path))!;
        else throw new InvalidModelFileException(path, "file or folder not found");
        if (!File.Exists(Path.Combine(folder, "config.json")))
            throw new InvalidModelFileException(path, "no config.json beside the safetensors weights");
        var source = new SafetensorsWeightSource(path, folder);
        return source;
    }

    private List<string> OpenFiles(string sourcePath, string folder, List<(SafetensorsFile, SafetensorsTensor)> hfTensors)
    {
        try
        {
            string index = Path.Combine(folder, IndexFileName);
            bool givenFile = File.Exists(sourcePath) && sourcePath.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase);
            if (givenFile || !File.Exists(index))
            {
                string file = givenFile ? sourcePath : Path.Combine(folder, "model.safetensors");
                if (!givenFile && !File.Exists(file))
                {
                    var candidates = Directory.GetFiles(folder, "*.safetensors");
                    if (candidates.Length != 1)
                        throw new InvalidModelFileException(sourcePath, candidates.Length == 0
                            ? "no model.safetensors or model.safetensors.index.json in the folder"
                            : "several .safetensors files but no model.safetensors.index.json");
                    file = candidates[0];
                }
                var st = SafetensorsFile.Open(file);
                _files.Add(st);
                foreach (var t in st.Tensors) hfTensors.Add((st, t));
                return [file];
            }
            var weightMap = ReadIndex(index);
            var shards = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
            var order = new List<string>();
            foreach (var (name, shard) in weightMap)
            {
                if (!shards.TryGetValue(shard, out var st))
                {
                    string shardPath = Path.Combine(folder, shard);
                    if (!File.Exists(shardPath))
                        throw new InvalidModelFileException(index, $"shard '{shard}' (holding '{name}') is missing");
                    st = SafetensorsFile.Open(shardPath);
                    _files.Add(st);
                    shards.Add(shard, st);
                    order.Add(shardPath);
                }
                if (!st.TryGetTensor(name, out var t))
                    throw new InvalidModelFileException(st.Path, $"tensor '{name}' listed in {IndexFileName} is not in this shard");
                hfTensors.Add((st, t));
            }
            return order;
        }
        catch
        {
            foreach (var f in _files) f.Dispose();
            throw;
        }
    }

    private static List<(string name, string shard)> ReadIndex(string index)
    {
        byte[] bytes = JsonFiles.ReadBounded(index, 64 << 20);
        using var doc = JsonFiles.Parse(index, bytes, IndexFileName);
        if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("weight_map", out var map)
            || map.ValueKind != JsonValueKind.Object)
            throw new InvalidModelFileException(index, "has no 'weight_map' object");
        var list = new List<(string, string)>();
        foreach (var p in map.EnumerateObject())
        {
            if (p.Value.ValueKind != JsonValueKind.String) throw new InvalidModelFileException(index, $"weight_map entry '{p.Name}' is not a file name");
            string shard = p.Value.GetString()!;
            // Shards live beside the index; a path elsewhere is either a mistake or an attempt to read other files.
            if (shard.Length == 0 || shard.Contains('/') || shard.Contains('\\') || shard is "." or ".." || Path.IsPathRooted(shard))
                throw new InvalidModelFileException(index, $"weight_map entry '{p.Name}' names '{shard}', which is not a file beside the index");
            list.Add((p.Name, shard));
        }
        return list;
    }

    /// <summary>
    /// Falcon's fused QKV in canonical row order. Multi-query checkpoints already are [all Q; K; V]; grouped ones
    /// ([q x heads/kv, k, v] per KV head, as transformers' _split_heads reads them) are copied into that order.
    /// </summary>
    private Entry FalconQkv(SafetensorsFile file, SafetensorsTensor t, string canonical)
    {
        var info = new TensorInfo(canonical, t.Type, t.Shape);
        var c = Config;
        if (HfConfig.QkvLayout != FalconQkvLayout.GroupedPerKvHead) return new Entry(info, file, t, null);
        long rows = c.QDim + 2L * c.KvDim;
        if (t.Shape.Length == 0 || t.Shape[0] != rows)
            throw new InvalidModelFileException(file.Path, $"tensor '{t.Name}' has shape {SafetensorsFile.FormatShape(t.Shape)}, expected {rows} rows (heads {c.Heads}, KV heads {c.KvHeads}, head size {c.HeadDim})");
        if (c.KvHeads <= 0 || c.Heads % c.KvHeads != 0)
            throw new InvalidModelFileException(file.Path, $"KV head count {c.KvHeads} does not divide head count {c.Heads}");
        if (t.ByteSize > Array.MaxLength) throw new InvalidModelFileException(file.Path, $"tensor '{t.Name}' is too large to reorder");
        long rowBytes = t.ByteSize / rows;
        long headBytes = rowBytes * c.HeadDim;
        var owned = GC.AllocateUninitializedArray<byte>((int)t.ByteSize, pinned: true);
        var src = file.GetBytes(t);
        int group = c.Heads / c.KvHeads;
        for (int kv = 0; kv < c.KvHeads; kv++)
        {
            long groupStart = (long)kv * (group + 2) * headBytes;
            for (int s = 0; s < group + 2; s++)
            {
                long dstHead = s < group ? (long)kv * group + s : s == group ? c.Heads + kv : c.Heads + c.KvHeads + kv;
                src.Slice((int)(groupStart + s * headBytes), (int)headBytes).CopyTo(owned.AsSpan((int)(dstHead * headBytes), (int)headBytes));
            }
        }
        return new Entry(info, null, null, owned);
    }

    public bool TryGetTensor(string name, out TensorInfo info)
    {
        if (_byName.TryGetValue(name, out var e))
        {
            info = e.Info;
            return true;
        }
        info = null!;
        return false;
    }

    private Entry Find(TensorInfo tensor)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _byName.TryGetValue(tensor.Name, out var e)
            ? e
            : throw new ArgumentException($"tensor '{tensor.Name}' is not in {SourcePath}", nameof(tensor));
    }

    public ReadOnlySpan<byte> GetTensorBytes(TensorInfo tensor)
    {
        var e = Find(tensor);
        return e.Owned ?? e.File!.GetBytes(e.Stored!);
    }

    public byte* GetTensorPointer(TensorInfo tensor)
    {
        var e = Find(tensor);
        // Owned buffers are allocated on the pinned heap, so their address is stable for the source's lifetime.
        return e.Owned != null ? (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(e.Owned)) : e.File!.GetPointer(e.Stored!);
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var f in _files) f.Dispose();
    }
}
