namespace Runahead.Formats;

/// <summary>
/// One named tensor of a weight source. <see cref="Shape"/> is row-major, outermost dimension first, as PyTorch
/// writes it: a linear layer's weight is [out_features, in_features] (GGUF's ne[] reversed).
/// </summary>
public sealed record TensorInfo(string Name, TensorType Type, long[] Shape)
{
    public long ElementCount
    {
        get { long n = 1; foreach (var d in Shape) n = checked(n * d); return n; }
    }

    public long ByteSize => TensorTypeInfo.ByteSize(Type, ElementCount);

    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
}
