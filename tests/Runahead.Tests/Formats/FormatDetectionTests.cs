using Runahead.Formats;

namespace Runahead.Tests.Formats;

public class FormatDetectionTests
{
    [SkippableFact]
    public void MagicWinsOverTheExtension()
    {
        using var dir = new TempDir();
        string bin = dir.File("model.bin");
        File.Copy(Fixtures.Path("gguf/stories260K.gguf"), bin);
        Assert.Equal("gguf", WeightSources.Detect(bin));
        using (var s = WeightSources.Open(bin)) Assert.Equal("gguf", s.FormatName);

        string other = dir.File("weights.dat");
        File.Copy(Fixtures.Path("llama2c/stories260K.bin"), other);
        Assert.Equal("llama2c", WeightSources.Detect(other));
    }

    [SkippableTheory]
    [InlineData("hf/stories260K")]
    [InlineData("hf/stories260K/config.json")]
    [InlineData("hf/stories260K/model.safetensors")]
    public void HuggingFaceCheckpointByFolderConfigOrWeights(string fixture)
    {
        using var s = WeightSources.Open(Fixtures.Path(fixture));
        Assert.Equal("safetensors", s.FormatName);
        Assert.Equal(48 - 1, s.Tensors.Count);
    }

    [Fact]
    public void UnreadableInputsGiveOneLine()
    {
        using var dir = new TempDir();
        var e = Assert.Throws<InvalidModelFileException>(() => WeightSources.Open(dir.Path));
        Assert.Contains("without config.json", e.Message);

        File.WriteAllBytes(dir.File("x.gguf"), [1, 2, 3]);
        e = Assert.Throws<InvalidModelFileException>(() => WeightSources.Open(dir.Path));
        Assert.Contains("pass the .gguf file itself", e.Message);
        e = Assert.Throws<InvalidModelFileException>(() => WeightSources.Open(dir.File("x.gguf")));
        Assert.Contains("too short", e.Message);

        File.WriteAllBytes(dir.File("pytorch_model.bin"), [(byte)'P', (byte)'K', 3, 4, 0, 0, 0, 0]);
        e = Assert.Throws<InvalidModelFileException>(() => WeightSources.Open(dir.File("pytorch_model.bin")));
        Assert.Contains("PyTorch", e.Message);

        File.WriteAllBytes(dir.File("empty.bin"), []);
        e = Assert.Throws<InvalidModelFileException>(() => WeightSources.Open(dir.File("empty.bin")));
        Assert.Contains("empty", e.Message);

        Assert.Throws<RunaheadException>(() => WeightSources.Open(" "));
    }
}
