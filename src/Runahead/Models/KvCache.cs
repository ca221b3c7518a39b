namespace Runahead.Models;

/// <summary>
/// Keys and values of one sequence: per layer, contiguous K and V rows [capacity, KvDim] (RoPE already applied to K).
/// <see cref="Length"/> counts the tokens present in every layer; writers fill a range in all layers, then call
/// <see cref="SetLength"/>.
/// </summary>
public sealed class KvCache
{
    private float[][] _keys;
    private float[][] _values;
    private readonly int _kvDim;

    public ModelConfig Config { get; }
    public int Capacity { get; private set; }
    public int Length { get; private set; }

    public KvCache(ModelConfig config, int capacity)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (capacity < 0) throw new ArgumentOutOfRangeException(nameof(capacity), "capacity must be >= 0");
        if ((long)capacity * config.KvDim > Array.MaxLength)
            throw new RunaheadException($"a KV cache of {capacity} tokens x {config.KvDim} values does not fit one array per layer");
        CheckMemory(config, capacity);
        Config = config;
        _kvDim = config.KvDim;
        Capacity = capacity;
        _keys = new float[config.Layers][];
        _values = new float[config.Layers][];
        for (int l = 0; l < config.Layers; l++)
        {
            _keys[l] = new float[capacity * _kvDim];
            _values[l] = new float[capacity * _kvDim];
        }
    }

    /// <summary>Bytes held by keys and values of all layers.</summary>
    public long Bytes => 2L * Config.Layers * Capacity * _kvDim * sizeof(float);

    /// <summary>Key rows [start, start + count) of a layer (count * KvDim floats).</summary>
    public Span<float> Keys(int layer, int start, int count) => _keys[layer].AsSpan(RowOffset(start, count), count * _kvDim);

    /// <summary>Value rows [start, start + count) of a layer (count * KvDim floats).</summary>
    public Span<float> Values(int layer, int start, int count) => _values[layer].AsSpan(RowOffset(start, count), count * _kvDim);

    public void ExportRange(int layer, int start, int count, Span<float> keys, Span<float> values)
    {
        Keys(layer, start, count).CopyTo(keys);
        Values(layer, start, count).CopyTo(values);
    }

    /// <summary>Copies rows in at <paramref name="start"/>; the row count is keys.Length / KvDim.</summary>
    public void ImportRange(int layer, int start, ReadOnlySpan<float> keys, ReadOnlySpan<float> values)
    {
        if (keys.Length != values.Length || keys.Length % _kvDim != 0)
            throw new ArgumentException($"keys ({keys.Length}) and values ({values.Length}) must be the same whole number of rows of {_kvDim}");
        int count = keys.Length / _kvDim;
        keys.CopyTo(Keys(layer, start, count));
        values.CopyTo(Values(layer, start, count));
    }

    /// <summary>Declares rows [0, length) valid in every layer (after a step filled them, or to truncate).</summary>
    public void SetLength(int length)
    {
        if ((uint)length > (uint)Capacity) throw new ArgumentOutOfRangeException(nameof(length), $"length {length} is outside [0, {Capacity}]");
        Length = length;
    }

    /// <summary>
    /// Grows the capacity to at least <paramref name="capacity"/>, keeping the first <see cref="Length"/> rows.
    /// Spans obtained earlier refer to the old storage afterwards.
    /// </summary>
    public void EnsureCapacity(int capacity)
    {
        if (capacity <= Capacity) return;
        if ((long)capacity * _kvDim > Array.MaxLength)
            throw new RunaheadException($"a KV cache of {capacity} tokens x {_kvDim} values does not fit one array per layer");
        CheckMemory(Config, capacity);
        for (int l = 0; l < _keys.Length; l++)
        {
            var k = new float[capacity * _kvDim];
            var v = new float[capacity * _kvDim];
            _keys[l].AsSpan(0, Length * _kvDim).CopyTo(k);
            _values[l].AsSpan(0, Length * _kvDim).CopyTo(v);
            _keys[l] = k;
            _values[l] = v;
        }
        Capacity = capacity;
    }

    /// <summary>A clear error instead of an out-of-memory crash when a context length asks for more than the machine has.</summary>
    private static void CheckMemory(ModelConfig config, int capacity)
    {
        long bytes = 2L * config.Layers * capacity * config.KvDim * sizeof(float);
        long available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        if (available > 0 && bytes > available)
            throw new RunaheadException($"a KV cache of {capacity} tokens needs {bytes / (1024.0 * 1024 * 1024):F1} GiB, more than the {available / (1024.0 * 1024 * 1024):F1} GiB available; use a shorter context");
    }

    private int RowOffset(int start, int count)
    {
        if (start < 0 || count < 0 || start + count > Capacity)
            throw new ArgumentOutOfRangeException(nameof(start), $"rows [{start}, {start + count}) are outside the cache's capacity {Capacity}");
        return start * _kvDim;
    }
}
