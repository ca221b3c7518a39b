using System.IO.MemoryMappedFiles;
using System.Security.Cryptography;
using System.Text;

namespace Runahead.Distributed;

/// <summary>
/// The per-run file under /dev/shm that ranks on one host share: a header (magic, token, abort word, rank pids) and one
/// ring buffer per directed link. Created 0600 with a random name and a random token that attaching workers must
/// present; the creator deletes it on every exit path (and as soon as all workers have mapped it).
/// </summary>
internal sealed unsafe class SharedMemorySegment : IDisposable
{
    public const int MaxRanks = 64;
    public const string NamePrefix = "runahead-";
    public const int TokenBytes = 32;
    internal const int HeaderBytes = 8192;
    internal const int LinkControlBytes = 4096;

    private const ulong Magic = 0x4441454841_4E5552UL; // "RUNAHEAD" little-endian
    private const int Version = 1;
    private const int OffMagic = 0, OffVersion = 8, OffWorld = 12, OffRing = 16, OffToken = 32;
    private const int OffAbortState = 128, OffAbortReasonLength = 132, OffAbortReason = 136, MaxReasonBytes = 256;
    private const int OffPids = 512;
    private const int OffDoorbells = 4096; // one cache line per rank

    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private readonly bool _owner;
    private byte* _base;
    private int _deleted;
    private int _disposed;
    private int _users = 1; // the segment's own reference, dropped by Dispose

    private SharedMemorySegment(string path, MemoryMappedFile map, MemoryMappedViewAccessor view, bool owner, int worldSize, long ringBytes, byte[] token)
    {
        FilePath = path;
        _map = map;
        _view = view;
        _owner = owner;
        WorldSize = worldSize;
        RingBytes = ringBytes;
        Token = token;
        byte* p = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        _base = p + view.PointerOffset;
    }

    public string FilePath { get; }

    public int WorldSize { get; }

    public long RingBytes { get; }

    public byte[] Token { get; }

    /// <summary>Where segments live: /dev/shm (RAM) on Linux, the temp folder elsewhere.</summary>
    public static string Directory => System.IO.Directory.Exists("/dev/shm") ? "/dev/shm" : System.IO.Path.GetTempPath();

    public static long SizeFor(int worldSize, long ringBytes) =>
        HeaderBytes + (long)worldSize * (worldSize - 1) * (LinkControlBytes + ringBytes);

    /// <summary>Creates a fresh segment for <paramref name="worldSize"/> ranks (the coordinator's side).</summary>
    public static SharedMemorySegment Create(int worldSize, long ringBytes)
    {
        if (worldSize < 1 || worldSize > MaxRanks) throw new ArgumentOutOfRangeException(nameof(worldSize));
        ringBytes = (ringBytes + 4095) & ~4095L;
        RemoveStaleSegments();
        var token = RandomNumberGenerator.GetBytes(TokenBytes);
        var path = System.IO.Path.Combine(Directory, $"{NamePrefix}{Environment.ProcessId}-{Convert.ToHexString(RandomNumberGenerator.GetBytes(8)).ToLowerInvariant()}");
        long size = SizeFor(worldSize, ringBytes);
        FileStream file;
        try
        {
            // Preallocated so that a full tmpfs fails here with a message instead of SIGBUS on a later write.
            var options = new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.ReadWrite,
                Share = FileShare.ReadWrite,
                PreallocationSize = size,
            };
            // 0600 from the first instant: no window in which another user could open it.
            if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            file = new FileStream(path, options);
        }
        catch (IOException e)
        {
            TryDelete(path);
            throw new RunaheadException($"{Directory}: cannot create a {size >> 20} MiB shared segment for {worldSize} ranks ({e.Message}); free space in {Directory} or lower the ring size");
        }
        try
        {
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(file.SafeFileHandle, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            file.SetLength(size);
            var map = MemoryMappedFile.CreateFromFile(file, null, size, MemoryMappedFileAccess.ReadWrite, HandleInheritability.None, leaveOpen: false);
            var view = map.CreateViewAccessor(0, size, MemoryMappedFileAccess.ReadWrite);
            var segment = new SharedMemorySegment(path, map, view, owner: true, worldSize, ringBytes, token);
            segment.InitialiseHeader();
            return segment;
        }
        catch
        {
            file.Dispose();
            TryDelete(path);
            throw;
        }
    }

    /// <summary>Maps an existing segment (a worker's side) after checking permissions, header and token.</summary>
    public static SharedMemorySegment Attach(string path, ReadOnlySpan<byte> token, int worldSize)
    {
        if (!System.IO.Path.GetFileName(path).StartsWith(NamePrefix, StringComparison.Ordinal))
            throw new RunaheadException($"{path}: not a runahead segment name");
        if (!OperatingSystem.IsWindows())
        {
            UnixFileMode mode;
            try
            {
                mode = File.GetUnixFileMode(path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new RunaheadException($"{path}: cannot open the shared segment ({e.Message})");
            }
            if (mode != (UnixFileMode.UserRead | UnixFileMode.UserWrite))
                throw new RunaheadException($"{path}: refusing a shared segment with mode {Convert.ToString((int)mode, 8)} (must be 0600)");
        }
        FileStream file;
        try
        {
            file = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new RunaheadException($"{path}: cannot open the shared segment ({e.Message})");
        }
        try
        {
            long length = file.Length;
            Span<byte> header = stackalloc byte[64];
            if (length < HeaderBytes || file.Read(header) != header.Length)
                throw new RunaheadException($"{path}: too short for a runahead segment");
            if (BitConverter.ToUInt64(header[OffMagic..]) != Magic || BitConverter.ToInt32(header[OffVersion..]) != Version)
                throw new RunaheadException($"{path}: not a runahead segment (bad magic or version)");
            if (token.Length != TokenBytes || !CryptographicOperations.FixedTimeEquals(header.Slice(OffToken, TokenBytes), token))
                throw new RunaheadException($"{path}: wrong token: this worker was not started by the segment's coordinator");
            int world = BitConverter.ToInt32(header[OffWorld..]);
            long ring = BitConverter.ToInt64(header[OffRing..]);
            if (world != worldSize || ring < 4096 || ring > (1L << 40) || SizeFor(world, ring) != length)
                throw new RunaheadException($"{path}: segment describes {world} ranks and {ring}-byte rings, which does not match its size or this job");
            var map = MemoryMappedFile.CreateFromFile(file, null, length, MemoryMappedFileAccess.ReadWrite, HandleInheritability.None, leaveOpen: false);
            var view = map.CreateViewAccessor(0, length, MemoryMappedFileAccess.ReadWrite);
            return new SharedMemorySegment(path, map, view, owner: false, world, ring, token.ToArray());
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    private void InitialiseHeader()
    {
        *(ulong*)(_base + OffMagic) = Magic;
        *(int*)(_base + OffVersion) = Version;
        *(int*)(_base + OffWorld) = WorldSize;
        *(long*)(_base + OffRing) = RingBytes;
        Token.CopyTo(new Span<byte>(_base + OffToken, TokenBytes));
    }

    /// <summary>Start of the control block of link source->dest (ring data follows it).</summary>
    public byte* Link(int source, int dest)
    {
        int index = source * (WorldSize - 1) + (dest < source ? dest : dest - 1);
        return _base + HeaderBytes + index * (LinkControlBytes + RingBytes);
    }

    /// <summary>
    /// A rank's doorbell: bumped and futex-woken whenever something it may wait for happens (a message for it, space
    /// freed in a ring it sends on, an abort), so each rank sleeps on one word whatever it waits for.
    /// </summary>
    public int* Doorbell(int rank) => (int*)(_base + OffDoorbells + rank * 64);

    public void Ring(int rank)
    {
        int* bell = Doorbell(rank);
        Interlocked.Increment(ref *bell);
        NativeMethods.Wake(bell);
    }

    public void RegisterPid(int rank, int pid) => Volatile.Write(ref *(int*)(_base + OffPids + rank * 4), pid);

    public int PidOf(int rank) => Volatile.Read(ref *(int*)(_base + OffPids + rank * 4));

    /// <summary>
    /// Records the first failure of the run (later ones are consequences): every rank checks this word while waiting,
    /// so one write stops the whole group within milliseconds. <paramref name="failedRank"/> -1 is the coordinator.
    /// </summary>
    public void Abort(int failedRank, string reason)
    {
        ref int state = ref *(int*)(_base + OffAbortState);
        if (Interlocked.CompareExchange(ref state, -1, 0) != 0) return;
        var bytes = Encoding.UTF8.GetBytes(reason);
        int n = Math.Min(bytes.Length, MaxReasonBytes);
        bytes.AsSpan(0, n).CopyTo(new Span<byte>(_base + OffAbortReason, n));
        *(int*)(_base + OffAbortReasonLength) = n;
        Volatile.Write(ref state, failedRank + 2);
        for (int r = 0; r < WorldSize; r++) Ring(r);
    }

    public bool IsAborted => Volatile.Read(ref *(int*)(_base + OffAbortState)) > 0;

    public RankFailedException? AbortException()
    {
        int state = Volatile.Read(ref *(int*)(_base + OffAbortState));
        if (state <= 0) return null;
        int n = Math.Clamp(*(int*)(_base + OffAbortReasonLength), 0, MaxReasonBytes);
        return new RankFailedException(state - 2, Encoding.UTF8.GetString(new ReadOnlySpan<byte>(_base + OffAbortReason, n)));
    }

    /// <summary>Removes the file; mappings stay valid, so the creator calls this as soon as every worker has attached.</summary>
    public void Delete()
    {
        if (_owner && Interlocked.Exchange(ref _deleted, 1) == 0) TryDelete(FilePath);
    }

    /// <summary>A communicator using the mapping keeps it alive: unmapping under a running waiter thread would crash the process.</summary>
    public void AddUser() => Interlocked.Increment(ref _users);

    public void RemoveUser()
    {
        if (Interlocked.Decrement(ref _users) == 0) Unmap();
    }

    /// <summary>Deletes the file (owner) and unmaps once no communicator uses the mapping any more.</summary>
    public void Dispose()
    {
        Delete();
        if (Interlocked.Exchange(ref _disposed, 1) == 0) RemoveUser();
    }

    private void Unmap()
    {
        if (_base == null) return;
        _base = null;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Best effort: the next run's sweep removes it once its creator is gone.
        }
    }

    /// <summary>Deletes segments left by coordinators that died without cleaning up (e.g. SIGKILL before workers attached).</summary>
    internal static void RemoveStaleSegments()
    {
        string[] files;
        try
        {
            files = System.IO.Directory.GetFiles(Directory, NamePrefix + "*");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return;
        }
        foreach (var f in files)
        {
            var name = System.IO.Path.GetFileName(f).AsSpan(NamePrefix.Length);
            int dash = name.IndexOf('-');
            if (dash > 0 && int.TryParse(name[..dash], out int pid) && pid != Environment.ProcessId && !NativeMethods.ProcessExists(pid))
                TryDelete(f);
        }
    }
}
