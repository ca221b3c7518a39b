using Runahead.Generation;
using Runahead.Models;

namespace Runahead.Tests.Generation;

/// <summary>Text generated from stories260K through the library API equals llama2.c run.c's output.</summary>
public class StoriesTextTests
{
    public static TheoryData<string, string?> Forms => new()
    {
        { "llama2c/stories260K.bin", "llama2c/tok512.bin" },
        { "gguf/stories260K.gguf", null },
        { "hf/stories260K", "llama2c/tok512.bin" },
    };

    private static LlmSession Open(string model, string? tokenizer) => LlmSession.Load(Fixtures.Path(model), new LlmSessionOptions
    {
        TokenizerPath = tokenizer == null ? null : Fixtures.Path(tokenizer),
        // llama.cpp's converter wrote context_length 128 into the GGUF; the model was trained with 512.
        Model = new ModelLoadOptions { Threads = 2, ContextLength = 512 },
    });

    /// <summary>run.c prints the prompt, then every generated piece, then a newline.</summary>
    private static async Task<string> RunLikeRunC(LlmSession session, int[] prompt, int positions)
    {
        var text = new System.Text.StringBuilder(new TextStreamer(session.Tokenizer!, prompt).Prefix);
        // run.c's -n counts positions: the last prompt position already yields the first new token.
        var options = new GenerationOptions { MaxNewTokens = positions - prompt.Length + 1, Sampling = SamplingOptions.Greedy };
        await foreach (var t in session.GenerateAsync(prompt, options)) text.Append(t.Text);
        return text.Append('\n').ToString();
    }

    [SkippableTheory]
    [MemberData(nameof(Forms))]
    public async Task OnceUponATimeGreedy64PositionsMatchesRunC(string model, string? tokenizer)
    {
        var expected = File.ReadAllText(Fixtures.Path("reference/out_t0_n64_p1.txt"));
        var (promptIds, generated) = Models.ReferenceData.StoriesIds();
        using var session = Open(model, tokenizer);
        var prompt = session.Tokenize("Once upon a time");
        Assert.Equal(promptIds, prompt);
        Assert.Equal(expected, await RunLikeRunC(session, prompt, 64));
        Assert.Equal(generated, session.LastStats!.GeneratedIds);
    }

    [SkippableFact]
    public void FindsTheLlama2cTokenizerBesideTheModel()
    {
        // As llama2.c ships them: stories260K.bin next to tok512.bin.
        using var session = LlmSession.Load(Fixtures.Path("llama2c/stories260K.bin"));
        Assert.Equal([1, 403, 407, 261, 378], session.Tokenize("Once upon a time"));
    }

    [SkippableTheory]
    [MemberData(nameof(Forms))]
    public async Task NoPromptGreedy256PositionsMatchesRunC(string model, string? tokenizer)
    {
        var expected = File.ReadAllText(Fixtures.Path("reference/out_t0_n256_noprompt.txt"));
        using var session = Open(model, tokenizer);
        var prompt = session.Tokenize("");
        Assert.Equal([1], prompt);
        Assert.Equal(expected, await RunLikeRunC(session, prompt, 256));
    }
}
