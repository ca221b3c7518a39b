using Runahead.Formats;

namespace Runahead.Tests.Formats;

public class SymlinkTests
{
    [SkippableFact]
    public void AModelOpenedThroughASymlinkReadsTheTargetFile()
    {
        var target = Fixtures.Path("gguf/stories260K.gguf");
        using var dir = new TempDir();
        var link = dir.File("model.gguf");
        File.CreateSymbolicLink(link, target);
        using var viaLink = WeightSources.Open(link);
        using var direct = WeightSources.Open(target);
        Assert.Equal(direct.Config, viaLink.Config);
        Assert.Equal(direct.Tensors.Count, viaLink.Tensors.Count);
    }
}

public class SymlinkedFolderTests
{
    [SkippableFact]
    public void AHuggingFaceFolderWithSymlinkedFilesLoads()
    {
        var source = Fixtures.Path("hf/tiny-llama-gqa");
        using var dir = new TempDir();
        foreach (var name in new[] { "config.json", "model.safetensors" })
            File.CreateSymbolicLink(dir.File(name), Path.Combine(source, name));
        using var viaLinks = WeightSources.Open(dir.Path);
        using var direct = WeightSources.Open(source);
        Assert.Equal(direct.Config, viaLinks.Config);
    }
}
