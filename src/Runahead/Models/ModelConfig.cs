namespace Runahead.Models;

public enum ModelArchitecture
{
    Llama,
    Falcon,
}

/// <summary>How RoPE pairs the dimensions of a head.</summary>
public enum RopeStyle
{
    /// <summary>Adjacent pairs (2i, 2i+1): llama2.c, GGUF "llama".</summary>
    Interleaved,

    /// <summary>Halves (i, i + d/2), "rotate_half": Hugging Face Llama, Falcon, GGUF "falcon".</summary>
    NeoX,
}

/// <summary>Shape and hyper-parameters of a decoder-only model.</summary>
public sealed record ModelConfig
{
    public ModelArchitecture Architecture { get; init; }
    public int Dim { get; init; }
    public int Layers { get; init; }
    public int Heads { get; init; }
    public int KvHeads { get; init; }
    public int HeadDim { get; init; }
    public int FfnDim { get; init; }
    public int VocabSize { get; init; }
    public int ContextLength { get; init; }
    public float NormEps { get; init; } = 1e-5f;
    public float RopeTheta { get; init; } = 10000f;
    public RopeStyle Rope { get; init; } = RopeStyle.Interleaved;
    public bool TiedEmbeddings { get; init; }

    /// <summary>Falcon: attention and MLP both read the same normed input and their outputs are summed.</summary>
    public bool ParallelAttention { get; init; }

    /// <summary>Falcon new decoder architecture (Falcon-40B): separate LayerNorms for attention and MLP.</summary>
    public bool FalconNewDecoder { get; init; }

    public int BosId { get; init; } = 1;
    public int EosId { get; init; } = 2;

    public int QDim => Heads * HeadDim;
    public int KvDim => KvHeads * HeadDim;

    /// <summary>Largest value accepted for any dimension; a lying header must not make us allocate terabytes.</summary>
    public const int MaxDimension = 1 << 20;

    /// <summary>Throws <see cref="InvalidModelFileException"/> when the numbers cannot describe a real model.</summary>
    public void Validate(string path)
    {
        void Check(bool ok, string what)
        {
            if (!ok) throw new InvalidModelFileException(path, what);
        }
        Check(Dim is > 0 and <= MaxDimension, $"hidden size {Dim} is out of range");
        Check(Layers is > 0 and <= 4096, $"layer count {Layers} is out of range");
        Check(Heads is > 0 and <= 65536, $"head count {Heads} is out of range");
        Check(KvHeads > 0 && KvHeads <= Heads && Heads % KvHeads == 0, $"KV head count {KvHeads} does not divide head count {Heads}");
        Check(HeadDim is > 0 and <= 4096 && HeadDim % 2 == 0, $"head size {HeadDim} is out of range or odd");
        Check(FfnDim is > 0 and <= MaxDimension * 4, $"feed-forward size {FfnDim} is out of range");
        Check(VocabSize is > 0 and <= 1 << 22, $"vocabulary size {VocabSize} is out of range");
        Check(ContextLength is > 0 and <= 1 << 24, $"context length {ContextLength} is out of range");
        Check(NormEps > 0 && NormEps < 1, $"norm epsilon {NormEps} is out of range");
        Check(RopeTheta > 0 && float.IsFinite(RopeTheta), $"RoPE theta {RopeTheta} is out of range");
    }
}
