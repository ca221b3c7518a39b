using Runahead.Models;

namespace Runahead.Formats;

/// <summary>
/// One view of a model file (GGUF, safetensors + config.json, llama2.c): its configuration and its tensors under
/// canonical (GGUF-style) names, their bytes memory-mapped where the file allows it.
///
/// Canonical names: token_embd.weight, output_norm.weight (+ .bias), output.weight (absent when tied),
/// blk.N.attn_norm.weight (+ .bias; the norm feeding attention), blk.N.attn_norm_2.weight (+ .bias; Falcon new
/// decoder architecture: the norm feeding the MLP; GGUF files store these two under swapped names, see FalconNormNames),
/// blk.N.attn_q.weight, blk.N.attn_k.weight, blk.N.attn_v.weight, or blk.N.attn_qkv.weight (fused rows: all Q heads,
/// then all K heads, then all V heads), blk.N.attn_output.weight, blk.N.ffn_norm.weight, blk.N.ffn_gate.weight,
/// blk.N.ffn_up.weight, blk.N.ffn_down.weight (+ .bias for any of them when the model has biases).
/// </summary>
public interface IWeightSource : IDisposable
{
    /// <summary>The path the user gave (file or folder); used in error messages.</summary>
    string SourcePath { get; }

    /// <summary>"gguf", "safetensors" or "llama2c".</summary>
    string FormatName { get; }

    ModelConfig Config { get; }

    IReadOnlyList<TensorInfo> Tensors { get; }

    bool TryGetTensor(string name, out TensorInfo info);

    /// <summary>The raw stored bytes of a tensor (valid until the source is disposed).</summary>
    ReadOnlySpan<byte> GetTensorBytes(TensorInfo tensor);

    /// <summary>Pointer to the same bytes, for kernels that take pointers.</summary>
    unsafe byte* GetTensorPointer(TensorInfo tensor);
}
