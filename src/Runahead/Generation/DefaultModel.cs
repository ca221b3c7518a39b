using Runahead.Formats;
using Runahead.Formats.Synthetic;

namespace Runahead.Generation;

/// <summary>
/// The model `runahead generate` and `runahead bench prefill` use when no --model is given: a synthetic GGUF with
/// TinyLlama-1.1B's shape, BF16 weights (random, seeded) and a synthetic SentencePiece vocabulary, written once into
/// the cache folder ($RUNAHEAD_CACHE, else $XDG_CACHE_HOME/runahead, else ~/.cache/runahead). Its text is gibberish:
/// it exists to exercise and time the engine at a real model's size without downloading anything.
/// Chosen by measurement (2 shared cores): tinyllama-1.1b BF16 synthesizes in ~11 s and decodes at ~9 tok/s, which
/// is usable; $RUNAHEAD_DEFAULT_SHAPE picks another shape (e.g. "tiny" in tests, "smollm-135m").
/// </summary>
public static class DefaultModel
{
    public const string Shape = "tinyllama-1.1b";
    public const TensorType WeightType = TensorType.BF16;
    public const ulong Seed = 1;

    public static string CacheFolder()
    {
        var env = Environment.GetEnvironmentVariable("RUNAHEAD_CACHE");
        if (!string.IsNullOrEmpty(env)) return env;
        var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        if (!string.IsNullOrEmpty(xdg)) return Path.Combine(xdg, "runahead");
        return Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "runahead");
    }

    /// <summary>Path of the default model, synthesizing it the first time (progress goes to <paramref name="log"/>).</summary>
    public static string EnsureAvailable(TextWriter log, CancellationToken ct = default)
    {
        var shape = Environment.GetEnvironmentVariable("RUNAHEAD_DEFAULT_SHAPE");
        if (string.IsNullOrEmpty(shape)) shape = Shape;
        var config = ModelShapes.Get(shape);
        var folder = CacheFolder();
        var path = Path.Combine(folder, $"default-{shape}-{WeightType.ToString().ToLowerInvariant()}-seed{Seed}.gguf");
        if (File.Exists(path)) return path;
        try
        {
            Directory.CreateDirectory(folder);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new RunaheadException($"cannot create the model cache folder {folder} (set RUNAHEAD_CACHE): {e.Message}");
        }
        log.WriteLine($"runahead: no --model given; synthesizing the default model ({shape}, {WeightType}, random weights) into {path} (once)");
        // The writer goes through a temporary file and renames it, so a concurrent or interrupted run never leaves a
        // half-written model at this path.
        SyntheticModel.Write(config, WeightType, path, Seed, "default-" + shape, ct);
        return path;
    }
}
