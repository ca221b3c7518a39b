using Runahead.Generation;
using Runahead.Prefill;

namespace Runahead.Tests.Generation;

public class LlmSessionTests
{
    [SkippableFact]
    public async Task TextPromptStreamsPiecesThatConcatenateToTheDecodedOutput()
    {
        int made = 0;
        using var session = LlmSession.Load(Fixtures.Path("gguf/stories260K.gguf"), new LlmSessionOptions
        {
            PrefillFactory = m => { made++; return new SinglePrefill(m, chunkTokens: 2); },
        });
        Assert.Equal(1, made);
        var pieces = new System.Text.StringBuilder();
        var ids = new List<int>();
        await foreach (var t in session.GenerateAsync("Once upon a time", new GenerationOptions { MaxNewTokens = 30, Sampling = SamplingOptions.Greedy }))
        {
            pieces.Append(t.Text);
            ids.Add(t.Id);
        }
        var prompt = session.Tokenize("Once upon a time");
        Assert.Equal(session.Detokenize([.. prompt, .. ids]), session.Detokenize(prompt) + pieces);
        Assert.Equal(5, session.LastStats!.PromptTokens);
        Assert.Equal(30, session.LastStats.GeneratedTokens);
    }

    [SkippableFact]
    public void MissingTokenizerIsAClearError()
    {
        var e = Assert.Throws<RunaheadException>(() => LlmSession.Load(Fixtures.Path("hf/tiny-llama-gqa")));
        Assert.Contains("--tokenizer", e.Message);
        using var idsOnly = LlmSession.Load(Fixtures.Path("hf/tiny-llama-gqa"), new LlmSessionOptions { RequireTokenizer = false });
        Assert.Null(idsOnly.Tokenizer);
        Assert.Throws<RunaheadException>(() => idsOnly.Tokenize("hello"));
    }
}
