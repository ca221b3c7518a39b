using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Runahead.Numerics;

/// <summary>
/// Per-thread scratch carved from one pinned array, every part starting on its own cache line and a guard line before
/// the first and after the last: separate small pinned arrays of two threads land next to each other on the pinned
/// heap and share lines (false sharing made two attention threads only 1.2-1.6x one thread).
/// </summary>
internal static unsafe class CacheLineBlock
{
    public const int Line = 64;

    /// <summary>Allocates <paramref name="block"/> (keep it referenced) and returns the start of each part, in order.</summary>
    public static byte*[] Carve(ReadOnlySpan<long> bytes, out byte[] block)
    {
        long total = 2 * Line;
        foreach (long n in bytes) total += (n + Line - 1) / Line * Line;
        block = GC.AllocateArray<byte>(checked((int)total + Line), pinned: true);
        byte* p = (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(block));
        p = (byte*)(((nint)p + Line - 1) & ~(nint)(Line - 1)) + Line;
        var parts = new byte*[bytes.Length];
        for (int i = 0; i < bytes.Length; i++)
        {
            parts[i] = p;
            p += (bytes[i] + Line - 1) / Line * Line;
        }
        return parts;
    }
}
