using Runahead.Numerics;

namespace Runahead.Models;

/// <summary>How <see cref="Model.Load"/> prepares a model.</summary>
public sealed record ModelLoadOptions
{
    /// <summary>Compute threads of the model's pool (ignored when <see cref="Pool"/> is given).</summary>
    public int Threads { get; init; } = Environment.ProcessorCount;

    /// <summary>An existing pool to share (the caller keeps ownership); null: the model creates and owns one.</summary>
    public ComputePool? Pool { get; init; }

    /// <summary>
    /// Largest chunk of tokens one GEMM pass handles in <see cref="Model.Forward"/> when a caller asks for a
    /// workspace without saying how big (bounds workspace memory for long prompts).
    /// </summary>
    public int MaxChunkTokens { get; init; } = 512;

    /// <summary>
    /// Overrides the context length read from the file (some converters write a smaller one than the model was
    /// trained with, e.g. llama.cpp's llama2.c converter writes 128 for stories260K).
    /// </summary>
    public int? ContextLength { get; init; }

    /// <summary>Whether disposing the model also disposes the weight source (it reads embedding rows from it).</summary>
    public bool DisposeSource { get; init; } = true;

    /// <summary>
    /// Runs the linear weights from a packed-weight cache file (<see cref="PackedWeightCache"/>) mapped read-only, so
    /// processes loading the same model on one host share one copy of the packed panels through the page cache. The
    /// first load packs and writes the file (under a lock, so concurrent loads build it once); later loads map it.
    /// Off by default for a single process, which shares with nobody and would only gain a cache file as big as the
    /// packed weights; the prefill rank workers turn it on (see <see cref="Prefill.PrefillRankProgram"/>).
    /// </summary>
    public bool SharedWeights { get; init; }

    /// <summary>Folder of the packed-weight cache files; null: <see cref="PackedWeightCache.DefaultFolder"/>.</summary>
    public string? SharedWeightsFolder { get; init; }

    /// <summary>
    /// Runs separately stored Q/K/V and gate/up weights as product groups (one pool dispatch and one activation packing
    /// per group), and lets a fused Q/K/V weight (Falcon) write q, k and v apart where they start on panel boundaries
    /// (no copy); the results are bit-identical. On by default; RUNAHEAD_GROUP_PROJECTIONS=0 turns it off, for measuring
    /// (the CLI refuses values it does not understand; here they leave the default).
    /// </summary>
    public bool GroupProjections { get; init; } = GroupProjectionsDefault();

    private static bool GroupProjectionsDefault()
    {
        try
        {
            return EnvironmentSettings.GroupProjections();
        }
        catch (RunaheadException)
        {
            return true;
        }
    }

    /// <summary>How long a load waits for another process building the same cache before packing privately.</summary>
    public TimeSpan SharedWeightsLockTimeout { get; init; } = TimeSpan.FromMinutes(10);
}
