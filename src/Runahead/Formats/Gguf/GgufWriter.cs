using System.Buffers.Binary;
using System.Text;

namespace Runahead.Formats.Gguf;

/// <summary>Writes one tensor's data, exactly <see cref="TensorInfo.ByteSize"/> bytes, to the output stream.</summary>
public delegate void GgufTensorDataWriter(Stream destination);

/// <summary>
/// Builds a GGUF v3 file: metadata of every GGUF type, then tensors whose data is either given as bytes or streamed
/// by a callback while the file is written, so a multi-gigabyte model never has to be in memory at once. The file
/// is written to a temporary name beside the target and renamed into place only when complete.
/// </summary>
public sealed class GgufWriter
{
    private readonly record struct MetadataEntry(string Key, GgufValueType Type, GgufValueType ElementType, object Value);

    private readonly record struct PendingTensor(TensorInfo Info, GgufTensorDataWriter Write);

    private readonly List<MetadataEntry> _metadata = new();
    private readonly Dictionary<string, int> _metadataIndex = new(StringComparer.Ordinal);
    private readonly List<PendingTensor> _tensors = new();
    private readonly HashSet<string> _tensorNames = new(StringComparer.Ordinal);

    public int Alignment { get; }

    public GgufWriter(int alignment = GgufFile.DefaultAlignment)
    {
        if (alignment <= 0 || (alignment & (alignment - 1)) != 0) throw new ArgumentOutOfRangeException(nameof(alignment), "must be a power of two");
        Alignment = alignment;
        if (alignment != GgufFile.DefaultAlignment) AddUInt32("general.alignment", (uint)alignment);
    }

    public IReadOnlyList<TensorInfo> Tensors => _tensors.ConvertAll(t => t.Info);

    // ---- metadata: a later value for the same key replaces the earlier one ----

    private void Set(string key, GgufValueType type, GgufValueType elementType, object value)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        var e = new MetadataEntry(key, type, elementType, value);
        if (_metadataIndex.TryGetValue(key, out int i)) _metadata[i] = e;
        else
        {
            _metadataIndex[key] = _metadata.Count;
            _metadata.Add(e);
        }
    }

    public bool HasMetadata(string key) => _metadataIndex.ContainsKey(key);

    public void AddUInt8(string key, byte v) => Set(key, GgufValueType.UInt8, GgufValueType.UInt8, (long)v);
    public void AddInt8(string key, sbyte v) => Set(key, GgufValueType.Int8, GgufValueType.Int8, (long)v);
    public void AddUInt16(string key, ushort v) => Set(key, GgufValueType.UInt16, GgufValueType.UInt16, (long)v);
    public void AddInt16(string key, short v) => Set(key, GgufValueType.Int16, GgufValueType.Int16, (long)v);
    public void AddUInt32(string key, uint v) => Set(key, GgufValueType.UInt32, GgufValueType.UInt32, (long)v);
    public void AddInt32(string key, int v) => Set(key, GgufValueType.Int32, GgufValueType.Int32, (long)v);
    public void AddUInt64(string key, ulong v) => Set(key, GgufValueType.UInt64, GgufValueType.UInt64, v);
    public void AddInt64(string key, long v) => Set(key, GgufValueType.Int64, GgufValueType.Int64, v);
    public void AddFloat32(string key, float v) => Set(key, GgufValueType.Float32, GgufValueType.Float32, (double)v);
    public void AddFloat64(string key, double v) => Set(key, GgufValueType.Float64, GgufValueType.Float64, v);
    public void AddBool(string key, bool v) => Set(key, GgufValueType.Bool, GgufValueType.Bool, v);
    public void AddString(string key, string v) => Set(key, GgufValueType.String, GgufValueType.String, v ?? throw new ArgumentNullException(nameof(v)));

    public void AddStringArray(string key, IReadOnlyList<string> values) => Set(key, GgufValueType.Array, GgufValueType.String, ToArray(values));
    public void AddFloat32Array(string key, IReadOnlyList<float> values)
    {
        var a = new double[values.Count];
        for (int i = 0; i < a.Length; i++) a[i] = values[i];
        Set(key, GgufValueType.Array, GgufValueType.Float32, a);
    }
    public void AddInt32Array(string key, IReadOnlyList<int> values)
    {
        var a = new long[values.Count];
        for (int i = 0; i < a.Length; i++) a[i] = values[i];
        Set(key, GgufValueType.Array, GgufValueType.Int32, a);
    }

    /// <summary>
    /// Adds a value in the boxed form <see cref="GgufFile.Metadata"/> uses (long/ulong, double, bool, string, or
    /// long[]/double[]/bool[]/string[] for arrays), stored as <paramref name="type"/> (and
    /// <paramref name="elementType"/> for arrays). Used to copy metadata from one GGUF file to another unchanged.
    /// </summary>
    public void AddValue(string key, GgufValueType type, GgufValueType elementType, object value)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (type == GgufValueType.Array)
        {
            bool ok = elementType switch
            {
                GgufValueType.String => value is string[],
                GgufValueType.Float32 or GgufValueType.Float64 => value is double[],
                GgufValueType.Bool => value is bool[],
                GgufValueType.Array => false,
                _ => value is long[],
            };
            if (!ok) throw new ArgumentException($"metadata '{key}': {value.GetType().Name} cannot be stored as an array of {elementType}");
        }
        else if (!FitsScalar(type, value))
            throw new ArgumentException($"metadata '{key}': {value} cannot be stored as {type}");
        Set(key, type, type == GgufValueType.Array ? elementType : type, value);
    }

    private static bool FitsScalar(GgufValueType type, object v) => type switch
    {
        GgufValueType.String => v is string,
        GgufValueType.Bool => v is bool,
        GgufValueType.Float32 or GgufValueType.Float64 => v is double,
        GgufValueType.UInt64 => v is ulong || v is long l && l >= 0,
        GgufValueType.UInt8 => v is long l && l is >= 0 and <= byte.MaxValue,
        GgufValueType.Int8 => v is long l && l is >= sbyte.MinValue and <= sbyte.MaxValue,
        GgufValueType.UInt16 => v is long l && l is >= 0 and <= ushort.MaxValue,
        GgufValueType.Int16 => v is long l && l is >= short.MinValue and <= short.MaxValue,
        GgufValueType.UInt32 => v is long l && l is >= 0 and <= uint.MaxValue,
        GgufValueType.Int32 => v is long l && l is >= int.MinValue and <= int.MaxValue,
        GgufValueType.Int64 => v is long,
        _ => false,
    };

    private static string[] ToArray(IReadOnlyList<string> values)
    {
        var a = new string[values.Count];
        for (int i = 0; i < a.Length; i++) a[i] = values[i] ?? throw new ArgumentException("null string in array");
        return a;
    }

    // ---- tensors ----

    /// <summary>Adds a tensor whose bytes are known now (row-major shape, outermost first).</summary>
    public void AddTensor(string name, TensorType type, long[] shape, ReadOnlyMemory<byte> data)
    {
        var info = MakeInfo(name, type, shape);
        if (data.Length != info.ByteSize)
            throw new ArgumentException($"tensor '{name}': {data.Length} bytes given, shape {info.ShapeText} of {type} needs {info.ByteSize}");
        Add(info, s => s.Write(data.Span));
    }

    /// <summary>Adds a tensor whose bytes <paramref name="write"/> produces while the file is being written.</summary>
    public void AddTensor(string name, TensorType type, long[] shape, GgufTensorDataWriter write)
    {
        ArgumentNullException.ThrowIfNull(write);
        Add(MakeInfo(name, type, shape), write);
    }

    private static TensorInfo MakeInfo(string name, TensorType type, long[] shape)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (shape.Length is 0 or > 4) throw new ArgumentException($"tensor '{name}' must have 1 to 4 dimensions");
        foreach (var d in shape) if (d <= 0) throw new ArgumentException($"tensor '{name}' has a non-positive dimension");
        var info = new TensorInfo(name, type, (long[])shape.Clone());
        if (info.ByteSize < 0) throw new ArgumentException($"tensor '{name}' is not a whole number of {type} blocks");
        int block = TensorTypeInfo.BlockSize(type);
        if (shape[^1] % block != 0) throw new ArgumentException($"tensor '{name}' rows are not a multiple of {block} ({type})");
        return info;
    }

    private void Add(TensorInfo info, GgufTensorDataWriter write)
    {
        if (!_tensorNames.Add(info.Name)) throw new ArgumentException($"tensor '{info.Name}' added twice");
        _tensors.Add(new PendingTensor(info, write));
    }

    // ---- output ----

    /// <summary>
    /// Writes the file to a temporary name beside <paramref name="path"/> and renames it into place when complete;
    /// on any failure the temporary file is removed and an existing <paramref name="path"/> is left untouched.
    /// </summary>
    public void Write(string path, CancellationToken cancellationToken = default)
    {
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full)!;
        if (!Directory.Exists(dir)) throw new RunaheadException($"{path}: folder {dir} does not exist");
        string temp = Path.Combine(dir, "." + Path.GetFileName(full) + "." + Guid.NewGuid().ToString("N")[..8] + ".tmp");
        try
        {
            using (var fs = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                WriteTo(fs, cancellationToken);
                fs.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        catch (Exception e)
        {
            try { File.Delete(temp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            if (e is IOException or UnauthorizedAccessException) throw new RunaheadException($"{path}: cannot write: {e.Message}", e);
            throw;
        }
    }

    /// <summary>Writes the whole file to a seekable or forward-only stream.</summary>
    public void WriteTo(Stream output, CancellationToken cancellationToken = default)
    {
        var w = new HeaderWriter(output);
        w.U32(GgufFile.Magic);
        w.U32(3);
        w.U64((ulong)_tensors.Count);
        w.U64((ulong)_metadata.Count);
        foreach (var m in _metadata)
        {
            w.String(m.Key);
            w.U32((uint)m.Type);
            if (m.Type == GgufValueType.Array) w.Array(m.ElementType, m.Value);
            else w.Scalar(m.Type, m.Value);
        }
        long offset = 0;
        foreach (var t in _tensors)
        {
            w.String(t.Info.Name);
            var shape = t.Info.Shape;
            w.U32((uint)shape.Length);
            for (int d = shape.Length - 1; d >= 0; d--) w.U64((ulong)shape[d]); // GGUF lists the fastest dimension first
            w.U32(GgmlType.FromTensorType(t.Info.Type));
            w.U64((ulong)offset);
            offset = GgufFile.AlignUp(offset + t.Info.ByteSize, Alignment);
        }
        w.Pad(Alignment);
        w.Flush();

        var counter = new CountingStream(output);
        foreach (var t in _tensors)
        {
            cancellationToken.ThrowIfCancellationRequested();
            long start = counter.Written;
            t.Write(counter);
            long written = counter.Written - start;
            if (written != t.Info.ByteSize)
                throw new InvalidOperationException($"tensor '{t.Info.Name}': writer produced {written} bytes, expected {t.Info.ByteSize}");
            long pad = GgufFile.AlignUp(written, Alignment) - written;
            if (pad > 0) counter.Write(new byte[pad]);
        }
    }

    /// <summary>Buffers the header (strings, scalars, arrays) in little-endian order.</summary>
    private sealed class HeaderWriter(Stream output)
    {
        private readonly MemoryStream _buffer = new();
        private readonly byte[] _scratch = new byte[8];
        private long _flushed;

        public void U32(uint v) { BinaryPrimitives.WriteUInt32LittleEndian(_scratch, v); _buffer.Write(_scratch, 0, 4); }
        public void U64(ulong v) { BinaryPrimitives.WriteUInt64LittleEndian(_scratch, v); _buffer.Write(_scratch, 0, 8); }

        public void String(string s)
        {
            var bytes = Encoding.UTF8.GetBytes(s);
            U64((ulong)bytes.Length);
            _buffer.Write(bytes);
        }

        public void Scalar(GgufValueType type, object v)
        {
            switch (type)
            {
                case GgufValueType.String: String((string)v); break;
                case GgufValueType.Bool: _buffer.WriteByte((bool)v ? (byte)1 : (byte)0); break;
                case GgufValueType.UInt8: _buffer.WriteByte((byte)(long)v); break;
                case GgufValueType.Int8: _buffer.WriteByte((byte)(sbyte)(long)v); break;
                case GgufValueType.UInt16: BinaryPrimitives.WriteUInt16LittleEndian(_scratch, (ushort)(long)v); _buffer.Write(_scratch, 0, 2); break;
                case GgufValueType.Int16: BinaryPrimitives.WriteInt16LittleEndian(_scratch, (short)(long)v); _buffer.Write(_scratch, 0, 2); break;
                case GgufValueType.UInt32: U32((uint)(long)v); break;
                case GgufValueType.Int32: U32((uint)(int)(long)v); break;
                case GgufValueType.UInt64: U64(v is ulong u ? u : (ulong)(long)v); break;
                case GgufValueType.Int64: U64((ulong)(long)v); break;
                case GgufValueType.Float32: BinaryPrimitives.WriteSingleLittleEndian(_scratch, (float)(double)v); _buffer.Write(_scratch, 0, 4); break;
                case GgufValueType.Float64: BinaryPrimitives.WriteDoubleLittleEndian(_scratch, (double)v); _buffer.Write(_scratch, 0, 8); break;
                default: throw new ArgumentOutOfRangeException(nameof(type));
            }
        }

        public void Array(GgufValueType elementType, object values)
        {
            U32((uint)elementType);
            var a = (System.Array)values;
            U64((ulong)a.Length);
            foreach (var item in a) Scalar(elementType, item);
            if (_buffer.Length > 1 << 22) Flush(); // vocabularies can be large; keep the buffer bounded
        }

        public void Pad(int alignment)
        {
            long position = _flushed + _buffer.Length;
            long pad = GgufFile.AlignUp(position, alignment) - position;
            for (long i = 0; i < pad; i++) _buffer.WriteByte(0);
        }

        public void Flush()
        {
            _buffer.Position = 0;
            _buffer.CopyTo(output);
            _flushed += _buffer.Length;
            _buffer.SetLength(0);
        }
    }

    /// <summary>Forward-only view of the output that counts bytes, so each tensor writer's output size is checked.</summary>
    private sealed class CountingStream(Stream inner) : Stream
    {
        public long Written { get; private set; }
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => Written; set => throw new NotSupportedException(); }
        public override void Flush() => inner.Flush();
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
        public override void Write(ReadOnlySpan<byte> buffer)
        {
            inner.Write(buffer);
            Written += buffer.Length;
        }
    }
}
