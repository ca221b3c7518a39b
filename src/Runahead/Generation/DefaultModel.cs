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
        long expected = ApproximateFileBytes(config);
        log.WriteLine(FormattableString.Invariant(
            $"runahead: no --model given; synthesizing the default model ({shape}, {WeightType}, random weights, about {expected / 1e9:0.0} GB) into {path} (once)"));
        log.Flush();
        // The writer goes through a temporary file and renames it, so a concurrent or interrupted run never leaves a
        // half-written model at this path; its growing size is the progress shown.
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var writing = Task.Run(() => SyntheticModel.Write(config, WeightType, path, Seed, "default-" + shape, ct), ct);
        while (true)
        {
            // WhenAny never throws, so a failed write surfaces below with its own exception, not an AggregateException.
            Task.WhenAny(writing, Task.Delay(ProgressInterval, ct)).GetAwaiter().GetResult();
            if (writing.IsCompleted) break;
            ct.ThrowIfCancellationRequested();
            long written = TemporaryBytes(folder, path);
            log.WriteLine(FormattableString.Invariant(
                $"runahead: synthesizing: {written / 1e9:0.00} of ~{expected / 1e9:0.00} GB ({Math.Min(99, 100.0 * written / expected):0}%), {clock.Elapsed.TotalSeconds:0} s"));
            log.Flush();
        }
        writing.GetAwaiter().GetResult();
        log.WriteLine(FormattableString.Invariant($"runahead: default model written in {clock.Elapsed.TotalSeconds:0.0} s"));
        return path;
    }

    private static readonly TimeSpan ProgressInterval = TimeSpan.FromSeconds(2);

    /// <summary>The file's size to within its metadata: every matrix in <see cref="WeightType"/>, norms in F32.</summary>
    private static long ApproximateFileBytes(Models.ModelConfig c)
    {
        long layer = (long)c.Dim * c.QDim * 2 + 2L * c.Dim * c.KvDim + 3L * c.Dim * c.FfnDim;
        long matrices = c.Layers * layer + (c.TiedEmbeddings ? 1 : 2) * (long)c.VocabSize * c.Dim;
        return matrices * TensorTypeInfo.ByteSize(WeightType, 1) + (2L * c.Layers + 1) * c.Dim * 4;
    }

    /// <summary>Bytes written so far into the writer's temporary file(s) for <paramref name="path"/>.</summary>
    private static long TemporaryBytes(string folder, string path)
    {
        long bytes = 0;
        try
        {
            foreach (var file in Directory.EnumerateFiles(folder, "." + Path.GetFileName(path) + ".*.tmp"))
                bytes = Math.Max(bytes, new FileInfo(file).Length);
        }
        catch (IOException)
        {
            // Renamed or removed while we looked: the next poll (or the end of the write) tells.
        }
        return bytes;
    }
}
