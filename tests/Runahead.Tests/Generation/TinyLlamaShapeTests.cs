using Runahead.Formats;
using Runahead.Formats.Synthetic;
using Runahead.Tests.Prefill;

namespace Runahead.Tests.Generation;

/// <summary>
/// The engine core's acceptance: `runahead generate` on a synthesized TinyLlama-1.1B (the real shape, 2.2 GB of BF16
/// weights, not a scaled-down one) streams tokens. Serial: it needs a few GB of memory for a moment.
/// </summary>
[Collection(WorkerProcessCollection.Name)]
public sealed class TinyLlamaShapeTests
{
    [Fact]
    public void GenerateStreamsTokensFromASynthesizedTinyLlama()
    {
        var dir = Directory.CreateTempSubdirectory("runahead-tinyllama-");
        try
        {
            var path = Path.Combine(dir.FullName, "tinyllama-1.1b-bf16.gguf");
            SyntheticModel.Write(ModelShapes.Get("tinyllama-1.1b"), TensorType.BF16, path, seed: 3);
            var stdout = new GenerateCommandTests.RecordingWriter();
            var stderr = new StringWriter();
            int rc = Runahead.Cli.Program.Run(["generate", "--model", path, "--prompt", "Once upon a time", "-n", "4", "--seed", "1"], stdout, stderr);
            Assert.True(rc == 0, stderr.ToString());
            Assert.StartsWith("Once upon a time", stdout.ToString());
            // The prompt, then one write per generated piece as it arrives.
            Assert.True(stdout.Writes >= 3, $"only {stdout.Writes} writes: {stdout}");
            Assert.Contains("decode: 4 tokens", stderr.ToString());
        }
        finally
        {
            dir.Delete(true);
        }
    }
}
