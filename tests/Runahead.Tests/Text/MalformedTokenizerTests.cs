using System.Buffers.Binary;
using System.Text;
using Runahead.Formats.Gguf;
using Runahead.Text;

namespace Runahead.Tests.Text;

/// <summary>Broken tokenizer files give one clear InvalidModelFileException naming the file, never a crash.</summary>
public sealed class MalformedTokenizerTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("runahead-text-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string WriteFile(string name, byte[] bytes)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private string WriteFile(string name, string text) => WriteFile(name, Encoding.UTF8.GetBytes(text));

    private static void AssertInvalid(string path, Action load, string fragment)
    {
        var e = Assert.ThrowsAny<RunaheadException>(load);
        Assert.Contains(Path.GetFileName(path), e.Message);
        Assert.Contains(fragment, e.Message, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain('\n', e.Message);
    }

    /// <summary>A small valid tokenizer.bin: unk, BOS, EOS, 256 byte tokens, then a few merges.</summary>
    private static byte[] TinyTokenizerBin(int maxLen = 8, params (string Piece, float Score)[] extra)
    {
        var pieces = new List<(string, float)> { ("<unk>", 0), ("\n<s>\n", 0), ("\n</s>\n", 0) };
        for (int b = 0; b < 256; b++) pieces.Add(($"<0x{b:X2}>", 0));
        pieces.AddRange(extra.Length > 0 ? extra : [(" ", -1), ("a", -2), ("b", -3), (" a", -4), ("ab", -5)]);
        var ms = new MemoryStream();
        var w = new BinaryWriter(ms);
        w.Write(maxLen);
        foreach (var (piece, score) in pieces)
        {
            var bytes = Encoding.UTF8.GetBytes(piece);
            w.Write(score);
            w.Write(bytes.Length);
            w.Write(bytes);
        }
        return ms.ToArray();
    }

    [Fact]
    public void TinyTokenizerBinWorks()
    {
        var path = WriteFile("tokenizer.bin", TinyTokenizerBin());
        var tok = TokenizerLoader.LoadFile(path);
        Assert.Equal(264, tok.VocabSize);
        // " a" (-4) beats "ab" (-5); "b" stays alone; "c" falls back to its byte.
        Assert.Equal(new[] { 1, 262, 261, 3 + 'c' }, tok.Encode("abc", addBos: true));
        Assert.Equal("abc", tok.Decode(tok.Encode("abc", addBos: true)));
    }

    [Fact]
    public void TruncatedTokenizerBinIsRejectedAtEveryCut()
    {
        var full = TinyTokenizerBin();
        // With the vocabulary size known (from the model), any cut is a truncation.
        for (int cut = 0; cut < full.Length; cut += 7)
        {
            var path = WriteFile("tokenizer.bin", full[..cut]);
            Assert.ThrowsAny<RunaheadException>(() => Llama2cTokenizerReader.Read(path, vocabSize: 264));
        }
        // Without it, a cut inside a record is still caught.
        var mid = WriteFile("mid.bin", full[..(full.Length - 2)]);
        AssertInvalid(mid, () => Llama2cTokenizerReader.Read(mid), "truncated");
    }

    [Fact]
    public void ModelNeedingMoreTokensThanTheFileHoldsIsRejected()
    {
        var path = WriteFile("tokenizer.bin", TinyTokenizerBin());
        AssertInvalid(path, () => Llama2cTokenizerReader.Read(path, vocabSize: 300), "truncated at token 264");
    }

    [Fact]
    public void LyingLengthsAreRejected()
    {
        var data = TinyTokenizerBin();
        // First record's length (after max_len and the score) set past max_token_length.
        var tooLong = (byte[])data.Clone();
        BinaryPrimitives.WriteInt32LittleEndian(tooLong.AsSpan(8), 9);
        var p1 = WriteFile("long.bin", tooLong);
        AssertInvalid(p1, () => Llama2cTokenizerReader.Read(p1), "length 9");

        var negative = (byte[])data.Clone();
        BinaryPrimitives.WriteInt32LittleEndian(negative.AsSpan(8), -5);
        var p2 = WriteFile("neg.bin", negative);
        AssertInvalid(p2, () => Llama2cTokenizerReader.Read(p2), "length -5");

        var hugeMax = (byte[])data.Clone();
        BinaryPrimitives.WriteInt32LittleEndian(hugeMax, int.MaxValue);
        var p3 = WriteFile("max.bin", hugeMax);
        AssertInvalid(p3, () => Llama2cTokenizerReader.Read(p3), "max_token_length");

        // A record whose length runs past the end of the file.
        var lastLen = (byte[])data.Clone();
        int lastRecord = data.Length - 2 - 4; // "ab": 2 bytes, preceded by its length
        BinaryPrimitives.WriteInt32LittleEndian(lastLen.AsSpan(lastRecord), 8);
        var p4 = WriteFile("past.bin", lastLen);
        AssertInvalid(p4, () => Llama2cTokenizerReader.Read(p4), "past the end");
    }

    [Fact]
    public void RandomCorruptionOfTokenizerBinNeverCrashes()
    {
        var data = TinyTokenizerBin();
        var rng = new Random(1234);
        for (int trial = 0; trial < 300; trial++)
        {
            var bad = (byte[])data.Clone();
            int flips = 1 + rng.Next(4);
            for (int f = 0; f < flips; f++) bad[rng.Next(bad.Length)] = (byte)rng.Next(256);
            try
            {
                var tok = Llama2cTokenizerReader.Parse("fuzz.bin", bad);
                tok.Decode(tok.Encode("ab ba\u00e9\U0001F642", addBos: true));
            }
            catch (RunaheadException)
            {
            }
        }
    }

    [Fact]
    public void UnrecognisedTokenizerFileIsRejected()
    {
        var path = WriteFile("weird.model", new byte[] { 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4, 5, 6, 7, 8, 9 });
        AssertInvalid(path, () => TokenizerLoader.LoadFile(path), "not a recognised tokenizer");
        var empty = WriteFile("empty.json", []);
        AssertInvalid(empty, () => TokenizerLoader.LoadFile(empty), "empty");
    }

    private const string ValidJson = """
        {"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "Ġ": 3}, "merges": ["a b"]},
         "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
         "added_tokens": [{"id": 4, "content": "<|end|>", "special": true}]}
        """;

    [Fact]
    public void TinyTokenizerJsonWorks()
    {
        var path = WriteFile("tokenizer.json", ValidJson);
        var tok = TokenizerLoader.LoadFile(path);
        Assert.Equal(5, tok.VocabSize);
        Assert.Equal(new[] { 2, 3, 0 }, tok.Encode("ab a", addBos: false));
        Assert.Equal("ab a", tok.Decode([2, 3, 0, 4]));
    }

    [Theory]
    [InlineData("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0,", "not valid JSON")]
    [InlineData("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 5}}}", "not contiguous")]
    [InlineData("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -1}}}", "not a valid token id")]
    [InlineData("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 99999999999}}}", "not a valid token id")]
    [InlineData("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}}}", "used by both")]
    [InlineData("{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}", "Unigram")]
    [InlineData("{\"model\": {\"type\": \"BPE\", \"vocab\": {}}}", "empty")]
    [InlineData("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [7]}}", "merge rule 0")]
    [InlineData("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"added_tokens\": [{\"id\": 0, \"content\": \"zz\"}]}", "conflicts")]
    [InlineData("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"normalizer\": {\"type\": \"NFKC\"}}", "normalizer 'NFKC'")]
    [InlineData("[1, 2, 3]", "top")]
    public void MalformedTokenizerJsonIsRejected(string json, string fragment)
    {
        var path = WriteFile("tokenizer.json", json);
        AssertInvalid(path, () => TokenizerLoader.LoadFile(path), fragment);
    }

    [Fact]
    public void TruncatedTokenizerJsonIsRejectedAtEveryCut()
    {
        for (int cut = 1; cut < ValidJson.Length - 1; cut += 5)
        {
            var path = WriteFile("tokenizer.json", ValidJson[..cut]);
            Assert.ThrowsAny<RunaheadException>(() => TokenizerLoader.LoadFile(path));
        }
    }

    [Fact]
    public void MalformedTokenizerConfigIsRejected()
    {
        WriteFile("tokenizer.json", ValidJson);
        WriteFile("tokenizer_config.json", "{\"bos_token\": ");
        var e = Assert.ThrowsAny<RunaheadException>(() => TokenizerLoader.Load(_dir, null));
        Assert.Contains("tokenizer_config.json", e.Message);
    }

    [Fact]
    public void SpecialTokensMapSuppliesBosAndEos()
    {
        WriteFile("tokenizer.json", ValidJson);
        WriteFile("special_tokens_map.json", "{\"bos_token\": {\"content\": \"<|end|>\"}, \"eos_token\": \"<|end|>\"}");
        WriteFile("tokenizer_config.json", "{\"add_bos_token\": true}");
        var tok = TokenizerLoader.Load(_dir, null);
        Assert.Equal(4, tok.BosId);
        Assert.Equal(4, tok.EosId);
        Assert.True(tok.AddBosByDefault);
        Assert.Equal(new[] { 4, 2 }, tok.Encode("ab", addBos: true));
    }

    [Fact]
    public void FolderWithoutTokenizerJsonNamesTheProblem()
    {
        var e = Assert.ThrowsAny<RunaheadException>(() => TokenizerLoader.Load(_dir, null));
        Assert.Contains("no tokenizer.json", e.Message);
    }

    [Fact]
    public void EncoderJsonWithOutOfRangeIdsIsRejected()
    {
        var enc = WriteFile("encoder.json", "{\"a\": 0, \"b\": 7}");
        var bpe = WriteFile("vocab.bpe", "a b\n");
        AssertInvalid(enc, () => Gpt2VocabularyFilesReader.Read(enc, bpe, PreTokenizerKind.Gpt2), "outside 0..1");
        var badBpe = WriteFile("bad.bpe", "#version: 0.2\nab\n");
        var enc2 = WriteFile("encoder2.json", "{\"a\": 0, \"b\": 1}");
        AssertInvalid(badBpe, () => Gpt2VocabularyFilesReader.Read(enc2, badBpe, PreTokenizerKind.Gpt2), "line 2");
    }

    private string WriteGguf(Action<GgufWriter> fill)
    {
        var w = new GgufWriter();
        w.AddString("general.architecture", "llama");
        fill(w);
        string path = Path.Combine(_dir, $"vocab{Guid.NewGuid():N}.gguf");
        w.Write(path);
        return path;
    }

    private static void SpmVocabulary(GgufWriter w, int extra = 0)
    {
        var tokens = new List<string> { "<unk>", "<s>", "</s>" };
        for (int b = 0; b < 256; b++) tokens.Add($"<0x{b:X2}>");
        tokens.AddRange(["\u2581", "a", "\u2581a"]);
        for (int i = 0; i < extra; i++) tokens.Add("x" + i);
        w.AddString("tokenizer.ggml.model", "llama");
        w.AddStringArray("tokenizer.ggml.tokens", tokens);
        w.AddFloat32Array("tokenizer.ggml.scores", tokens.Select((_, i) => -(float)i).ToArray());
        w.AddInt32Array("tokenizer.ggml.token_type", tokens.Select((t, i) => i == 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1).ToArray());
    }

    [Fact]
    public void TinyGgufVocabularyWorks()
    {
        var path = WriteGguf(w => SpmVocabulary(w));
        var tok = TokenizerLoader.Load(path, null);
        Assert.Equal(new[] { 1, 261, 261 }, tok.Encode("a a", addBos: true)); // "▁a▁a"
        Assert.Equal("a a", tok.Decode(tok.Encode("a a", addBos: true)));
    }

    [Fact]
    public void GgufSpecialTokenOutOfRangeIsRejected()
    {
        var path = WriteGguf(w => { SpmVocabulary(w); w.AddUInt32("tokenizer.ggml.bos_token_id", 5000); });
        AssertInvalid(path, () => TokenizerLoader.Load(path, null), "bos_token_id");
    }

    [Fact]
    public void GgufScoresShorterThanTokensAreRejected()
    {
        var path = WriteGguf(w =>
        {
            w.AddString("tokenizer.ggml.model", "llama");
            w.AddStringArray("tokenizer.ggml.tokens", ["<unk>", "<s>", "</s>", "a"]);
            w.AddFloat32Array("tokenizer.ggml.scores", [0f, 0f]);
        });
        AssertInvalid(path, () => TokenizerLoader.Load(path, null), "scores");
    }

    [Fact]
    public void GgufDuplicateTokensAreRejected()
    {
        var path = WriteGguf(w =>
        {
            w.AddString("tokenizer.ggml.model", "llama");
            w.AddStringArray("tokenizer.ggml.tokens", ["<unk>", "<s>", "</s>", "a", "a"]);
        });
        AssertInvalid(path, () => TokenizerLoader.Load(path, null), "duplicate token");
    }

    [Fact]
    public void GgufWithoutVocabularyOrWithUnknownKindsIsRejected()
    {
        var none = WriteGguf(_ => { });
        AssertInvalid(none, () => TokenizerLoader.Load(none, null), "tokenizer.ggml.model");
        var unigram = WriteGguf(w => { w.AddString("tokenizer.ggml.model", "t5"); w.AddStringArray("tokenizer.ggml.tokens", ["a"]); });
        AssertInvalid(unigram, () => TokenizerLoader.Load(unigram, null), "'t5'");
        var noMerges = WriteGguf(w => { w.AddString("tokenizer.ggml.model", "gpt2"); w.AddStringArray("tokenizer.ggml.tokens", ["a"]); });
        AssertInvalid(noMerges, () => TokenizerLoader.Load(noMerges, null), "merges");
        var badPre = WriteGguf(w =>
        {
            w.AddString("tokenizer.ggml.model", "gpt2");
            w.AddStringArray("tokenizer.ggml.tokens", ["a"]);
            w.AddStringArray("tokenizer.ggml.merges", []);
            w.AddString("tokenizer.ggml.pre", "klingon");
        });
        AssertInvalid(badPre, () => TokenizerLoader.Load(badPre, null), "klingon");
    }

    [Fact]
    public void GgufTruncatedAnywhereIsRejected()
    {
        var path = WriteGguf(w => SpmVocabulary(w));
        var full = File.ReadAllBytes(path);
        // The writer pads the end to the alignment; cutting only padding leaves a valid file.
        for (int cut = 0; cut < full.Length - GgufFile.DefaultAlignment; cut += 97)
        {
            var p = WriteFile("cut.gguf", full[..cut]);
            Assert.ThrowsAny<RunaheadException>(() => TokenizerLoader.Load(p, null));
        }
    }
}
