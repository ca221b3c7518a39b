using Runahead.Formats.Gguf;

namespace Runahead.Tests;

public class SmokeTests
{
    [SkippableFact]
    public void GgufHeaderOfStories260KParses()
    {
        using var f = GgufFile.Open(Fixtures.Path("gguf/stories260K.gguf"));
        Assert.Equal(3u, f.Version);
        Assert.Equal(48, f.Tensors.Count);
        Assert.Equal("llama", f.GetString("general.architecture"));
    }
}
