using BenchmarkDotNet.Attributes;
using Runahead.Numerics;

namespace Runahead.Benchmarks;

/// <summary>
/// Single-prefill attention (c queries against c keys, causal) at TinyLlama-1.1B's shape: 32 query heads, 4 KV heads,
/// head size 64. DenseThenMask is the TSP baseline that computes every score. Bf16 runs the products on the vdpbf16ps
/// kernel where the CPU has it (F32 otherwise, so the two rows are then the same code).
/// </summary>
[MemoryDiagnoser]
public class AttentionBenchmarks
{
    private const int Heads = 32, KvHeads = 4, HeadDim = 64;
    private float[] _q = [], _k = [], _v = [], _out = [];
    private ComputePool _pool = null!;

    [Params(512, 1024, 2048, 4096)]
    public int Tokens { get; set; }

    [Params(AttentionMask.PrefixCausal, AttentionMask.DenseThenMask)]
    public AttentionMask Mask { get; set; }

    [Params(AttentionPrecision.F32, AttentionPrecision.Bf16)]
    public AttentionPrecision Precision { get; set; }

    [Params(2)]
    public int Threads { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _q = BenchData.Floats(Tokens * Heads * HeadDim, 1);
        _k = BenchData.Floats(Tokens * KvHeads * HeadDim, 2);
        _v = BenchData.Floats(Tokens * KvHeads * HeadDim, 3);
        _out = new float[_q.Length];
        _pool = new ComputePool(Threads);
    }

    [GlobalCleanup]
    public void Cleanup() => _pool.Dispose();

    [Benchmark]
    public void Forward() => Attention.Forward(_q, _k, _v, _out, Tokens, 0, Tokens, Heads, KvHeads, HeadDim, _pool, Mask, Precision);
}
