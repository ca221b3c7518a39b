using Runahead.Distributed;
using Runahead.Prefill;

namespace Runahead.Tests.Distributed;

public class RankProgramLoaderTests
{
    /// <summary>
    /// Programs of the library are named without an assembly file, so workers of single-file and NativeAOT builds (where
    /// assemblies have no file and Assembly.Location is empty) find them too.
    /// </summary>
    [Fact]
    public void LibraryProgramsNeedNoAssemblyFile()
    {
        Assert.Equal("", RankProgramLoader.AssemblyPathOf(typeof(PrefillRankProgram)));
        Assert.Equal("", RankProgramLoader.AssemblyPathOf(typeof(PingProgram)));
        Assert.Equal(typeof(PrefillRankProgram), RankProgramLoader.ResolveType("", typeof(PrefillRankProgram).FullName!));
        Assert.Equal(typeof(PingProgram), RankProgramLoader.ResolveType("", typeof(PingProgram).FullName!));
    }

    [Fact]
    public void OtherProgramsAreNamedByTheirFileAndBadNamesAreOneLineErrors()
    {
        Assert.Equal(typeof(RankProgramLoaderTests).Assembly.Location, RankProgramLoader.AssemblyPathOf(typeof(RankProgramLoaderTests)));
        var e = Assert.Throws<RunaheadException>(() => RankProgramLoader.ResolveType("", "Runahead.NoSuchProgram"));
        Assert.Contains("no type Runahead.NoSuchProgram", e.Message);
        e = Assert.Throws<RunaheadException>(() => RankProgramLoader.ResolveType("/nonexistent/x.dll", "X"));
        Assert.Contains("not found", e.Message);
        e = Assert.Throws<RunaheadException>(() => RankProgramLoader.ResolveType("", typeof(RankPool).FullName!));
        Assert.Contains("not a concrete IRankProgram", e.Message);
    }
}
