using System.Text;
using System.Text.Json;
using Runahead.Formats.Gguf;
using Runahead.Tests.Models;

namespace Runahead.Tests.Generation;

public sealed class GenerateCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("runahead-generate-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static (int Rc, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int rc = Runahead.Cli.Program.Run(args, stdout, stderr);
        return (rc, stdout.ToString(), stderr.ToString());
    }

    /// <summary>A tiny random Llama with a synthetic SentencePiece vocabulary, written as GGUF.</summary>
    private string SynthesizedTinyModel()
    {
        var path = Path.Combine(_dir, "tiny.gguf");
        var config = RandomWeightSource.LlamaConfig with { VocabSize = 300, ContextLength = 64 };
        using var source = new RandomWeightSource(config);
        GgufModelWriter.Convert(source, path, GgufTokenizerMetadata.Synthetic(config.VocabSize));
        return path;
    }

    [SkippableFact]
    public void StoriesGreedyPrintsTheRunCText()
    {
        var expected = File.ReadAllText(Fixtures.Path("reference/out_t0_n64_p1.txt"));
        var (rc, output, err) = Run("generate", "--model", Fixtures.Path("llama2c/stories260K.bin"), "--tokenizer", Fixtures.Path("llama2c/tok512.bin"),
            "--prompt", "Once upon a time", "-n", "60", "--temperature", "0", "--threads", "2");
        Assert.True(rc == 0, err);
        Assert.Equal(expected, output);
        Assert.Contains("prompt tokens: 5", err);
        Assert.Contains("TTFT", err);
        Assert.Contains("tok/s", err);
    }

    [SkippableFact]
    public void JsonHasIdsTextAndTimings()
    {
        var (rc, output, err) = Run("generate", "--model", Fixtures.Path("gguf/stories260K.gguf"), "--prompt", "Once upon a time",
            "-n", "20", "--temperature", "0", "--json");
        Assert.True(rc == 0, err);
        using var doc = JsonDocument.Parse(output);
        var root = doc.RootElement;
        Assert.Equal([1, 403, 407, 261, 378], root.GetProperty("prompt_ids").EnumerateArray().Select(e => e.GetInt32()));
        var (_, generated) = ReferenceData.StoriesIds();
        Assert.Equal(generated.Take(20), root.GetProperty("generated_ids").EnumerateArray().Select(e => e.GetInt32()));
        Assert.StartsWith(", there was a little girl", root.GetProperty("text").GetString());
        Assert.True(root.GetProperty("ttft_ms").GetDouble() > 0);
        Assert.True(root.GetProperty("prompt_tokens_per_s").GetDouble() > 0);
        Assert.True(root.GetProperty("decode_tokens_per_s").GetDouble() > 0);
    }

    [Fact]
    public void StreamsTokensFromASynthesizedModel()
    {
        var model = SynthesizedTinyModel();
        var stdout = new RecordingWriter();
        var stderr = new StringWriter();
        int rc = Runahead.Cli.Program.Run(["generate", "--model", model, "--prompt", "the", "-n", "12", "--seed", "5", "--threads", "1"], stdout, stderr);
        Assert.True(rc == 0, stderr.ToString());
        // The prompt, then pieces written one by one as tokens arrive, then the newline.
        Assert.True(stdout.Writes >= 4, $"only {stdout.Writes} writes");
        Assert.Contains("decode: 12 tokens", stderr.ToString());

        // Same seed, same text; --json agrees with the streamed ids.
        var again = Run("generate", "--model", model, "--prompt", "the", "-n", "12", "--seed", "5", "--threads", "1");
        Assert.Equal(stdout.ToString(), again.Out);
    }

    [Fact]
    public void WithoutModelSynthesizesTheDefaultOnceIntoTheCache()
    {
        var cache = Path.Combine(_dir, "cache");
        var oldCache = Environment.GetEnvironmentVariable("RUNAHEAD_CACHE");
        var oldShape = Environment.GetEnvironmentVariable("RUNAHEAD_DEFAULT_SHAPE");
        Environment.SetEnvironmentVariable("RUNAHEAD_CACHE", cache);
        Environment.SetEnvironmentVariable("RUNAHEAD_DEFAULT_SHAPE", "tiny"); // the real default is 2 GiB
        try
        {
            var first = Run("generate", "-n", "5", "--temperature", "0", "--threads", "1");
            Assert.True(first.Rc == 0, first.Err);
            Assert.StartsWith(Runahead.Cli.Commands.GenerateCommand.DefaultPrompt, first.Out);
            Assert.Contains("synthesizing the default model", first.Err);
            Assert.Single(Directory.GetFiles(cache, "*.gguf"));

            var second = Run("generate", "-n", "5", "--temperature", "0", "--threads", "1");
            Assert.True(second.Rc == 0, second.Err);
            Assert.DoesNotContain("synthesizing", second.Err);
            Assert.Equal(first.Out, second.Out);
        }
        finally
        {
            Environment.SetEnvironmentVariable("RUNAHEAD_CACHE", oldCache);
            Environment.SetEnvironmentVariable("RUNAHEAD_DEFAULT_SHAPE", oldShape);
        }
    }

    [Fact]
    public void PromptIdsWithoutTokenizerPrintIds()
    {
        var path = Path.Combine(_dir, "bare.gguf");
        using (var source = RandomWeightSource.Create("falcon-new")) GgufModelWriter.Convert(source, path);
        var (rc, output, err) = Run("generate", "--model", path, "--prompt-ids", "3,4,5", "-n", "4", "--temperature", "0", "--json");
        Assert.True(rc == 0, err);
        using var doc = JsonDocument.Parse(output);
        Assert.Equal(4, doc.RootElement.GetProperty("generated_ids").GetArrayLength());
    }

    [Fact]
    public void BadInputGivesOneLineErrors()
    {
        var model = SynthesizedTinyModel();
        void AssertError(string contains, params string[] args)
        {
            var (rc, _, err) = Run(args);
            Assert.NotEqual(0, rc);
            Assert.Contains(contains, err);
            Assert.Single(err.Trim().Split('\n'));
        }
        AssertError("only one of", "generate", "--model", model, "--prompt", "a", "--prompt-ids", "1");
        AssertError("--prompt-ids: 'x'", "generate", "--model", model, "--prompt-ids", "1,x");
        AssertError("vocabulary", "generate", "--model", model, "--prompt-ids", "1,100000");
        AssertError("context length of 64", "generate", "--model", model, "--prompt-ids", string.Join(",", Enumerable.Repeat(5, 65)));
        AssertError("--top-p", "generate", "--model", model, "--top-p", "0");
        AssertError("missing.gguf", "generate", "--model", Path.Combine(_dir, "missing.gguf"));
        AssertError("--prompt-file", "generate", "--model", model, "--prompt-file", Path.Combine(_dir, "nope.txt"));
    }

    internal sealed class RecordingWriter : StringWriter
    {
        public int Writes { get; private set; }
        public override Encoding Encoding => Encoding.UTF8;
        public override void Write(string? value) { if (!string.IsNullOrEmpty(value)) Writes++; base.Write(value); }
    }
}
