using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Engines;
using Runahead.Formats;
using Runahead.Models;
using Runahead.Numerics;

namespace Runahead.Benchmarks;

/// <summary>
/// The parts of one TinyLlama-1.1B decoder layer at a long prompt, timed separately so the attention share of
/// prefill time can be compared with its FLOP share (docs/PERFORMANCE.md). Few, long invocations.
/// </summary>
[SimpleJob(RunStrategy.Monitoring, launchCount: 1, warmupCount: 1, iterationCount: 3)]
public class PrefillLayerBenchmarks
{
    private const int Dim = 2048, Heads = 32, KvHeads = 4, HeadDim = 64, Ffn = 5632;
    private LinearWeight _wq = null!, _wk = null!, _wv = null!, _wo = null!, _gate = null!, _up = null!, _down = null!;
    private float[] _x = [], _norm = [], _q = [], _k = [], _v = [], _att = [], _o = [], _g = [], _u = [], _d = [], _nw = [];
    private ComputePool _pool = null!;

    [Params(4096)]
    public int Tokens { get; set; }

    [Params(TensorType.F32)]
    public TensorType DType { get; set; }

    [Params(2)]
    public int Threads { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        LinearWeight W(int n, int k, int seed) => LinearWeight.FromStored(BenchData.Stored(DType, n * k, seed), DType, n, k);
        _wq = W(Dim, Dim, 1); _wk = W(KvHeads * HeadDim, Dim, 2); _wv = W(KvHeads * HeadDim, Dim, 3); _wo = W(Dim, Dim, 4);
        _gate = W(Ffn, Dim, 5); _up = W(Ffn, Dim, 6); _down = W(Dim, Ffn, 7);
        int t = Tokens;
        _x = BenchData.Floats(t * Dim, 8); _nw = BenchData.Floats(Dim, 9);
        _norm = new float[t * Dim]; _q = new float[t * Dim]; _att = new float[t * Dim]; _o = new float[t * Dim];
        _k = new float[t * KvHeads * HeadDim]; _v = new float[t * KvHeads * HeadDim];
        _g = new float[t * Ffn]; _u = new float[t * Ffn]; _d = new float[t * Dim];
        _pool = new ComputePool(Threads);
        Projections();
    }

    [GlobalCleanup]
    public void Cleanup() => _pool.Dispose();

    /// <summary>All seven projections: 2 T (dim (dim + 2 kvDim) + dim^2 + 3 dim ffn) FLOPs.</summary>
    [Benchmark]
    public void Projections()
    {
        int t = Tokens;
        _wq.Forward(_norm, t, _q, _pool); _wk.Forward(_norm, t, _k, _pool); _wv.Forward(_norm, t, _v, _pool);
        _wo.Forward(_att, t, _o, _pool);
        _gate.Forward(_norm, t, _g, _pool); _up.Forward(_norm, t, _u, _pool); _down.Forward(_g, t, _d, _pool);
    }

    /// <summary>Causal attention: 2 heads headDim T (T + 1) FLOPs (scores and weighted sum over visible keys).</summary>
    [Benchmark]
    public void Attention() => Numerics.Attention.Forward(_q, _k, _v, _att, Tokens, 0, Tokens, Heads, KvHeads, HeadDim, _pool);

    /// <summary>Everything else in the layer: two RMSNorms, RoPE on q and k, SwiGLU, two residual adds.</summary>
    [Benchmark]
    public void Elementwise()
    {
        int t = Tokens;
        Ops.RmsNorm(_x, _nw, _norm, t, Dim, 1e-5f, _pool);
        Ops.Rope(_q, t, Heads, HeadDim, 0, 10000f, RopeStyle.Interleaved, _pool);
        Ops.Rope(_k, t, KvHeads, HeadDim, 0, 10000f, RopeStyle.Interleaved, _pool);
        System.Numerics.Tensors.TensorPrimitives.Add(_x, _o, _x);
        Ops.RmsNorm(_x, _nw, _norm, t, Dim, 1e-5f, _pool);
        Ops.SwiGlu(_g, _u, _pool);
        System.Numerics.Tensors.TensorPrimitives.Add(_x, _d, _x);
    }
}
