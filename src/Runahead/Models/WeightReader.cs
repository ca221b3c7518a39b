using Runahead.Formats;
using Runahead.Formats.Gguf;
using Runahead.Numerics;

namespace Runahead.Models;

/// <summary>Reads canonical tensors from a weight source, checking names, shapes and sizes with one-line errors.</summary>
internal sealed class WeightReader
{
    private readonly IWeightSource _source;
    // At most one: weights come from a validated cache mapping, or are packed and appended to a cache being built.
    private readonly PackedWeightTable? _cached;
    private readonly PackedWeightWriter? _writer;

    public WeightReader(IWeightSource source) => _source = source;

    public WeightReader(IWeightSource source, PackedWeightTable cached) : this(source) => _cached = cached;

    public WeightReader(IWeightSource source, PackedWeightWriter writer) : this(source) => _writer = writer;

    public string Path => _source.SourcePath;

    public bool Has(string name) => _source.TryGetTensor(name, out _);

    public TensorInfo Require(string name, params long[] shape)
    {
        if (!_source.TryGetTensor(name, out var info))
            throw new InvalidModelFileException(Path, $"tensor '{name}' is missing");
        CheckShape(info, shape);
        long need = info.ByteSize;
        if (need < 0)
            throw new InvalidModelFileException(Path, $"tensor '{name}' of {info.ElementCount} elements is not a whole number of {info.Type} blocks");
        if (_source.GetTensorBytes(info).Length < need)
            throw new InvalidModelFileException(Path, $"tensor '{name}' holds fewer bytes than its shape {info.ShapeText} needs");
        return info;
    }

    public float[] Vector(string name, int length)
    {
        var info = Require(name, length);
        var v = new float[length];
        DType.ToFloat32(_source.GetTensorBytes(info), info.Type, v);
        return v;
    }

    public float[]? OptionalVector(string name, int length) => Has(name) ? Vector(name, length) : null;

    public LinearWeight Matrix(string name, int outFeatures, int inFeatures)
    {
        var info = Require(name, outFeatures, inFeatures);
        if (inFeatures % TensorTypeInfo.BlockSize(info.Type) != 0)
            throw new InvalidModelFileException(Path, $"tensor '{name}': {info.Type} rows of {inFeatures} are not whole blocks");
        // A mapped weight never touches the source's bytes, so they are not even paged in.
        if (_cached is not null) return _cached.Get(name, info.Type, outFeatures, inFeatures);
        var weight = LinearWeight.FromStored(_source.GetTensorBytes(info), info.Type, outFeatures, inFeatures);
        ReleaseMappedPages(info);
        return _writer is null ? weight : _writer.Append(name, weight);
    }

    /// <summary>
    /// The packed weight is all the forward pass reads, so the file pages it came from can leave the resident set
    /// (peak memory then stays near the packed weights instead of twice that). Only GGUF sources are known to hand out
    /// file-backed mapped bytes; other sources may return heap buffers, which must not be released.
    /// </summary>
    private unsafe void ReleaseMappedPages(TensorInfo info)
    {
        if (_source is GgufWeightSource) MappedPages.Release(_source.GetTensorPointer(info), info.ByteSize);
    }

    /// <summary>A linear layer "prefix.weight" with its optional "prefix.bias".</summary>
    public Linear Linear(string prefix, int outFeatures, int inFeatures) =>
        new(Matrix(prefix + ".weight", outFeatures, inFeatures), OptionalVector(prefix + ".bias", outFeatures));

    private void CheckShape(TensorInfo info, long[] shape)
    {
        // A 1-D vector may be stored as [n] or [1, n]; matrices must match exactly.
        bool ok = info.Shape.Length == shape.Length;
        for (int i = 0; ok && i < shape.Length; i++) ok = info.Shape[i] == shape[i];
        if (!ok && shape.Length == 1 && info.Shape.Length == 2 && info.Shape[0] == 1 && info.Shape[1] == shape[0]) ok = true;
        if (!ok)
            throw new InvalidModelFileException(Path, $"tensor '{info.Name}' has shape {info.ShapeText}, expected [{string.Join(", ", shape)}]");
    }
}
