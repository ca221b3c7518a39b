using System.Text;

namespace Runahead.Formats.Gguf;

/// <summary>GGML's tensor type ids as stored in GGUF files (only the ones we can compute with are mapped).</summary>
public static class GgmlType
{
    // ggml.h's enum ggml_type (4 and 5 were Q4_2/Q4_3, removed long ago).
    public const uint F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8,
        Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, IQ4_NL = 20, BF16 = 30;

    /// <summary>The types we read, as named in the error for the others.</summary>
    public const string SupportedNames = "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL";

    public static bool TryToTensorType(uint ggml, out TensorType type)
    {
        switch (ggml)
        {
            case F32: type = TensorType.F32; return true;
            case F16: type = TensorType.F16; return true;
            case Q4_0: type = TensorType.Q4_0; return true;
            case Q4_1: type = TensorType.Q4_1; return true;
            case Q5_0: type = TensorType.Q5_0; return true;
            case Q5_1: type = TensorType.Q5_1; return true;
            case Q8_0: type = TensorType.Q8_0; return true;
            case Q2_K: type = TensorType.Q2_K; return true;
            case Q3_K: type = TensorType.Q3_K; return true;
            case Q4_K: type = TensorType.Q4_K; return true;
            case Q5_K: type = TensorType.Q5_K; return true;
            case Q6_K: type = TensorType.Q6_K; return true;
            case IQ4_NL: type = TensorType.IQ4_NL; return true;
            case BF16: type = TensorType.BF16; return true;
            default: type = default; return false;
        }
    }

    public static uint FromTensorType(TensorType t) => t switch
    {
        TensorType.F32 => F32,
        TensorType.F16 => F16,
        TensorType.Q4_0 => Q4_0,
        TensorType.Q4_1 => Q4_1,
        TensorType.Q5_0 => Q5_0,
        TensorType.Q5_1 => Q5_1,
        TensorType.Q8_0 => Q8_0,
        TensorType.Q2_K => Q2_K,
        TensorType.Q3_K => Q3_K,
        TensorType.Q4_K => Q4_K,
        TensorType.Q5_K => Q5_K,
        TensorType.Q6_K => Q6_K,
        TensorType.IQ4_NL => IQ4_NL,
        TensorType.BF16 => BF16,
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };
}

/// <summary>GGUF metadata value types.</summary>
public enum GgufValueType : uint
{
    UInt8 = 0, Int8 = 1, UInt16 = 2, Int16 = 3, UInt32 = 4, Int32 = 5, Float32 = 6, Bool = 7,
    String = 8, Array = 9, UInt64 = 10, Int64 = 11, Float64 = 12,
}

/// <summary>A tensor entry of a GGUF file: canonical row-major shape and the absolute offset of its data.</summary>
public sealed record GgufTensor(string Name, TensorType Type, long[] Shape, long DataOffset, long ByteSize)
{
    public TensorInfo Info { get; } = new(Name, Type, Shape);
}

/// <summary>
/// A GGUF v2/v3 file, memory-mapped and validated: every count, length and offset is checked against the file size
/// before anything is allocated, so a truncated or lying file gives <see cref="InvalidModelFileException"/>.
/// Metadata values are boxed: integers as long (or ulong for UInt64), floats as double, strings, bools, and arrays
/// as typed .NET arrays (long[], double[], string[], bool[]).
/// </summary>
public sealed unsafe class GgufFile : IDisposable
{
    public const uint Magic = 0x46554747; // "GGUF" little-endian
    public const int DefaultAlignment = 32;

    /// <summary>Limits far above any real model (the largest vocabularies have a few hundred thousand tokens).</summary>
    public const int MaxTensorCount = 1 << 20, MaxMetadataCount = 1 << 16, MaxArrayLength = 1 << 24, MaxMetadataElements = 1 << 26;

    private readonly MappedFile _file;
    private readonly byte* _base;
    private bool _disposed;

    public string Path { get; }
    public uint Version { get; }
    public long FileSize { get; }
    public int Alignment { get; }
    public long DataStart { get; }
    /// <summary>
    /// Every metadata value, boxed as the class summary says. Arrays of <see cref="LazyArrayLength"/> or more elements
    /// are decoded from the mapped file on each access (a new array each time; the file must still be open).
    /// </summary>
    public IReadOnlyDictionary<string, object> Metadata { get; }

    /// <summary>Metadata arrays at least this long are not held in memory (see <see cref="Metadata"/>).</summary>
    public const int LazyArrayLength = 1024;

    /// <summary>The stored type of each metadata value (and element type for arrays), so values can be copied exactly.</summary>
    public IReadOnlyDictionary<string, (GgufValueType Type, GgufValueType ElementType)> MetadataTypes { get; }
    public IReadOnlyList<GgufTensor> Tensors { get; }
    private readonly Dictionary<string, GgufTensor> _byName;

    private GgufFile(MappedFile file)
    {
        _file = file;
        string path = file.Path;
        byte* basePtr = file.Base;
        long size = file.Length;
        Path = path;
        _base = basePtr;
        FileSize = size;
        var r = new Reader(path, basePtr, size);
        try
        {
            if (size < 24) throw r.Fail("file is too short to be GGUF");
            if (r.U32() != Magic) throw new InvalidModelFileException(path, "not a GGUF file (bad magic)");
            Version = r.U32();
            if (Version is not (2 or 3)) throw new InvalidModelFileException(path, $"GGUF version {Version} is not supported (2 and 3 are)");
            ulong tensorCount = r.U64();
            ulong kvCount = r.U64();
            // Each KV pair takes at least 8+1+4 bytes, each tensor entry at least 8+1+4+8+4+8.
            if (kvCount > (ulong)(size / 13)) throw r.Fail($"metadata count {kvCount} is larger than the file can hold");
            if (tensorCount > (ulong)(size / 33)) throw r.Fail($"tensor count {tensorCount} is larger than the file can hold");
            // Real models have thousands of tensors and dozens of keys; the caps keep a consistent but hostile file
            // (every byte a tiny entry) from costing many times its size in managed objects.
            if (kvCount > MaxMetadataCount) throw r.Fail($"metadata count {kvCount} is absurd (at most {MaxMetadataCount})");
            if (tensorCount > MaxTensorCount) throw r.Fail($"tensor count {tensorCount} is absurd (at most {MaxTensorCount})");

            var meta = new Dictionary<string, object>(StringComparer.Ordinal);
            var types = new Dictionary<string, (GgufValueType, GgufValueType)>(StringComparer.Ordinal);
            for (ulong i = 0; i < kvCount; i++)
            {
                string key = r.String();
                var type = (GgufValueType)r.U32();
                var elementType = type == GgufValueType.Array ? r.PeekArrayElementType() : type;
                long valueAt = r.Position;
                object value = r.Value(type, depth: 0, key);
                // Read (and so validated) in full here, but large arrays (the tokenizer's tokens, scores, types and
                // merges) are not kept: a model holds its file open for life and most users never need them, so they
                // are decoded again from the mapping when asked for.
                if (value is Array { Length: >= LazyArrayLength }) value = new DeferredArray(type, valueAt);
                if (!meta.TryAdd(key, value)) throw r.Fail($"duplicate metadata key '{key}'");
                types[key] = (type, elementType);
            }
            Metadata = new MetadataView(this, meta);
            MetadataTypes = types;

            int alignment = DefaultAlignment;
            if (meta.TryGetValue("general.alignment", out var a))
            {
                long al = a is long l ? l : a is ulong ul && ul < int.MaxValue ? (long)ul : -1;
                if (al <= 0 || al > 1 << 20 || (al & (al - 1)) != 0) throw r.Fail($"general.alignment {a} is not a power of two");
                alignment = (int)al;
            }
            Alignment = alignment;

            // The count was bounded by the file size, but a large file could still claim millions: grow as we read.
            var pending = new List<(string name, uint ggml, long[] shape, ulong offset)>((int)Math.Min(tensorCount, 4096));
            for (ulong i = 0; i < tensorCount; i++)
            {
                string name = r.String();
                uint nDims = r.U32();
                if (nDims is 0 or > 4) throw r.Fail($"tensor '{name}' has {nDims} dimensions (1..4 allowed)");
                var ne = new long[nDims];
                for (int d = 0; d < nDims; d++)
                {
                    ulong v = r.U64();
                    if (v == 0 || v > int.MaxValue) throw r.Fail($"tensor '{name}' has dimension {v} out of range");
                    ne[d] = (long)v;
                }
                uint ggml = r.U32();
                ulong offset = r.U64();
                Array.Reverse(ne); // GGUF lists the fastest-varying dimension first
                pending.Add((name, ggml, ne, offset));
            }
            // Vocabulary-only files end right after the header, without padding, so only files with tensors need it.
            long dataStart = AlignUp(r.Position, alignment);
            if (tensorCount > 0 && dataStart > size) throw r.Fail("tensor data section starts past the end of the file");
            DataStart = dataStart;

            // The header has been read; these checks are about its values, so no byte position is given.
            InvalidModelFileException Bad(string what) => new(path, what);
            var tensors = new List<GgufTensor>(pending.Count);
            _byName = new Dictionary<string, GgufTensor>(StringComparer.Ordinal);
            foreach (var (name, ggml, shape, offset) in pending)
            {
                if (!GgmlType.TryToTensorType(ggml, out var tt))
                    throw new InvalidModelFileException(path, $"tensor '{name}' has GGML type {ggml}, which is not supported ({GgmlType.SupportedNames} are)");
                long elements = 1;
                foreach (var d in shape)
                {
                    // Checked before multiplying: 2^40 elements times a 2^31 dimension would overflow a long.
                    if (d > (1L << 40) / elements) throw Bad($"tensor '{name}' has too many elements");
                    elements *= d;
                }
                long bytes = TensorTypeInfo.ByteSize(tt, elements);
                if (bytes < 0) throw Bad($"tensor '{name}' with {elements} elements is not a whole number of {tt} blocks");
                int block = TensorTypeInfo.BlockSize(tt);
                if (shape[^1] % block != 0) throw Bad($"tensor '{name}' rows are not a multiple of {block} ({tt})");
                if (offset % (ulong)alignment != 0) throw Bad($"tensor '{name}' offset {offset} is not aligned to {alignment}");
                if (offset > (ulong)size || (long)offset > size - dataStart || bytes > size - dataStart - (long)offset)
                    throw Bad($"tensor '{name}' data ({bytes} bytes at offset {offset}) runs past the end of the file");
                var t = new GgufTensor(name, tt, shape, dataStart + (long)offset, bytes);
                if (!_byName.TryAdd(name, t)) throw Bad($"duplicate tensor name '{name}'");
                tensors.Add(t);
            }
            Tensors = tensors;
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    public static long AlignUp(long x, int alignment) => (x + alignment - 1) / alignment * alignment;

    /// <summary>Opens and validates a GGUF file. Throws <see cref="InvalidModelFileException"/> on any problem.</summary>
    public static GgufFile Open(string path)
    {
        var file = MappedFile.Open(path);
        if (file.Length < 24)
        {
            file.Dispose();
            throw new InvalidModelFileException(path, "file is too short to be GGUF");
        }
        return new GgufFile(file);
    }

    /// <summary>Start of the read-only, file-backed mapping of the whole file (<see cref="FileSize"/> bytes).</summary>
    internal byte* Base
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _base;
        }
    }

    public bool TryGetTensor(string name, out GgufTensor tensor) => _byName.TryGetValue(name, out tensor!);

    public ReadOnlySpan<byte> GetBytes(GgufTensor t)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (t.ByteSize > int.MaxValue) throw new InvalidOperationException($"tensor '{t.Name}' is over 2 GiB; use GetPointer");
        return new ReadOnlySpan<byte>(_base + t.DataOffset, (int)t.ByteSize);
    }

    public byte* GetPointer(GgufTensor t)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _base + t.DataOffset;
    }

    // ---- typed metadata access ----

    public bool Has(string key) => Metadata.ContainsKey(key);

    public string? GetString(string key) => Metadata.TryGetValue(key, out var v) ? v as string : null;

    /// <summary>An integer metadata value, or <paramref name="fallback"/> when absent. Throws when present with another type.</summary>
    public long GetInt(string key, long fallback)
    {
        if (!Metadata.TryGetValue(key, out var v)) return fallback;
        return v switch
        {
            long l => l,
            ulong u when u <= long.MaxValue => (long)u,
            _ => throw new InvalidModelFileException(Path, $"metadata '{key}' should be an integer, found {Describe(v)}"),
        };
    }

    public long RequireInt(string key)
    {
        if (!Metadata.ContainsKey(key)) throw new InvalidModelFileException(Path, $"metadata '{key}' is missing");
        return GetInt(key, 0);
    }

    public double GetFloat(string key, double fallback)
    {
        if (!Metadata.TryGetValue(key, out var v)) return fallback;
        return v switch
        {
            double d => d,
            long l => l,
            _ => throw new InvalidModelFileException(Path, $"metadata '{key}' should be a number, found {Describe(v)}"),
        };
    }

    public bool GetBool(string key, bool fallback) =>
        Metadata.TryGetValue(key, out var v) ? v as bool? ?? throw new InvalidModelFileException(Path, $"metadata '{key}' should be a bool") : fallback;

    public T[]? GetArray<T>(string key)
    {
        if (!Metadata.TryGetValue(key, out var v)) return null;
        return v as T[] ?? throw new InvalidModelFileException(Path, $"metadata '{key}' should be an array of {typeof(T).Name}, found {Describe(v)}");
    }

    public static string Describe(object v) => v switch
    {
        Array a => $"array[{a.Length}] of {a.GetType().GetElementType()!.Name}",
        _ => v.GetType().Name,
    };

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _file.Dispose();
    }

    /// <summary>Where a large metadata array is in the file (it was read and validated once at open).</summary>
    private sealed record DeferredArray(GgufValueType Type, long Position);

    private object Decode(string key, object stored)
    {
        if (stored is not DeferredArray deferred) return stored;
        ObjectDisposedException.ThrowIf(_disposed, this);
        var r = new Reader(Path, _base, FileSize) { Position = deferred.Position };
        return r.Value(deferred.Type, depth: 0, key);
    }

    /// <summary>The metadata dictionary, decoding deferred arrays as they are read (order of the file kept).</summary>
    private sealed class MetadataView(GgufFile file, Dictionary<string, object> stored) : IReadOnlyDictionary<string, object>
    {
        public object this[string key] => file.Decode(key, stored[key]);
        public IEnumerable<string> Keys => stored.Keys;
        public IEnumerable<object> Values
        {
            get { foreach (var (key, value) in stored) yield return file.Decode(key, value); }
        }
        public int Count => stored.Count;
        public bool ContainsKey(string key) => stored.ContainsKey(key);

        public bool TryGetValue(string key, [System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out object value)
        {
            if (!stored.TryGetValue(key, out var v)) { value = null; return false; }
            value = file.Decode(key, v);
            return true;
        }

        public IEnumerator<KeyValuePair<string, object>> GetEnumerator()
        {
            foreach (var (key, value) in stored) yield return new(key, file.Decode(key, value));
        }

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }

    /// <summary>Bounds-checked little-endian cursor over the mapped file.</summary>
    private static readonly UTF8Encoding StrictUtf8 = new(false, true);

    private struct Reader(string path, byte* basePtr, long size)
    {
        public long Position;
        private long _elementsRead;

        public readonly InvalidModelFileException Fail(string what) => new(path, $"{what} (at byte {Position})");

        private void Need(long n)
        {
            if (n < 0 || Position > size - n) throw Fail("file is truncated");
        }

        public readonly GgufValueType PeekArrayElementType()
        {
            if (Position > size - 4) throw Fail("file is truncated");
            return (GgufValueType)(*(uint*)(basePtr + Position));
        }

        public uint U32() { Need(4); uint v = *(uint*)(basePtr + Position); Position += 4; return v; }
        public ulong U64() { Need(8); ulong v = *(ulong*)(basePtr + Position); Position += 8; return v; }

        public string String()
        {
            ulong len = U64();
            if (len > (ulong)(size - Position)) throw Fail($"string length {len} runs past the end of the file");
            if (len > 1 << 24) throw Fail($"string length {len} is absurd");
            string s;
            try
            {
                s = StrictUtf8.GetString(basePtr + Position, (int)len);
            }
            catch (DecoderFallbackException)
            {
                throw Fail("string is not valid UTF-8");
            }
            Position += (long)len;
            return s;
        }

        private static int ScalarSize(GgufValueType t) => t switch
        {
            GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
            GgufValueType.UInt16 or GgufValueType.Int16 => 2,
            GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32 => 4,
            GgufValueType.UInt64 or GgufValueType.Int64 or GgufValueType.Float64 => 8,
            _ => 0,
        };

        private object Scalar(GgufValueType t, string key)
        {
            int n = ScalarSize(t);
            if (n == 0) throw Fail($"metadata '{key}' has unknown value type {(uint)t}");
            Need(n);
            byte* p = basePtr + Position;
            Position += n;
            return t switch
            {
                GgufValueType.UInt8 => (long)*p,
                GgufValueType.Int8 => (long)*(sbyte*)p,
                GgufValueType.UInt16 => (long)*(ushort*)p,
                GgufValueType.Int16 => (long)*(short*)p,
                GgufValueType.UInt32 => (long)*(uint*)p,
                GgufValueType.Int32 => (long)*(int*)p,
                GgufValueType.Float32 => (double)*(float*)p,
                GgufValueType.Bool => *p != 0,
                GgufValueType.UInt64 => *(ulong*)p <= long.MaxValue ? (long)*(ulong*)p : (object)*(ulong*)p,
                GgufValueType.Int64 => *(long*)p,
                GgufValueType.Float64 => *(double*)p,
                _ => throw Fail($"metadata '{key}' has unknown value type {(uint)t}"),
            };
        }

        public object Value(GgufValueType t, int depth, string key)
        {
            if (t == GgufValueType.String) return String();
            if (t != GgufValueType.Array) return Scalar(t, key);
            if (depth > 0) throw Fail($"metadata '{key}' nests arrays, which is not supported");
            var et = (GgufValueType)U32();
            ulong count = U64();
            int es = et == GgufValueType.String ? 8 : ScalarSize(et);
            if (et == GgufValueType.Array) throw Fail($"metadata '{key}' nests arrays, which is not supported");
            if (es == 0) throw Fail($"metadata '{key}' has unknown element type {(uint)et}");
            if (count > (ulong)((size - Position) / es)) throw Fail($"metadata '{key}' array count {count} runs past the end of the file");
            if (count > MaxArrayLength) throw Fail($"metadata '{key}' array count {count} is absurd (at most {MaxArrayLength})");
            _elementsRead += (long)count;
            if (_elementsRead > MaxMetadataElements) throw Fail($"metadata arrays hold more than {MaxMetadataElements} elements in all");
            int n = (int)count;
            switch (et)
            {
                case GgufValueType.String:
                {
                    // Grown as strings are actually read: the count passed the size check at 8 bytes a string, but
                    // a lying count must fail on the first bad length, not after allocating for all of them.
                    var list = new List<string>(Math.Min(n, 1 << 16));
                    for (int i = 0; i < n; i++) list.Add(String());
                    return list.ToArray();
                }
                case GgufValueType.Float32 or GgufValueType.Float64:
                {
                    var a = new double[n];
                    for (int i = 0; i < n; i++) a[i] = (double)Scalar(et, key);
                    return a;
                }
                case GgufValueType.Bool:
                {
                    var a = new bool[n];
                    for (int i = 0; i < n; i++) a[i] = (bool)Scalar(et, key);
                    return a;
                }
                default:
                {
                    var a = new long[n];
                    for (int i = 0; i < n; i++)
                    {
                        var v = Scalar(et, key);
                        a[i] = v is long l ? l : throw Fail($"metadata '{key}' has a value past Int64");
                    }
                    return a;
                }
            }
        }
    }
}
