using System.Buffers.Binary;
using System.Diagnostics;
using System.Numerics;
using System.Runtime.Intrinsics.X86;
using System.Text;
using Runahead.Formats;
using Runahead.Generation;
using Runahead.Numerics;

namespace Runahead.Models;

/// <summary>
/// The packed panels of a model's linear weights in one file that every process loading the model maps read-only,
/// so ranks on one host share one copy of them instead of each packing its own.
/// <para>
/// The file is keyed by the model's identity (full path, size and modification time of its file(s), a hash of its
/// tensor table), the panel layout (format version, panel width, vector ISA, BF16 pairs or rows) and the code that packed it (the
/// assembly's MVID): any change gives another file name, and the full key is stored inside and compared on open.
/// Layout: a 64-byte header (magic, version, sizes, table hash), the panels of each weight at 4096-byte-aligned
/// offsets, then the table (key, and per weight: name, types, shape, offset, length, hash of its bytes). Opening
/// checks the header, the table and every weight's hash, so a truncated, corrupt or stale file is rebuilt, never used.
/// </para>
/// <para>
/// Writers pack into a temporary file and rename it over the final name (readers never see a partial file), while
/// holding a lock file, so concurrent loads build it once and the others map the builder's file.
/// </para>
/// </summary>
public static class PackedWeightCache
{
    // 2: BF16 weights may be stored in k pairs for the generated vdpbf16ps kernel (the key says which layout).
    internal const uint FormatVersion = 2;
    internal const int HeaderBytes = 64;
    // Page alignment (not just the 64 bytes the GEMM wants): each weight starts on its own page of the mapping.
    internal const int PanelAlignment = 4096;
    private const ulong Magic = 0x534C454E41504152; // "RAPANELS"
    private const string Extension = ".rapanels";

    /// <summary>$RUNAHEAD_SHARED_WEIGHTS_DIR (e.g. /dev/shm/runahead to keep the cache in memory), else "packed" in the cache folder.</summary>
    public static string DefaultFolder()
    {
        var env = Environment.GetEnvironmentVariable("RUNAHEAD_SHARED_WEIGHTS_DIR");
        return !string.IsNullOrEmpty(env) ? env : Path.Combine(DefaultModel.CacheFolder(), "packed");
    }

    /// <summary>The cache file <paramref name="source"/>'s weights use in <paramref name="folder"/>, or null when the source is not a file or folder on disk.</summary>
    public static string? CachePath(IWeightSource source, string folder)
    {
        ArgumentNullException.ThrowIfNull(source);
        var key = KeyFor(source);
        return key is null ? null : Path.Combine(folder, FileNameFor(source, key));
    }

    /// <summary>The cache file of the model at <paramref name="modelPath"/> (any format <see cref="WeightSources.Open"/> reads).</summary>
    public static string? CachePath(string modelPath, string folder)
    {
        using var source = WeightSources.Open(modelPath);
        return CachePath(source, folder);
    }

    internal sealed class Outcome<T>(T value, MappedPanels? mapping, SharedWeightsStatus status)
    {
        public T Value { get; } = value;
        public MappedPanels? Mapping { get; } = mapping;
        public SharedWeightsStatus Status { get; } = status;
    }

    /// <summary>
    /// Runs <paramref name="build"/> (which reads every linear weight through the reader it gets) with weights from
    /// the cache: mapped from a valid file, else packed into a new one. Any problem with the cache itself (a folder
    /// that cannot be written, a lock held too long) falls back to private packing and says why in the status.
    /// </summary>
    internal static Outcome<T> Load<T>(IWeightSource source, string folder, TimeSpan lockTimeout, Func<WeightReader, T> build)
    {
        var key = KeyFor(source);
        if (key is null) return Private(source, build, null, $"{source.SourcePath} is not a file or folder on disk");
        var path = Path.Combine(folder, FileNameFor(source, key));
        string? rejected = null;
        if (File.Exists(path) && TryMapped(source, path, key, build, out var found, out rejected)) return found!;
        FileStream? lockFile;
        try
        {
            Directory.CreateDirectory(folder);
            lockFile = AcquireLock(path + ".lock", lockTimeout);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Private(source, build, path, $"cannot use the cache folder {folder}: {e.Message}");
        }
        if (lockFile is null)
            return Private(source, build, path, $"another process held {path}.lock for over {lockTimeout.TotalSeconds:0} s");
        using (lockFile)
        {
            // Whoever held the lock may just have built it.
            string? rejectedAgain = null;
            if (File.Exists(path) && TryMapped(source, path, key, build, out found, out rejectedAgain)) return found!;
            return Build(source, path, key, build, rejectedAgain ?? rejected);
        }
    }

    private static Outcome<T> Private<T>(IWeightSource source, Func<WeightReader, T> build, string? path, string note) =>
        new(build(new WeightReader(source)), null, new SharedWeightsStatus(false, path, false, note));

    private static bool TryMapped<T>(IWeightSource source, string path, string key, Func<WeightReader, T> build,
        out Outcome<T>? outcome, out string? rejected)
    {
        outcome = null;
        MappedPanels mapping;
        try
        {
            mapping = MappedPanels.Open(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            rejected = $"cannot map {path}: {e.Message}";
            return false;
        }
        try
        {
            var table = PackedWeightTable.Read(mapping, key, out rejected);
            if (table is null)
            {
                mapping.Dispose();
                return false;
            }
            var value = build(new WeightReader(source, table));
            outcome = new Outcome<T>(value, mapping, new SharedWeightsStatus(true, path, false, null));
            return true;
        }
        catch (StaleCacheException e)
        {
            mapping.Dispose();
            rejected = e.Message;
            return false;
        }
        catch
        {
            mapping.Dispose();
            throw;
        }
    }

    private static Outcome<T> Build<T>(IWeightSource source, string path, string key, Func<WeightReader, T> build, string? rejected)
    {
        var temp = $"{path}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        var writer = new PackedWeightWriter(temp, key);
        T value;
        try
        {
            value = build(new WeightReader(source, writer));
            writer.Finish();
            // Rename is atomic: a reader sees the old file, no file, or the complete new one.
            File.Move(temp, path, overwrite: true);
            writer.Mapping.Bind(path);
            DeleteSuperseded(source, path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            writer.Abandon();
            TryDelete(temp);
            return Private(source, build, path, $"cannot write {path}: {e.Message}");
        }
        catch
        {
            writer.Abandon();
            TryDelete(temp);
            throw;
        }
        return new Outcome<T>(value, writer.Mapping, new SharedWeightsStatus(true, path, true, rejected));
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A leftover temporary file wastes space but is never read (readers open only the final name).
        }
    }

    /// <summary>
    /// An exclusive lock (FileShare.None is an advisory flock on Unix, released by the kernel if the holder dies, so a
    /// crashed builder never leaves a stale lock). The file itself is kept: deleting lock files races with new lockers.
    /// </summary>
    private static FileStream? AcquireLock(string lockPath, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                return new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException e) when (IsHeldByAnother(e) && clock.Elapsed < timeout)
            {
                Thread.Sleep(20);
            }
            catch (IOException e) when (IsHeldByAnother(e))
            {
                return null;
            }
        }
    }

    // Only a lock held elsewhere is worth waiting for; any other error (a read-only file system) fails at once.
    // Windows reports a sharing violation; Unix reports flock's EWOULDBLOCK as the raw errno.
    private static bool IsHeldByAnother(IOException e) =>
        e.HResult == (OperatingSystem.IsWindows() ? unchecked((int)0x80070020) : OperatingSystem.IsLinux() ? 11 : 35);

    internal static string? KeyFor(IWeightSource source)
    {
        string full;
        try
        {
            full = Path.GetFullPath(source.SourcePath);
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
        {
            return null;
        }
        var key = new StringBuilder();
        key.Append("runahead packed weights v").Append(FormatVersion).Append('\n');
        key.Append("panels nr=").Append(GemmMicroKernels.NR).Append(" isa=").Append(Isa())
            .Append(" bf16=").Append(Runahead.Numerics.Jit.Bf16Dot.Enabled ? "pairs" : "rows").Append('\n');
        key.Append("code ").Append(typeof(PackedWeightCache).Module.ModuleVersionId).Append('\n');
        key.Append("format ").Append(source.FormatName).Append('\n');
        if (File.Exists(full)) AppendFile(key, full);
        else if (Directory.Exists(full))
        {
            var files = Directory.GetFiles(full);
            Array.Sort(files, StringComparer.Ordinal);
            foreach (var f in files) AppendFile(key, f);
        }
        else return null;
        ulong tensors = 0;
        foreach (var t in source.Tensors)
            tensors = PanelHash.Combine(tensors, PanelHash.OfString($"{t.Name}|{t.Type}|{t.ShapeText}|{t.ByteSize}"));
        key.Append("tensors ").Append(source.Tensors.Count).Append(' ').Append(tensors.ToString("x16")).Append('\n');
        return key.ToString();
    }

    private static void AppendFile(StringBuilder key, string path)
    {
        var info = new FileInfo(path);
        key.Append("file ").Append(path).Append(' ').Append(info.Length).Append(' ').Append(info.LastWriteTimeUtc.Ticks).Append('\n');
    }

    // NR is 32 on every path; BF16 weights are in k pairs where the generated kernel runs (the key's bf16= part). The
    // ISA is in the key too, so an ISA-specific layout can never be read by a process expecting another.
    private static string Isa() => Avx512F.IsSupported ? "avx512" : Avx2.IsSupported ? "avx2" : "portable";

    private static string FileNameFor(IWeightSource source, string key) => $"{FilePrefixFor(source)}{PanelHash.OfString(key):x16}{Extension}";

    /// <summary>"name-pathhash-": shared by every cache file ever built for the model at this path (and no other).</summary>
    private static string FilePrefixFor(IWeightSource source)
    {
        var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(source.SourcePath));
        var stem = Path.GetFileNameWithoutExtension(full);
        var safe = new StringBuilder();
        foreach (char ch in stem) safe.Append(char.IsAsciiLetterOrDigit(ch) || ch is '-' or '_' or '.' ? ch : '_');
        if (safe.Length > 64) safe.Length = 64;
        return $"{safe}-{PanelHash.OfString(full) & 0xffffffff:x8}-";
    }

    /// <summary>
    /// Deletes the caches built earlier for the same model path (an older file or engine build): each is as big as the
    /// packed weights and would never be read again. A process still mapping one keeps its pages until it unmaps.
    /// </summary>
    private static void DeleteSuperseded(IWeightSource source, string path)
    {
        var folder = Path.GetDirectoryName(path)!;
        var name = Path.GetFileName(path);
        try
        {
            foreach (var old in Directory.GetFiles(folder, FilePrefixFor(source) + "*" + Extension))
                if (!string.Equals(Path.GetFileName(old), name, StringComparison.Ordinal))
                {
                    TryDelete(old);
                    // Safe even if an old engine still builds under it: concurrent builders only race renames of whole files.
                    TryDelete(old + ".lock");
                }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Leftovers only cost disk space.
        }
    }

    internal static void WriteHeader(Span<byte> header, long fileLength, long tableOffset, long tableLength, ulong tableHash)
    {
        header.Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(header, Magic);
        BinaryPrimitives.WriteUInt32LittleEndian(header[8..], FormatVersion);
        BinaryPrimitives.WriteUInt32LittleEndian(header[12..], GemmMicroKernels.NR);
        BinaryPrimitives.WriteInt64LittleEndian(header[16..], fileLength);
        BinaryPrimitives.WriteInt64LittleEndian(header[24..], tableOffset);
        BinaryPrimitives.WriteInt64LittleEndian(header[32..], tableLength);
        BinaryPrimitives.WriteUInt64LittleEndian(header[40..], tableHash);
        BinaryPrimitives.WriteUInt64LittleEndian(header[48..], PanelHash.Of(header[..48]));
    }

    /// <summary>Reads a header written by <see cref="WriteHeader"/>; null and a reason when it is not one.</summary>
    internal static (long TableOffset, long TableLength, ulong TableHash)? ReadHeader(ReadOnlySpan<byte> header, long actualLength, out string? reason)
    {
        reason = null;
        if (header.Length < HeaderBytes) reason = "shorter than its header";
        else if (BinaryPrimitives.ReadUInt64LittleEndian(header) != Magic) reason = "not a packed-weight cache (bad magic)";
        else if (BinaryPrimitives.ReadUInt64LittleEndian(header[48..]) != PanelHash.Of(header[..48])) reason = "its header is corrupt";
        else if (BinaryPrimitives.ReadUInt32LittleEndian(header[8..]) != FormatVersion) reason = "written by another cache format version";
        else if (BinaryPrimitives.ReadUInt32LittleEndian(header[12..]) != GemmMicroKernels.NR) reason = "packed with another panel width";
        else if (BinaryPrimitives.ReadInt64LittleEndian(header[16..]) != actualLength)
            reason = $"it is {actualLength} bytes, its header says {BinaryPrimitives.ReadInt64LittleEndian(header[16..])} (truncated or appended to)";
        if (reason is not null) return null;
        long tableOffset = BinaryPrimitives.ReadInt64LittleEndian(header[24..]);
        long tableLength = BinaryPrimitives.ReadInt64LittleEndian(header[32..]);
        if (tableOffset < HeaderBytes || tableLength <= 0 || tableLength > 64 << 20 || tableOffset > actualLength - tableLength)
        {
            reason = "its table lies outside the file";
            return null;
        }
        return (tableOffset, tableLength, BinaryPrimitives.ReadUInt64LittleEndian(header[40..]));
    }
}

/// <summary>A cache that passed validation but does not hold a weight the model asks for (or holds it in another shape).</summary>
internal sealed class StaleCacheException(string message) : Exception(message);
