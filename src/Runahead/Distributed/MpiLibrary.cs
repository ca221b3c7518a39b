using System.Runtime.InteropServices;

namespace Runahead.Distributed;

/// <summary>
/// The MPI C library, bound at run time (MPI.NET is not usable on .NET 10). Handles differ by implementation: MPICH
/// passes integers (MPI_COMM_WORLD = 0x44000000, MPI_FLOAT = 0x4c00040a, ...), Open MPI the addresses of exported
/// globals (ompi_mpi_comm_world, ompi_mpi_float, ...). Both fit an nint argument on 64-bit Linux (an int argument
/// occupies the low half of its register or stack slot), so one set of function pointers serves both.
/// </summary>
public sealed unsafe class MpiLibrary
{
    public const int ThreadFunneled = 1;

    // Sonames first (no -dev package needed), MPICH before Open MPI; RUNAHEAD_MPI_LIBRARY overrides.
    private static readonly string[] Candidates =
        ["libmpi.so.12", "libmpich.so.12", "libmpi.so.40", "libmpich.so", "libmpi.so"];

    private static readonly Lazy<MpiLibrary?> Shared = new(TryLoadCore);
    private static string? _loadProblem;

    private MpiLibrary(nint handle, string name)
    {
        Name = name;
        IsOpenMpi = NativeLibrary.TryGetExport(handle, "ompi_mpi_comm_world", out var world);
        if (IsOpenMpi)
        {
            CommWorld = world;
            Byte = NativeLibrary.GetExport(handle, "ompi_mpi_byte");
            Float = NativeLibrary.GetExport(handle, "ompi_mpi_float");
            Int = NativeLibrary.GetExport(handle, "ompi_mpi_int");
        }
        else
        {
            CommWorld = 0x44000000;
            Byte = 0x4c00010d;
            Float = 0x4c00040a;
            Int = 0x4c000405;
        }
        InitThread = (delegate* unmanaged<int*, nint, int, int*, int>)NativeLibrary.GetExport(handle, "MPI_Init_thread");
        Initialized = (delegate* unmanaged<int*, int>)NativeLibrary.GetExport(handle, "MPI_Initialized");
        Finalize = (delegate* unmanaged<int>)NativeLibrary.GetExport(handle, "MPI_Finalize");
        CommRank = (delegate* unmanaged<nint, int*, int>)NativeLibrary.GetExport(handle, "MPI_Comm_rank");
        CommSize = (delegate* unmanaged<nint, int*, int>)NativeLibrary.GetExport(handle, "MPI_Comm_size");
        Isend = (delegate* unmanaged<void*, int, nint, int, int, nint, nint*, int>)NativeLibrary.GetExport(handle, "MPI_Isend");
        Iprobe = (delegate* unmanaged<int, int, nint, int*, void*, int>)NativeLibrary.GetExport(handle, "MPI_Iprobe");
        GetCount = (delegate* unmanaged<void*, nint, int*, int>)NativeLibrary.GetExport(handle, "MPI_Get_count");
        Irecv = (delegate* unmanaged<void*, int, nint, int, int, nint, nint*, int>)NativeLibrary.GetExport(handle, "MPI_Irecv");
        Test = (delegate* unmanaged<nint*, int*, void*, int>)NativeLibrary.GetExport(handle, "MPI_Test");
        Iallgatherv = (delegate* unmanaged<void*, int, nint, void*, int*, int*, nint, nint, nint*, int>)NativeLibrary.GetExport(handle, "MPI_Iallgatherv");
        Ibarrier = (delegate* unmanaged<nint, nint*, int>)NativeLibrary.GetExport(handle, "MPI_Ibarrier");
        Abort = (delegate* unmanaged<nint, int, int>)NativeLibrary.GetExport(handle, "MPI_Abort");
    }

    internal string Name { get; }
    internal bool IsOpenMpi { get; }
    internal nint CommWorld { get; }
    internal nint Byte { get; }
    internal nint Float { get; }
    internal nint Int { get; }

    internal readonly delegate* unmanaged<int*, nint, int, int*, int> InitThread;
    internal readonly delegate* unmanaged<int*, int> Initialized;
    internal readonly delegate* unmanaged<int> Finalize;
    internal readonly delegate* unmanaged<nint, int*, int> CommRank;
    internal readonly delegate* unmanaged<nint, int*, int> CommSize;
    internal readonly delegate* unmanaged<void*, int, nint, int, int, nint, nint*, int> Isend;
    internal readonly delegate* unmanaged<int, int, nint, int*, void*, int> Iprobe;
    internal readonly delegate* unmanaged<void*, nint, int*, int> GetCount;
    internal readonly delegate* unmanaged<void*, int, nint, int, int, nint, nint*, int> Irecv;
    internal readonly delegate* unmanaged<nint*, int*, void*, int> Test;
    internal readonly delegate* unmanaged<void*, int, nint, void*, int*, int*, nint, nint, nint*, int> Iallgatherv;
    internal readonly delegate* unmanaged<nint, nint*, int> Ibarrier;
    internal readonly delegate* unmanaged<nint, int, int> Abort;

    /// <summary>The loaded library, or a RunaheadException saying what was tried and how to install one.</summary>
    internal static MpiLibrary Load() => Shared.Value ?? throw new RunaheadException(
        $"--transport mpi: no MPI library found ({_loadProblem}); install MPICH (apt-get install mpich) or Open MPI, or set RUNAHEAD_MPI_LIBRARY");

    public static bool IsAvailable => Shared.Value != null;

    /// <summary>True when this process was started by an MPI launcher (mpiexec / mpirun / srun).</summary>
    public static bool LaunchedByMpi
    {
        get
        {
            foreach (var v in new[] { "PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK", "MPI_LOCALRANKID" })
                if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable(v))) return true;
            return false;
        }
    }

    /// <summary>The launcher's rank variable, before MPI_Init (for log prefixes); -1 when none is set.</summary>
    public static int LauncherRank
    {
        get
        {
            foreach (var v in new[] { "PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "MV2_COMM_WORLD_RANK", "SLURM_PROCID" })
                if (int.TryParse(Environment.GetEnvironmentVariable(v), out int r)) return r;
            return -1;
        }
    }

    /// <summary>The launcher's world size variable, before MPI_Init; -1 when none is set.</summary>
    public static int LauncherSize
    {
        get
        {
            foreach (var v in new[] { "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MV2_COMM_WORLD_SIZE", "SLURM_NTASKS" })
                if (int.TryParse(Environment.GetEnvironmentVariable(v), out int n) && n > 0) return n;
            return -1;
        }
    }

    private static MpiLibrary? TryLoadCore()
    {
        KeepRuntimeSignalHandlers();
        var explicitName = Environment.GetEnvironmentVariable("RUNAHEAD_MPI_LIBRARY");
        var names = string.IsNullOrEmpty(explicitName) ? Candidates : [explicitName];
        foreach (var name in names)
        {
            // Open MPI's plugins resolve symbols of libmpi itself: load it RTLD_GLOBAL first, as mpi4py does.
            LoadGlobal(name);
            if (!NativeLibrary.TryLoad(name, out var handle)) continue;
            try
            {
                return new MpiLibrary(handle, name);
            }
            catch (EntryPointNotFoundException e)
            {
                _loadProblem = $"{name}: {e.Message}";
            }
        }
        _loadProblem ??= "tried " + string.Join(", ", names);
        return null;
    }

    /// <summary>
    /// UCX (under Debian's MPICH and Open MPI) installs its own SIGSEGV/SIGBUS/SIGILL/SIGFPE handlers when its library
    /// is loaded, replacing the .NET runtime's: every NullReferenceException after that, even a caught one, killed the
    /// process with a UCX backtrace (it made the test host crash now and then, and would turn a rank's managed error into
    /// a crash). An empty UCX_ERROR_SIGNALS leaves the signals to the runtime. Set in the native environment, which UCX
    /// reads while the library loads (Environment.SetEnvironmentVariable does not reach it on Unix); a value the user
    /// set is kept.
    /// </summary>
    private static void KeepRuntimeSignalHandlers()
    {
        if (OperatingSystem.IsLinux()) _ = SetEnv("UCX_ERROR_SIGNALS", "", overwrite: 0);
    }

    [DllImport("libc", EntryPoint = "setenv")]
    private static extern int SetEnv(string name, string value, int overwrite);

    private const int RtldNow = 2, RtldGlobal = 0x100;

    [DllImport("libc", EntryPoint = "dlopen")]
    private static extern nint DlopenLibc(string file, int mode);

    [DllImport("libdl.so.2", EntryPoint = "dlopen")]
    private static extern nint DlopenLibdl(string file, int mode);

    private static void LoadGlobal(string name)
    {
        if (!OperatingSystem.IsLinux()) return;
        try
        {
            DlopenLibc(name, RtldNow | RtldGlobal);
        }
        catch (EntryPointNotFoundException)
        {
            try
            {
                DlopenLibdl(name, RtldNow | RtldGlobal);
            }
            catch (DllNotFoundException)
            {
            }
        }
    }
}
