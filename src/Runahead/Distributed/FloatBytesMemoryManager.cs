using System.Buffers;
using System.Runtime.InteropServices;

namespace Runahead.Distributed;

/// <summary>Views part of a float[] as bytes without copying, so float sends can share the byte path.</summary>
internal sealed class FloatBytesMemoryManager : MemoryManager<byte>
{
    private readonly float[] _array;
    private readonly int _offset;
    private readonly int _count;

    public FloatBytesMemoryManager(float[] array, int offset, int count)
    {
        _array = array;
        _offset = offset;
        _count = count;
    }

    public override Span<byte> GetSpan() => MemoryMarshal.AsBytes(_array.AsSpan(_offset, _count));

    public override unsafe MemoryHandle Pin(int elementIndex = 0)
    {
        // Each pin owns its own handle (released by MemoryHandle.Dispose), so concurrent pins never interfere.
        var handle = GCHandle.Alloc(_array, GCHandleType.Pinned);
        byte* start = (byte*)handle.AddrOfPinnedObject() + (long)_offset * sizeof(float) + elementIndex;
        return new MemoryHandle(start, handle);
    }

    public override void Unpin() { }

    protected override void Dispose(bool disposing) { }
}
