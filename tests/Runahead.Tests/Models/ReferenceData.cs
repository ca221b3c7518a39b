using System.Globalization;
using System.Text.Json;

namespace Runahead.Tests.Models;

/// <summary>Reads the reference outputs in shared/fixtures (llama2.c run.c and transformers).</summary>
internal static class ReferenceData
{
    /// <summary>reference/ids_t0_n64_p1.txt: prompt ids (BOS first) and generated ids.</summary>
    public static (int[] Prompt, int[] Generated) StoriesIds()
    {
        var lines = File.ReadAllLines(Fixtures.Path("reference/ids_t0_n64_p1.txt"));
        int[] Parse(string prefix) => lines.Single(l => l.StartsWith(prefix, StringComparison.Ordinal))[prefix.Length..]
            .Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray();
        return (Parse("PROMPT_IDS "), Parse("GEN_IDS "));
    }

    /// <summary>reference/logits_p1_allpos.txt: per position the token fed and the logits.</summary>
    public static (int[] Tokens, float[][] Logits) StoriesLogits()
    {
        var tokens = new List<int>();
        var logits = new List<float[]>();
        foreach (var line in File.ReadLines(Fixtures.Path("reference/logits_p1_allpos.txt")))
        {
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f.Length < 4) continue;
            Assert.Equal(tokens.Count, int.Parse(f[1], CultureInfo.InvariantCulture));
            tokens.Add(int.Parse(f[3], CultureInfo.InvariantCulture));
            logits.Add(f.Skip(4).Select(x => float.Parse(x, CultureInfo.InvariantCulture)).ToArray());
        }
        return (tokens.ToArray(), logits.ToArray());
    }

    public sealed record HfReference(int[] PromptIds, float[][] Logits, int[] GreedyNext);

    /// <summary>hf/NAME/reference.json (transformers, float32, eager attention).</summary>
    public static HfReference Hf(string folder)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "reference.json")));
        var root = doc.RootElement;
        int[] Ints(string name) => root.GetProperty(name).EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var logits = root.GetProperty("logits").EnumerateArray()
            .Select(row => row.EnumerateArray().Select(e => e.GetSingle()).ToArray()).ToArray();
        return new HfReference(Ints("prompt_ids"), logits, Ints("greedy_next_24"));
    }

    public static void AssertClose(float[] expected, ReadOnlySpan<float> actual, float tol, string what)
    {
        Assert.True(actual.Length >= expected.Length, $"{what}: {actual.Length} values, expected {expected.Length}");
        float worst = 0; int at = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            float d = MathF.Abs(expected[i] - actual[i]);
            if (!(d <= worst)) { worst = d; at = i; }
        }
        Assert.True(worst <= tol, $"{what}: max |diff| {worst} at {at} (expected {expected[at]}, got {actual[at]}) exceeds {tol}");
    }
}
