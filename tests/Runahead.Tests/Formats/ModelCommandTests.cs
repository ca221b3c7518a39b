using System.Text.Json;
using Runahead.Cli;

namespace Runahead.Tests.Formats;

public class ModelCommandTests
{
    private static (int rc, string stdout, string stderr) Run(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int rc = Program.Run(args, o, e);
        return (rc, o.ToString(), e.ToString());
    }

    [SkippableFact]
    public void InfoShowsArchitectureShapesAndVocabulary()
    {
        var (rc, stdout, stderr) = Run("model", "info", Fixtures.Path("gguf/stories260K.gguf"));
        Assert.True(rc == 0, stderr);
        Assert.Contains("architecture:   llama", stdout);
        Assert.Contains("dim 64, layers 5, heads 8, KV heads 4, head size 8, FFN 172", stdout);
        Assert.Contains("context length: 128", stdout);
        Assert.Contains("tokenizer: llama, 512 tokens", stdout);
        Assert.Contains("(292,800)", stdout);
        Assert.Contains("48 (48 F32)", stdout);
        Assert.Contains("blk.0.attn_q.weight", stdout);
    }

    [SkippableTheory]
    [InlineData("hf/tiny-falcon-new-arch", "falcon", 821504, 35)]
    [InlineData("llama2c/stories260K.bin", "llama", 260032, 47)]
    public void InfoJsonIsMachineReadable(string fixture, string arch, long parameters, int tensors)
    {
        var (rc, stdout, stderr) = Run("model", "info", "--json", Fixtures.Path(fixture));
        Assert.True(rc == 0, stderr);
        using var doc = JsonDocument.Parse(stdout);
        var r = doc.RootElement;
        Assert.Equal(arch, r.GetProperty("architecture").GetString());
        Assert.Equal(parameters, r.GetProperty("parameters").GetInt64());
        Assert.Equal(tensors, r.GetProperty("tensor_count").GetInt32());
        Assert.Equal(tensors, r.GetProperty("tensors").GetArrayLength());
    }

    [Fact]
    public void InfoOnAMissingOrBadFileIsOneLine()
    {
        using var dir = new TempDir();
        var (rc, stdout, stderr) = Run("model", "info", dir.File("nope.gguf"));
        Assert.Equal(1, rc);
        Assert.Equal("", stdout);
        Assert.Single(stderr.TrimEnd().Split('\n'));
        Assert.Contains("nope.gguf: file not found", stderr);

        File.WriteAllBytes(dir.File("bad.gguf"), new byte[100]);
        (rc, _, stderr) = Run("model", "info", dir.File("bad.gguf"));
        Assert.Equal(1, rc);
        Assert.Contains("bad.gguf: not a GGUF file (bad magic)", stderr);
        Assert.Single(stderr.TrimEnd().Split('\n'));
    }

    [Fact]
    public void SynthWritesALoadableModel()
    {
        using var dir = new TempDir();
        string path = dir.File("f.gguf");
        var (rc, stdout, stderr) = Run("model", "synth", "--arch", "falcon", "--shape", "tiny", "--dtype", "bf16", "--out", path, "--seed", "5");
        Assert.True(rc == 0, stderr);
        Assert.Contains("wrote", stdout);
        (rc, stdout, stderr) = Run("model", "info", "--json", path);
        Assert.True(rc == 0, stderr);
        using var doc = JsonDocument.Parse(stdout);
        Assert.Equal("falcon", doc.RootElement.GetProperty("architecture").GetString());
        Assert.Equal("llama", doc.RootElement.GetProperty("tokenizer_model").GetString());
        Assert.Equal(512, doc.RootElement.GetProperty("tokenizer_tokens").GetInt32());

        (rc, _, stderr) = Run("model", "synth", "--arch", "llama", "--shape", "tiny", "--out", path, "--context", "8192");
        Assert.True(rc == 0, stderr);
        (rc, stdout, stderr) = Run("model", "info", "--json", path);
        Assert.True(rc == 0, stderr);
        using (var longer = JsonDocument.Parse(stdout))
            Assert.Equal(8192, longer.RootElement.GetProperty("context_length").GetInt32());
        (rc, _, stderr) = Run("model", "synth", "--arch", "llama", "--shape", "tiny", "--out", path, "--context", "0");
        Assert.Equal(1, rc);
        Assert.Contains("--context", stderr);

        (rc, _, stderr) = Run("model", "synth", "--arch", "llama", "--shape", "huge", "--out", path);
        Assert.NotEqual(0, rc);
        Assert.Contains("huge", stderr);
    }

    [Fact]
    public void SynthAndInfoHandleTheLegacyQuants()
    {
        using var dir = new TempDir();
        string path = dir.File("q.gguf");
        var (rc, stdout, stderr) = Run("model", "synth", "--arch", "llama", "--shape", "tiny", "--dtype", "q4_1", "--out", path);
        Assert.True(rc == 0, stderr);
        (rc, stdout, stderr) = Run("model", "info", path);
        Assert.True(rc == 0, stderr);
        Assert.Contains("Q4_1", stdout);
        (rc, stdout, stderr) = Run("generate", "-m", path, "--temperature", "0", "-n", "4", "--prompt-ids", "1,5,9");
        Assert.True(rc == 0, stderr);
    }

    [SkippableFact]
    public void ConvertWritesGgufWithTheTokenizer()
    {
        using var dir = new TempDir();
        string path = dir.File("s.gguf");
        var (rc, stdout, stderr) = Run("model", "convert", Fixtures.Path("llama2c/stories260K.bin"), "--tokenizer", Fixtures.Path("llama2c/tok512.bin"), "--out", path);
        Assert.True(rc == 0, stderr);
        Assert.Contains("llama vocabulary of 512 tokens", stdout);
        (rc, stdout, _) = Run("model", "info", path);
        Assert.Equal(0, rc);
        Assert.Contains("tokenizer: llama, 512 tokens", stdout);
    }
}
