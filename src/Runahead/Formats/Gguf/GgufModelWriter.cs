using System.Buffers;
using System.Runtime.InteropServices;
using Runahead.Models;
using Runahead.Numerics;

namespace Runahead.Formats.Gguf;

/// <summary>Writes models as GGUF files that llama.cpp and <see cref="GgufWeightSource"/> read back unchanged.</summary>
public static class GgufModelWriter
{
    /// <summary>The GGUF architecture name of a configuration ("llama" or "falcon").</summary>
    public static string ArchName(ModelConfig c) => c.Architecture == ModelArchitecture.Falcon ? "falcon" : "llama";

    /// <summary>Adds general.* and {arch}.* keys (llama.cpp's names) describing <paramref name="c"/>.</summary>
    public static void AddModelMetadata(GgufWriter w, ModelConfig c, string name)
    {
        string arch = ArchName(c);
        w.AddString("general.architecture", arch);
        w.AddString("general.name", name);
        w.AddUInt32($"{arch}.context_length", (uint)c.ContextLength);
        w.AddUInt32($"{arch}.embedding_length", (uint)c.Dim);
        w.AddUInt32($"{arch}.block_count", (uint)c.Layers);
        w.AddUInt32($"{arch}.feed_forward_length", (uint)c.FfnDim);
        w.AddUInt32($"{arch}.attention.head_count", (uint)c.Heads);
        w.AddUInt32($"{arch}.attention.head_count_kv", (uint)c.KvHeads);
        w.AddUInt32($"{arch}.vocab_size", (uint)c.VocabSize);
        if (c.HeadDim * c.Heads != c.Dim)
        {
            w.AddUInt32($"{arch}.attention.key_length", (uint)c.HeadDim);
            w.AddUInt32($"{arch}.attention.value_length", (uint)c.HeadDim);
        }
        w.AddUInt32($"{arch}.rope.dimension_count", (uint)c.HeadDim);
        w.AddFloat32($"{arch}.rope.freq_base", c.RopeTheta);
        if (c.Architecture == ModelArchitecture.Falcon) w.AddFloat32($"{arch}.attention.layer_norm_epsilon", c.NormEps);
        else w.AddFloat32($"{arch}.attention.layer_norm_rms_epsilon", c.NormEps);
        w.AddUInt32("tokenizer.ggml.bos_token_id", (uint)c.BosId);
        w.AddUInt32("tokenizer.ggml.eos_token_id", (uint)c.EosId);
    }

    /// <summary>
    /// The GGUF form of a configuration: GGUF "llama" stores q/k rows for interleaved RoPE, so a Hugging Face Llama
    /// (rotate-half) is written with its q/k rows permuted back and reads back as <see cref="RopeStyle.Interleaved"/>.
    /// GGUF "falcon" is rotate-half.
    /// </summary>
    public static ModelConfig GgufConfig(ModelConfig c) => c with
    {
        Rope = c.Architecture == ModelArchitecture.Falcon ? RopeStyle.NeoX : RopeStyle.Interleaved,
        ParallelAttention = c.Architecture == ModelArchitecture.Falcon && c.ParallelAttention,
    };

    /// <summary>
    /// Converts any weight source to GGUF at <paramref name="outPath"/> (atomically). Matrices are stored as
    /// <paramref name="matrixType"/> when given (norms and biases stay F32, as llama.cpp does), otherwise in their
    /// stored type. <paramref name="tokenizer"/> adds a vocabulary.
    /// </summary>
    public static void Convert(IWeightSource source, string outPath, GgufTokenizerMetadata? tokenizer = null,
        TensorType? matrixType = null, CancellationToken cancellationToken = default)
    {
        var c = source.Config;
        if (c.Architecture == ModelArchitecture.Falcon && !c.ParallelAttention)
            throw new RunaheadException($"{source.SourcePath}: Falcon without parallel attention cannot be written as GGUF (llama.cpp's Falcon is always parallel)");
        var w = new GgufWriter();
        AddModelMetadata(w, GgufConfig(c), Path.GetFileNameWithoutExtension(source.SourcePath.TrimEnd('/', '\\')));
        if (tokenizer != null)
        {
            tokenizer.ApplyTo(w);
            // The model's own special ids win over the vocabulary's defaults.
            w.AddUInt32("tokenizer.ggml.bos_token_id", (uint)c.BosId);
            w.AddUInt32("tokenizer.ggml.eos_token_id", (uint)c.EosId);
        }
        bool unpermute = c.Architecture == ModelArchitecture.Llama && c.Rope == RopeStyle.NeoX;
        bool swapNorms = FalconNormNames.AreSwapped(ArchName(c), c.FalconNewDecoder);
        foreach (var t in source.Tensors)
        {
            int permuteHeads = 0;
            if (unpermute && t.Name.EndsWith(".attn_q.weight", StringComparison.Ordinal)) permuteHeads = c.Heads;
            else if (unpermute && t.Name.EndsWith(".attn_k.weight", StringComparison.Ordinal)) permuteHeads = c.KvHeads;
            else if (unpermute && (t.Name.EndsWith(".attn_q.bias", StringComparison.Ordinal) || t.Name.EndsWith(".attn_k.bias", StringComparison.Ordinal)))
                permuteHeads = t.Name.EndsWith(".attn_q.bias", StringComparison.Ordinal) ? c.Heads : c.KvHeads;
            var outType = matrixType is { } mt && t.Shape.Length == 2 && t.Shape[^1] % TensorTypeInfo.BlockSize(mt) == 0 ? mt : t.Type;
            if (t.Shape.Length == 1 && matrixType != null) outType = TensorType.F32;
            var tensor = t;
            int heads = permuteHeads;
            string storedName = swapNorms ? FalconNormNames.Swap(t.Name) : t.Name;
            w.AddTensor(storedName, outType, t.Shape, dst => WriteTensor(source, tensor, outType, heads, dst));
        }
        w.Write(outPath, cancellationToken);
    }

    /// <summary>Streams one tensor row by row, permuting rows and converting the element type as needed.</summary>
    private static void WriteTensor(IWeightSource source, TensorInfo t, TensorType outType, int permuteHeads, Stream dst)
    {
        // A vector is handled as a column of one-element rows, so bias permutation and conversion share this path.
        long rows = t.Shape[0];
        long cols = t.ElementCount / rows;
        if (outType == t.Type && permuteHeads == 0)
        {
            WriteRaw(source, t, dst);
            return;
        }
        int inRowBytes = (int)TensorTypeInfo.ByteSize(t.Type, cols);
        int outRowBytes = (int)TensorTypeInfo.ByteSize(outType, cols);
        int headDim = permuteHeads > 0 ? (int)(rows / permuteHeads) : 0;
        var floats = ArrayPool<float>.Shared.Rent((int)cols);
        var encoded = ArrayPool<byte>.Shared.Rent(outRowBytes);
        try
        {
            unsafe
            {
                byte* basePtr = source.GetTensorPointer(t);
                for (long r = 0; r < rows; r++)
                {
                    long srcRow = permuteHeads > 0 ? RotateHalfRowFor(r, headDim) : r;
                    var row = new ReadOnlySpan<byte>(basePtr + srcRow * inRowBytes, inRowBytes);
                    if (outType == t.Type) dst.Write(row);
                    else
                    {
                        DType.ToFloat32(row, t.Type, floats.AsSpan(0, (int)cols));
                        TensorEncoding.FromFloat32(floats.AsSpan(0, (int)cols), outType, encoded.AsSpan(0, outRowBytes));
                        dst.Write(encoded, 0, outRowBytes);
                    }
                }
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(floats);
            ArrayPool<byte>.Shared.Return(encoded);
        }
    }

    /// <summary>
    /// llama.cpp's convert_hf_to_gguf permute: within each head, interleaved row 2i + p comes from rotate-half row
    /// p * headDim/2 + i.
    /// </summary>
    public static long RotateHalfRowFor(long interleavedRow, int headDim)
    {
        long head = interleavedRow / headDim;
        int within = (int)(interleavedRow % headDim);
        return head * headDim + (within & 1) * (headDim / 2) + (within >> 1);
    }

    private static unsafe void WriteRaw(IWeightSource source, TensorInfo t, Stream dst)
    {
        byte* p = source.GetTensorPointer(t);
        long remaining = t.ByteSize;
        const int chunk = 1 << 24;
        while (remaining > 0)
        {
            int n = (int)Math.Min(chunk, remaining);
            dst.Write(new ReadOnlySpan<byte>(p, n));
            p += n;
            remaining -= n;
        }
    }

    /// <summary>
    /// The vocabulary that goes with a source: its GGUF tokenizer keys, a tokenizer.json beside an HF checkpoint, or
    /// a llama2.c tokenizer (<paramref name="tokenizerPath"/>, else tokenizer.bin beside the checkpoint).
    /// </summary>
    public static GgufTokenizerMetadata? FindTokenizer(IWeightSource source, string? tokenizerPath = null)
    {
        var c = source.Config;
        if (tokenizerPath != null)
        {
            return tokenizerPath.EndsWith(".json", StringComparison.OrdinalIgnoreCase)
                ? GgufTokenizerMetadata.FromHfTokenizerJson(tokenizerPath, c.BosId, c.EosId, c.VocabSize)
                : GgufTokenizerMetadata.FromLlama2c(tokenizerPath, c.VocabSize, c.BosId, c.EosId);
        }
        switch (source)
        {
            case GgufWeightSource g:
                return GgufTokenizerMetadata.FromGguf(g.File);
            case Safetensors.SafetensorsWeightSource s:
            {
                string json = Path.Combine(s.FolderPath, "tokenizer.json");
                return File.Exists(json) ? GgufTokenizerMetadata.FromHfTokenizerJson(json, c.BosId, c.EosId, c.VocabSize) : null;
            }
            default:
            {
                // llama2.c names its default vocabulary tokenizer.bin and custom ones tok{vocab size}.bin.
                string dir = Path.GetDirectoryName(Path.GetFullPath(source.SourcePath)) ?? ".";
                foreach (var name in new[] { "tokenizer.bin", $"tok{c.VocabSize}.bin" })
                {
                    string bin = Path.Combine(dir, name);
                    if (File.Exists(bin)) return GgufTokenizerMetadata.FromLlama2c(bin, c.VocabSize, c.BosId, c.EosId);
                }
                return null;
            }
        }
    }
}
