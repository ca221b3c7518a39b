using System.Runtime.InteropServices;

namespace Runahead.Distributed;

/// <summary>The few libc calls the shared-memory transport needs (Linux).</summary>
internal static unsafe partial class NativeMethods
{
    private const int FutexWait = 0;
    private const int FutexWake = 1;
    private const int Esrch = 3;

    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long Syscall(long number, int* address, int operation, int value, Timespec* timeout, int* address2, int value3);

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

    [LibraryImport("libc", EntryPoint = "getuid")]
    internal static partial uint GetUid();

    [LibraryImport("libc", EntryPoint = "getppid")]
    internal static partial int GetParentPid();

    private static readonly long FutexSyscall = !OperatingSystem.IsLinux() ? -1 : RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 => 202,
        Architecture.Arm64 => 98,
        _ => -1,
    };

    /// <summary>
    /// Sleeps while *<paramref name="address"/> == <paramref name="expected"/>, at most <paramref name="microseconds"/>;
    /// wakes early on <see cref="Wake"/> (across processes: the word lives in a shared mapping, so no PRIVATE flag).
    /// Where futexes are unavailable it simply sleeps briefly, which costs latency but stays correct.
    /// </summary>
    public static void Wait(int* address, int expected, int microseconds)
    {
        if (FutexSyscall < 0)
        {
            Thread.Sleep(Math.Max(1, microseconds / 1000));
            return;
        }
        var ts = new Timespec { Seconds = microseconds / 1_000_000, Nanoseconds = microseconds % 1_000_000 * 1000L };
        Syscall(FutexSyscall, address, FutexWait, expected, &ts, null, 0);
    }

    public static void Wake(int* address)
    {
        if (FutexSyscall >= 0) Syscall(FutexSyscall, address, FutexWake, int.MaxValue, null, null, 0);
    }

    public const int SigInt = 2;

    /// <summary>kill(2): 0 on success.</summary>
    public static int SendSignal(int pid, int signal) => Kill(pid, signal);

    /// <summary>True unless the process certainly does not exist (a zombie still counts as alive until reaped).</summary>
    public static bool ProcessExists(int pid)
    {
        if (pid <= 0) return false;
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS()) return true;
        return Kill(pid, 0) == 0 || Marshal.GetLastPInvokeError() != Esrch;
    }

    /// <summary>A process that exists but has exited (zombie) is dead for our purposes; /proc tells the difference.</summary>
    public static bool ProcessAlive(int pid)
    {
        if (!ProcessExists(pid)) return false;
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            int close = stat.LastIndexOf(')');
            return close < 0 || close + 2 >= stat.Length || (stat[close + 2] != 'Z' && stat[close + 2] != 'X');
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return true;
        }
    }
}
