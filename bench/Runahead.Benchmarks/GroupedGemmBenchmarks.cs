using BenchmarkDotNet.Attributes;
using Runahead.Formats;
using Runahead.Numerics;

namespace Runahead.Benchmarks;

/// <summary>
/// The prefill projections with and without the session-3 changes: Q/K/V as three products or one group, and the
/// output projection followed by a residual-add pass or adding inside the product. 512 tokens, smollm-135m and
/// TinyLlama-1.1B widths.
/// </summary>
public class GroupedGemmBenchmarks
{
    private const int M = 512;
    private LinearWeight _q = null!, _k = null!, _v = null!, _o = null!;
    private float[] _x = [], _yq = [], _yk = [], _yv = [], _hidden = [], _projection = [];
    private ComputePool _pool = null!;

    /// <summary>"dim x kvDim": smollm-135m (576, 3 KV heads of 64) and TinyLlama-1.1B (2048, 4 KV heads of 64).</summary>
    [Params("576x192", "2048x256")]
    public string Shape { get; set; } = "";

    [Params(TensorType.F32, TensorType.BF16)]
    public TensorType DType { get; set; }

    [Params(1, 2)]
    public int Threads { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var parts = Shape.Split('x');
        int dim = int.Parse(parts[0]), kvDim = int.Parse(parts[1]);
        LinearWeight Weight(int n, int seed) => LinearWeight.FromStored(BenchData.Stored(DType, n * dim, seed), DType, n, dim);
        _q = Weight(dim, 2);
        _k = Weight(kvDim, 3);
        _v = Weight(kvDim, 4);
        _o = Weight(dim, 5);
        _x = BenchData.Floats(M * dim, 1);
        _yq = new float[M * dim];
        _yk = new float[M * kvDim];
        _yv = new float[M * kvDim];
        _hidden = BenchData.Floats(M * dim, 6);
        _projection = new float[M * dim];
        _pool = new ComputePool(Threads);
    }

    [GlobalCleanup]
    public void Cleanup() => _pool.Dispose();

    [Benchmark(Baseline = true)]
    public void QkvSeparate()
    {
        _q.Forward(_x, M, _yq, _pool);
        _k.Forward(_x, M, _yk, _pool);
        _v.Forward(_x, M, _yv, _pool);
    }

    [Benchmark]
    public void QkvGrouped() => LinearWeight.ForwardGroup(_x, M, _q, _yq, _k, _yk, _v, _yv, _pool);

    [Benchmark]
    public void OutputThenAdd()
    {
        _o.Forward(_x, M, _projection, _pool);
        // The residual add as a separate pass, as it was before adds moved into the products.
        System.Numerics.Tensors.TensorPrimitives.Add(_hidden, _projection, _hidden);
    }

    // The hidden rows grow with every call; the timing does not depend on their values.
    [Benchmark]
    public void OutputAdding() => _o.Forward(_x, M, _hidden, _pool, addToOutput: true);
}
