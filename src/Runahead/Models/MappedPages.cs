using System.Runtime.InteropServices;

namespace Runahead.Models;

/// <summary>
/// Gives pages of a read-only, file-backed shared mapping back to the kernel once their bytes have been copied
/// elsewhere. Every matrix is packed into its own arrays at load, so the mapped pages it was read from would otherwise
/// stay in the process's resident set beside the packed copy and roughly double peak memory. The call never loses
/// data on such a mapping: a later read faults the page in again from the file (or the page cache).
/// Only for file-backed mappings: on anonymous or heap memory MADV_DONTNEED would zero the bytes.
/// </summary>
internal static unsafe partial class MappedPages
{
    private const int MadvDontNeed = 4;

    [LibraryImport("libc", EntryPoint = "madvise", SetLastError = true)]
    private static partial int Madvise(nint address, nuint length, int advice);

    /// <summary>
    /// Releases the whole pages inside [start, start + length) (partial pages at either end are kept, as neighbouring
    /// tensors may still be read from them). Returns whether any page was released; a no-op off Linux.
    /// </summary>
    public static bool Release(byte* start, long length)
    {
        if (!OperatingSystem.IsLinux() || start == null || length <= 0) return false;
        long page = Environment.SystemPageSize;
        long first = ((long)start + page - 1) / page * page;
        long end = ((long)start + length) / page * page;
        if (end <= first) return false;
        // A failure (e.g. a kernel without the advice) only means the pages stay resident, so it is not an error.
        return Madvise((nint)first, (nuint)(end - first), MadvDontNeed) == 0;
    }

    /// <summary>
    /// Releases the pages near [start, start + length) within the region [regionStart, regionStart + regionLength):
    /// one read of a few bytes can map a whole large page-cache folio (up to 2 MiB) plus fault-around pages, so the
    /// window reaches <see cref="FolioReach"/> bytes to either side.
    /// </summary>
    public static bool ReleaseAround(byte* start, long length, byte* regionStart, long regionLength)
    {
        long lo = Math.Max((long)start - FolioReach, (long)regionStart);
        long hi = Math.Min((long)start + length + FolioReach, (long)regionStart + regionLength);
        return Release((byte*)lo, hi - lo);
    }

    /// <summary>The largest page-cache folio the kernel maps at once (a PMD, 2 MiB on x86-64 and arm64 with 4 KiB pages).</summary>
    private const long FolioReach = 2L << 20;
}
