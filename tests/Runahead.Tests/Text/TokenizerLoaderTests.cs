using Runahead.Text;

namespace Runahead.Tests.Text;

public sealed class TokenizerLoaderTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("runahead-loader-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [SkippableFact]
    public void GgufModelGivesItsEmbeddedLlama2Vocabulary()
    {
        var tok = TokenizerLoader.Load(Fixtures.Path("gguf/llama-2-tiny-random.gguf"), null);
        Assert.IsType<SentencePieceTokenizer>(tok);
        Assert.Equal(32000, tok.VocabSize);
        Assert.Equal(new[] { 1, 15043, 3186 }, tok.Encode("Hello world", addBos: true));
        Assert.True(tok.DecodeStripsLeadingSpace);
    }

    [SkippableFact]
    public void HuggingFaceFolderWithoutTokenizerJsonTakesAnExplicitTokenizerBin()
    {
        string folder = Fixtures.Path("hf/stories260K");
        var e = Assert.ThrowsAny<RunaheadException>(() => TokenizerLoader.Load(folder, null));
        Assert.Contains("no tokenizer.json", e.Message);
        var tok = TokenizerLoader.Load(folder, Fixtures.Path("llama2c/tok512.bin"));
        Assert.Equal(512, tok.VocabSize);
        Assert.Equal(new[] { 1, 403, 407, 261, 378 }, tok.Encode("Once upon a time", addBos: true));
    }

    [SkippableFact]
    public void Llama2cCheckpointWithALargerVocabularyThanTheTokenizerIsRejected()
    {
        // A llama2.c header (dim, hidden, layers, heads, kv heads, vocab, seq) claiming 600 tokens.
        string model = Path.Combine(_dir, "model.bin");
        using (var w = new BinaryWriter(File.Create(model)))
            foreach (int v in new[] { 64, 172, 5, 8, 4, 600, 512 }) w.Write(v);
        var e = Assert.ThrowsAny<RunaheadException>(() => TokenizerLoader.Load(model, Fixtures.Path("llama2c/tok512.bin")));
        Assert.Contains("600", e.Message);
        Assert.Contains("tok512.bin", e.Message);
    }

    [SkippableFact]
    public void ExplicitTokenizerFilesAreRecognisedByContent()
    {
        // Copies under misleading names: the loader must look at the bytes, not the extension.
        string json = Path.Combine(_dir, "tokenizer.bin");
        File.Copy(Fixtures.Path("tokenizers/hf/gpt2/tokenizer.json"), json);
        Assert.IsType<BpeTokenizer>(TokenizerLoader.LoadFile(json));
        string bin = Path.Combine(_dir, "tok.json");
        File.Copy(Fixtures.Path("llama2c/tok512.bin"), bin);
        Assert.Equal(512, TokenizerLoader.LoadFile(bin).VocabSize);
        string gguf = Path.Combine(_dir, "vocab.json");
        File.Copy(Fixtures.Path("tokenizers/llamacpp/ggml-vocab-falcon.gguf"), gguf);
        Assert.Equal(65024, TokenizerLoader.LoadFile(gguf).VocabSize);
    }

    [Fact]
    public void MissingFilesAreReportedByName()
    {
        string missing = Path.Combine(_dir, "nope.gguf");
        var e = Assert.ThrowsAny<RunaheadException>(() => TokenizerLoader.Load(missing, null));
        Assert.Contains("nope.gguf", e.Message);
        var e2 = Assert.ThrowsAny<RunaheadException>(() => TokenizerLoader.Load(_dir, Path.Combine(_dir, "tok.bin")));
        Assert.Contains("tok.bin", e2.Message);
    }
}
