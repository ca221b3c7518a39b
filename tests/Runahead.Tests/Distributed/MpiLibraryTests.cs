using System.Runtime.CompilerServices;
using Runahead.Distributed;

namespace Runahead.Tests.Distributed;

public class MpiLibraryTests
{
    /// <summary>
    /// Loading the MPI library must leave the runtime's signal handlers in place: UCX (under Debian's MPICH and Open MPI)
    /// replaced them, and the next NullReferenceException, caught or not, killed the process. If this regresses the test
    /// host itself dies here, which fails the run.
    /// </summary>
    [SkippableFact]
    public void ANullReferenceAfterLoadingMpiIsStillAnException()
    {
        Skip.IfNot(MpiLibrary.IsAvailable, "no MPI library on this machine (CI installs MPICH)");
        Assert.Throws<NullReferenceException>(() => Length(null));
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static int Length(string? s) => s!.Length;
}
