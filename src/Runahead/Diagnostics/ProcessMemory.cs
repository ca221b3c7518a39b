using System.Globalization;

namespace Runahead.Diagnostics;

/// <summary>
/// Where this process's resident memory is at one moment, from the kernel's view (/proc/self/status and
/// /proc/self/smaps) and the garbage collector's. Linux only; elsewhere every kernel figure is -1.
/// A diagnostic for `bench prefill --memory-detail`: reading smaps walks every mapping, a few milliseconds.
/// </summary>
public sealed record ProcessMemory
{
    /// <summary>Peak resident set of the process's life so far (VmHWM).</summary>
    public long PeakRssBytes { get; init; } = -1;
    public long RssBytes { get; init; } = -1;
    /// <summary>Anonymous resident memory: managed heap, native heap, JIT code, thread stacks.</summary>
    public long RssAnonBytes { get; init; } = -1;
    /// <summary>Resident pages of mapped files: the model file, the runtime's libraries and assemblies.</summary>
    public long RssFileBytes { get; init; } = -1;
    public long RssShmemBytes { get; init; } = -1;
    /// <summary>Resident pages of the mapping of <see cref="MappedFile"/> (0 if it is not mapped or not given).</summary>
    public long MappedFileRssBytes { get; init; } = -1;
    /// <summary>Resident pages of all other file mappings (runtime libraries, assemblies, ICU data).</summary>
    public long OtherFileRssBytes { get; init; } = -1;
    /// <summary>Resident pages of thread stacks the kernel labels as such ([stack] of the main thread only).</summary>
    public long MainStackRssBytes { get; init; } = -1;
    public int Threads { get; init; } = -1;
    /// <summary>Bytes the garbage collector had committed at its last collection (heap, pinned arrays, free space it keeps).</summary>
    public long GcCommittedBytes { get; init; }
    /// <summary>Bytes of live and not yet collected objects after the last collection plus allocations since.</summary>
    public long GcHeapBytes { get; init; }
    public string? MappedFile { get; init; }

    /// <summary>
    /// Anonymous memory that is not the managed heap: the runtime's native heap, loader heaps, GC bookkeeping, thread
    /// stacks. An estimate: the GC's committed figure dates from its last collection, so the heap is taken as the
    /// larger of that and the bytes allocated since (<see cref="GcHeapBytes"/>).
    /// </summary>
    public long NativeAnonBytes => RssAnonBytes < 0 ? -1 : Math.Max(0, RssAnonBytes - Math.Max(GcCommittedBytes, GcHeapBytes));

    /// <summary>Reads the figures now; <paramref name="mappedFile"/> names a file whose mapping is counted apart.</summary>
    public static ProcessMemory Read(string? mappedFile = null)
    {
        var gc = GC.GetGCMemoryInfo();
        var result = new ProcessMemory
        {
            GcCommittedBytes = gc.TotalCommittedBytes,
            GcHeapBytes = GC.GetTotalMemory(forceFullCollection: false),
            MappedFile = mappedFile,
        };
        if (!OperatingSystem.IsLinux()) return result;
        var status = ParseStatus(File.ReadAllLines("/proc/self/status"));
        var smaps = ParseSmaps(File.ReadLines("/proc/self/smaps"), mappedFile is null ? null : Path.GetFullPath(mappedFile));
        return result with
        {
            PeakRssBytes = status.GetValueOrDefault("VmHWM", -1),
            RssBytes = status.GetValueOrDefault("VmRSS", -1),
            RssAnonBytes = status.GetValueOrDefault("RssAnon", -1),
            RssFileBytes = status.GetValueOrDefault("RssFile", -1),
            RssShmemBytes = status.GetValueOrDefault("RssShmem", -1),
            Threads = (int)status.GetValueOrDefault("Threads", -1),
            MappedFileRssBytes = smaps.Mapped,
            OtherFileRssBytes = smaps.OtherFiles,
            MainStackRssBytes = smaps.Stack,
        };
    }

    /// <summary>VmHWM alone (cheap: no smaps walk); -1 off Linux.</summary>
    public static long ReadPeakRss()
    {
        if (!OperatingSystem.IsLinux()) return -1;
        return ParseStatus(File.ReadAllLines("/proc/self/status")).GetValueOrDefault("VmHWM", -1);
    }

    /// <summary>
    /// /proc/self/smaps_rollup as bytes per field (Rss, Pss, Shared_Clean, Private_Dirty, Anonymous, ...): the totals over
    /// every mapping, which say how much of the resident memory other processes share; empty off Linux.
    /// </summary>
    public static IReadOnlyDictionary<string, long> ReadSmapsRollup() =>
        OperatingSystem.IsLinux() ? ParseStatus(File.ReadAllLines("/proc/self/smaps_rollup")) : new Dictionary<string, long>();

    /// <summary>
    /// "Name: value kB" lines as bytes ("Threads" and other unit-less values as plain counts): the format of
    /// /proc/self/status and of smaps_rollup's field lines (its header line has no colon-separated number and is skipped).
    /// </summary>
    internal static Dictionary<string, long> ParseStatus(IEnumerable<string> lines)
    {
        var values = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var line in lines)
        {
            int colon = line.IndexOf(':');
            if (colon <= 0) continue;
            var rest = line.AsSpan(colon + 1).Trim();
            bool kb = rest.EndsWith(" kB", StringComparison.Ordinal);
            if (kb) rest = rest[..^3].TrimEnd();
            if (long.TryParse(rest, NumberStyles.None, CultureInfo.InvariantCulture, out long v))
                values[line[..colon]] = kb ? v * 1024 : v;
        }
        return values;
    }

    /// <summary>Resident bytes of the mapping of <paramref name="mappedFile"/>, of other files and of [stack].</summary>
    internal static (long Mapped, long OtherFiles, long Stack) ParseSmaps(IEnumerable<string> lines, string? mappedFile)
    {
        long mapped = 0, other = 0, stack = 0;
        // Header lines look like "start-end perms offset dev inode [path]"; field lines like "Rss:   12 kB".
        int kind = 0; // 0 anonymous or special, 1 the mapped file, 2 another file, 3 the main stack
        foreach (var line in lines)
        {
            if (line.Length == 0) continue;
            if (IsHeader(line, out var path))
            {
                kind = path.Length == 0 ? 0
                    : path.SequenceEqual("[stack]") ? 3
                    : path[0] != '/' ? 0
                    : mappedFile is not null && path.SequenceEqual(mappedFile) ? 1 : 2;
                continue;
            }
            if (kind == 0 || !line.StartsWith("Rss:", StringComparison.Ordinal)) continue;
            long bytes = ParseKb(line.AsSpan(4));
            if (kind == 1) mapped += bytes;
            else if (kind == 2) other += bytes;
            else stack += bytes;
        }
        return (mapped, other, stack);
    }

    private static bool IsHeader(string line, out ReadOnlySpan<char> path)
    {
        path = default;
        int dash = line.IndexOf('-');
        int space = line.IndexOf(' ');
        if (dash <= 0 || space <= dash || !IsHex(line.AsSpan(0, dash))) return false;
        // Five fields before the path; the path may itself hold spaces.
        var rest = line.AsSpan();
        for (int field = 0; field < 5; field++)
        {
            int s = rest.IndexOf(' ');
            if (s < 0) { path = default; return true; }
            rest = rest[(s + 1)..].TrimStart(' ');
        }
        path = rest.TrimEnd();
        return true;
    }

    private static bool IsHex(ReadOnlySpan<char> s)
    {
        foreach (char c in s) if (!char.IsAsciiHexDigit(c)) return false;
        return s.Length > 0;
    }

    private static long ParseKb(ReadOnlySpan<char> s)
    {
        s = s.Trim();
        if (s.EndsWith(" kB", StringComparison.Ordinal)) s = s[..^3].TrimEnd();
        return long.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out long v) ? v * 1024 : 0;
    }
}
