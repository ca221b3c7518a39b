namespace Runahead.Text;

/// <summary>
/// The word-splitting rules that byte-level BPE vocabularies expect, named after llama.cpp's pre-tokenizer types
/// (GGUF tokenizer.ggml.pre).
/// </summary>
public enum PreTokenizerKind
{
    /// <summary>No splitting: the whole text is one word (SentencePiece-style BPE such as phi-3's tokenizer.json).</summary>
    None,
    /// <summary>llama.cpp's fallback for a BPE vocabulary without tokenizer.ggml.pre.</summary>
    Default,
    Gpt2,
    Llama3,
    Falcon,
    Starcoder,
    DeepseekCoder,
    /// <summary>Qwen2: the Llama-3 rule with single digits.</summary>
    Qwen2,
}
