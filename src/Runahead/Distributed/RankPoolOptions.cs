using System.Diagnostics.CodeAnalysis;

namespace Runahead.Distributed;

/// <summary>How ranks talk to each other.</summary>
public enum RankTransport
{
    /// <summary>Ranks are tasks in the client process (fast tests; no worker processes).</summary>
    InProcess,

    /// <summary>Ranks are `runahead worker` processes on this host sharing a /dev/shm segment (the default).</summary>
    SharedMemory,

    /// <summary>This process is one rank of a job started by mpiexec; rank 0 acts as the client.</summary>
    Mpi,
}

/// <summary>Settings of a <see cref="RankPool"/>.</summary>
public sealed class RankPoolOptions
{
    public required int WorldSize { get; init; }

    /// <summary>
    /// The <see cref="IRankProgram"/> each rank runs; it needs a public parameterless constructor. Worker processes load
    /// it from its assembly's file, so test assemblies work too.
    /// </summary>
    [DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicParameterlessConstructor)]
    public required Type ProgramType { get; init; }

    public RankTransport Transport { get; init; } = RankTransport.SharedMemory;

    public string? ModelPath { get; init; }

    public int ThreadsPerRank { get; init; } = 1;

    /// <summary>Free-form text handed to every rank's <see cref="RankContext.ProgramArguments"/>.</summary>
    public string ProgramArguments { get; init; } = "";

    /// <summary>Emulated links (null: as fast as the transport goes).</summary>
    public LinkShaper? Links { get; init; }

    public TimeSpan ReceiveTimeout { get; init; } = CommunicatorBase.DefaultReceiveTimeout;

    /// <summary>Longest wait for every worker to start and finish <see cref="IRankProgram.InitializeAsync"/>.</summary>
    public TimeSpan StartupTimeout { get; init; } = TimeSpan.FromSeconds(120);

    /// <summary>
    /// Ring buffer per directed link in the shared segment (0: automatic, see <see cref="EffectiveRingBytes"/>). A message
    /// up to half a ring is read in place; larger ones travel in fragments and are copied once more on receipt.
    /// </summary>
    public long RingBytes { get; init; }

    /// <summary>Segment memory the automatic ring size aims at, all links together (it is allocated and touched up front).</summary>
    public const long AutomaticSegmentBudget = 256L << 20;

    /// <summary>
    /// <see cref="RingBytes"/>, or when 0 the budget shared by the P(P-1) links, between 1 and 64 MiB per ring:
    /// 64 MiB for 2 ranks, 42 MiB for 3, 21 MiB for 4, 4.5 MiB for 8.
    /// </summary>
    public long EffectiveRingBytes => RingBytes > 0
        ? RingBytes
        : WorldSize < 2 ? 1L << 20 : Math.Clamp(AutomaticSegmentBudget / ((long)WorldSize * (WorldSize - 1)), 1L << 20, 64L << 20) & ~4095L;

    /// <summary>Smallest ring: a frame header plus a useful fragment must fit in half of it.</summary>
    public const long MinRingBytes = 64L << 10;

    /// <summary>Largest ring: one ring's offsets and fragments stay well inside what the segment layout addresses.</summary>
    public const long MaxRingBytes = 1L << 30;

    /// <summary>
    /// Checks an explicit ring size (--shm-ring; the segment rounds it up to whole 4 KiB pages): 64 KiB .. 1 GiB, and all
    /// P(P-1) rings of the segment within 16 GiB (it lives in /dev/shm, i.e. memory, and is touched up front).
    /// </summary>
    public static void ValidateRingBytes(long ringBytes, int worldSize)
    {
        if (ringBytes < MinRingBytes || ringBytes > MaxRingBytes)
            throw new RunaheadException($"--shm-ring: {ringBytes} bytes is outside 64KiB..1GiB");
        long links = (long)worldSize * Math.Max(0, worldSize - 1);
        if (links * ringBytes > 16L << 30)
            throw new RunaheadException($"--shm-ring: {links} links x {ringBytes} bytes exceed the 16GiB a shared segment may take");
    }

    /// <summary>The `runahead` executable for workers (default: this process if it is runahead, else the one beside this assembly).</summary>
    public string? WorkerExecutable { get; init; }

    /// <summary>Receives the workers' stderr lines, prefixed with their rank (null: kept only for error messages).</summary>
    public TextWriter? WorkerLog { get; init; }

    internal void Validate()
    {
        if (WorldSize < 1 || WorldSize > SharedMemorySegment.MaxRanks)
            throw new RunaheadException($"--ranks: {WorldSize} is outside 1..{SharedMemorySegment.MaxRanks}");
        if (ThreadsPerRank < 1) throw new RunaheadException($"--threads-per-rank: {ThreadsPerRank} must be at least 1");
        if (!typeof(IRankProgram).IsAssignableFrom(ProgramType) || ProgramType.GetConstructor(Type.EmptyTypes) == null || ProgramType.IsAbstract)
            throw new ArgumentException($"{ProgramType} is not a concrete IRankProgram with a public parameterless constructor", nameof(ProgramType));
        if (Links != null && Links.WorldSize != WorldSize)
            throw new RunaheadException($"--links: the link description covers {Links.WorldSize} ranks, not {WorldSize}");
        if (RingBytes != 0) ValidateRingBytes(RingBytes, WorldSize);
    }
}

/// <summary>Everything a worker needs to become rank <see cref="Rank"/>; sent over its stdin, never on the command line (the token is secret).</summary>
internal sealed class RankLaunchSettings
{
    public int Rank { get; init; }
    public int WorldSize { get; init; }
    public string ProgramAssemblyPath { get; init; } = "";
    public string ProgramTypeName { get; init; } = "";
    public string ProgramArguments { get; init; } = "";
    public string? ModelPath { get; init; }
    public int ThreadsPerRank { get; init; } = 1;
    public TimeSpan ReceiveTimeout { get; init; } = CommunicatorBase.DefaultReceiveTimeout;
    public string? LinkSpec { get; init; }
    public string SegmentPath { get; init; } = "";
    public byte[] Token { get; init; } = [];
    public int CoordinatorPid { get; init; }

    public byte[] Serialize()
    {
        using var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms))
        {
            w.Write(Rank);
            w.Write(WorldSize);
            w.Write(ProgramAssemblyPath);
            w.Write(ProgramTypeName);
            w.Write(ProgramArguments);
            w.Write(ModelPath ?? "");
            w.Write(ThreadsPerRank);
            w.Write(ReceiveTimeout.Ticks);
            w.Write(LinkSpec ?? "");
            w.Write(SegmentPath);
            w.Write(Token.Length);
            w.Write(Token);
            w.Write(CoordinatorPid);
        }
        return ms.ToArray();
    }

    public static RankLaunchSettings Deserialize(ReadOnlySpan<byte> bytes)
    {
        try
        {
            using var r = new BinaryReader(new MemoryStream(bytes.ToArray()));
            int rank = r.ReadInt32();
            int world = r.ReadInt32();
            string asm = r.ReadString(), type = r.ReadString(), args = r.ReadString(), model = r.ReadString();
            int threads = r.ReadInt32();
            long timeout = r.ReadInt64();
            string links = r.ReadString(), segment = r.ReadString();
            int tokenLength = r.ReadInt32();
            if (tokenLength is < 0 or > 1024) throw new InvalidDataException("bad token length");
            var token = r.ReadBytes(tokenLength);
            int coordinator = r.ReadInt32();
            return new RankLaunchSettings
            {
                Rank = rank, WorldSize = world, ProgramAssemblyPath = asm, ProgramTypeName = type, ProgramArguments = args,
                ModelPath = model.Length == 0 ? null : model, ThreadsPerRank = threads, ReceiveTimeout = TimeSpan.FromTicks(timeout),
                LinkSpec = links.Length == 0 ? null : links, SegmentPath = segment, Token = token, CoordinatorPid = coordinator,
            };
        }
        catch (Exception e) when (e is EndOfStreamException or InvalidDataException or IOException)
        {
            throw new RunaheadException("worker: malformed launch settings on stdin (is this process started by a runahead coordinator?)");
        }
    }
}
