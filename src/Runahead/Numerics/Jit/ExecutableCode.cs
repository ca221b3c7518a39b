using System.Runtime.InteropServices;

namespace Runahead.Numerics.Jit;

/// <summary>
/// Machine code placed in its own pages: mapped read-write, filled, then switched to read-execute (never writable and
/// executable at once). The pages are never unmapped: a kernel pointer may be held by any thread until the process ends,
/// and there are only a few kilobytes of them. Linux x64 only; elsewhere <see cref="TryCreate"/> returns null.
/// </summary>
internal static unsafe partial class ExecutableCode
{
    private const int ProtRead = 1, ProtWrite = 2, ProtExec = 4;
    private const int MapPrivate = 0x02, MapAnonymous = 0x20;

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static partial nint Mmap(nint address, nuint length, int protection, int flags, int fd, nint offset);

    [LibraryImport("libc", EntryPoint = "mprotect", SetLastError = true)]
    private static partial int Mprotect(nint address, nuint length, int protection);

    [LibraryImport("libc", EntryPoint = "munmap", SetLastError = true)]
    private static partial int Munmap(nint address, nuint length);

    /// <summary>The address of <paramref name="code"/> copied into fresh read-execute pages, or null (with why) when that fails.</summary>
    public static byte* TryCreate(ReadOnlySpan<byte> code, out string? failure)
    {
        failure = null;
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64)
        {
            failure = "executable code is only generated on Linux x64";
            return null;
        }
        if (code.IsEmpty)
        {
            failure = "no code";
            return null;
        }
        long page = Environment.SystemPageSize;
        nuint length = (nuint)((code.Length + page - 1) / page * page);
        nint p;
        try
        {
            p = Mmap(0, length, ProtRead | ProtWrite, MapPrivate | MapAnonymous, -1, 0);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            failure = $"libc mmap is not available: {e.Message}";
            return null;
        }
        if (p == -1 || p == 0)
        {
            failure = $"mmap failed (errno {Marshal.GetLastPInvokeError()})";
            return null;
        }
        code.CopyTo(new Span<byte>((void*)p, code.Length));
        if (Mprotect(p, length, ProtRead | ProtExec) != 0)
        {
            failure = $"mprotect to read-execute failed (errno {Marshal.GetLastPInvokeError()})";
            Munmap(p, length);
            return null;
        }
        return (byte*)p;
    }
}
