using System.IO.MemoryMappedFiles;

namespace Runahead.Formats;

/// <summary>
/// A read-only memory map of a whole file with a stable base pointer. Opening failures (missing file, permissions,
/// empty file) become <see cref="InvalidModelFileException"/> so callers never see raw IO exceptions.
/// </summary>
public sealed unsafe class MappedFile : IDisposable
{
    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private bool _disposed;

    public string Path { get; }
    public long Length { get; }
    public byte* Base { get; }

    private MappedFile(string path, MemoryMappedFile? map, MemoryMappedViewAccessor? view, byte* basePtr, long length)
    {
        Path = path;
        _map = map;
        _view = view;
        Base = basePtr;
        Length = length;
    }

    public static MappedFile Open(string path)
    {
        if (Directory.Exists(path)) throw new InvalidModelFileException(path, "is a folder, not a file");
        FileStream stream;
        try
        {
            // The size comes from the opened file, not from the path: a symlink's own size is not the model's.
            stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        }
        catch (FileNotFoundException)
        {
            throw new InvalidModelFileException(path, "file not found");
        }
        catch (DirectoryNotFoundException)
        {
            throw new InvalidModelFileException(path, "file not found");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidModelFileException(path, "cannot open: " + e.Message);
        }
        long size = stream.Length;
        if (size == 0)
        {
            stream.Dispose();
            throw new InvalidModelFileException(path, "file is empty");
        }
        MemoryMappedFile? map = null;
        MemoryMappedViewAccessor? view = null;
        try
        {
            map = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
            view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            byte* p = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
            p += view.PointerOffset;
            return new MappedFile(path, map, view, p, size);
        }
        catch (Exception e)
        {
            view?.Dispose();
            if (map != null) map.Dispose(); else stream.Dispose();
            throw new InvalidModelFileException(path, "cannot open: " + e.Message);
        }
    }

    public ReadOnlySpan<byte> Span(long offset, int length)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (offset < 0 || length < 0 || offset > Length - length) throw new ArgumentOutOfRangeException(nameof(offset));
        return new ReadOnlySpan<byte>(Base + offset, length);
    }

    public byte* Pointer(long offset)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return Base + offset;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_view != null)
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
        }
        _map?.Dispose();
    }
}
