using System.IO.MemoryMappedFiles;

namespace Runahead.Numerics;

/// <summary>
/// A read-only memory mapping of a packed-weight cache file that <see cref="LinearWeight"/>s run from. Every process
/// mapping the same file shares its pages through the page cache, so P ranks hold one copy of the panels, not P.
/// A builder creates the object before the file exists and binds it once the file is complete (weights made in
/// between refuse to run until then). Weights take a reference for the length of each product, so disposing the
/// mapping while a GEMM still reads it waits for nothing and frees nothing early: the pages go when the last user is done.
/// </summary>
internal sealed unsafe class MappedPanels : IDisposable
{
    private MemoryMappedFile? _file;
    private MemoryMappedViewAccessor? _view;
    private byte* _base;
    private long _length;

    public string? Path { get; private set; }
    public long Length => _length;
    public bool IsBound => _view is not null;

    /// <summary>Maps <paramref name="path"/> read-only; its pages are page-aligned, so 64-byte-aligned offsets stay aligned.</summary>
    public static MappedPanels Open(string path)
    {
        var mapping = new MappedPanels();
        mapping.Bind(path);
        return mapping;
    }

    /// <summary>Unbound: a builder's weights point here until <see cref="Bind"/> maps the finished file.</summary>
    public static MappedPanels CreateUnbound() => new();

    public void Bind(string path)
    {
        if (_view is not null) throw new InvalidOperationException("the mapping is already bound");
        long length = new FileInfo(path).Length;
        if (length == 0) throw new IOException($"{path} is empty");
        var file = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        try
        {
            var view = file.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read);
            byte* p = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
            _base = p + view.PointerOffset;
            _view = view;
            _file = file;
            _length = length;
            Path = path;
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>The mapped bytes (only while the mapping is alive; for validation and tests).</summary>
    public ReadOnlySpan<byte> Bytes(long offset, long length)
    {
        if (_view is null) throw new InvalidOperationException("the packed-weight mapping is not bound to a file yet");
        if (offset < 0 || length < 0 || offset + length > _length || length > int.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(offset), $"[{offset}, +{length}) is outside the {_length}-byte mapping");
        return new ReadOnlySpan<byte>(_base + offset, (int)length);
    }

    /// <summary>Start of the mapping, held until <see cref="Release"/>: the pages cannot be unmapped in between.</summary>
    public byte* Acquire()
    {
        var view = _view ?? throw new InvalidOperationException("the packed-weight mapping is not bound to a file yet");
        bool added = false;
        // Throws ObjectDisposedException once the model (and with it the mapping) was disposed.
        view.SafeMemoryMappedViewHandle.DangerousAddRef(ref added);
        return _base;
    }

    public void Release() => _view!.SafeMemoryMappedViewHandle.DangerousRelease();

    public void Dispose()
    {
        if (_view is { } view)
        {
            view.SafeMemoryMappedViewHandle.ReleasePointer();
            view.Dispose();
        }
        _file?.Dispose();
    }
}
