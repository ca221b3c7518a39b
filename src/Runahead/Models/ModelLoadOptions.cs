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
}
