using BenchmarkDotNet.Attributes;
using Runahead.Formats;
using Runahead.Numerics;

namespace Runahead.Benchmarks;

/// <summary>Y = X W^T through <see cref="LinearWeight"/>: prefill shapes (M = 1024) and decode (M = 1).</summary>
[MemoryDiagnoser]
public class GemmBenchmarks
{
    private LinearWeight _weight = null!;
    private float[] _x = [], _y = [];
    private ComputePool _pool = null!;

    /// <summary>"M x N x K": TinyLlama-1.1B attention (2048x2048) and MLP (5632x2048) projections.</summary>
    [Params("1024x2048x2048", "1024x5632x2048", "1x2048x2048", "1x5632x2048")]
    public string Shape { get; set; } = "";

    [Params(TensorType.F32, TensorType.BF16, TensorType.F16)]
    public TensorType DType { get; set; }

    [Params(1, 2)]
    public int Threads { get; set; }

    private int _m;

    [GlobalSetup]
    public void Setup()
    {
        var (m, n, k) = BenchData.ParseShape(Shape);
        _m = m;
        _x = BenchData.Floats(m * k, 1);
        _y = new float[m * n];
        _weight = LinearWeight.FromStored(BenchData.Stored(DType, n * k, 2), DType, n, k);
        _pool = new ComputePool(Threads);
    }

    [GlobalCleanup]
    public void Cleanup() => _pool.Dispose();

    [Benchmark]
    public void Forward() => _weight.Forward(_x, _m, _y, _pool);
}

/// <summary>OpenBLAS sgemm on the same F32 shapes (needs libopenblas; throws a clear message without it).</summary>
public class OpenBlasGemmBenchmarks
{
    private OpenBlas _blas = null!;
    private float[] _x = [], _w = [], _y = [];
    private int _m, _n, _k;

    [Params("1024x2048x2048", "1024x5632x2048", "1x2048x2048")]
    public string Shape { get; set; } = "";

    [Params(1, 2)]
    public int Threads { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        (_m, _n, _k) = BenchData.ParseShape(Shape);
        _blas = OpenBlas.Load();
        _blas.SetThreads(Threads);
        _x = BenchData.Floats(_m * _k, 1);
        _w = BenchData.Floats(_n * _k, 2);
        _y = new float[_m * _n];
    }

    [Benchmark]
    public void Sgemm() => _blas.Sgemm(_x, _w, _y, _m, _n, _k);
}

/// <summary>
/// BF16 weights on the generated vdpbf16ps kernel (pairs layout, activations rounded to bf16) against the widening path
/// (BF16 panels widened to F32 per micro-panel), same shapes and data. Where the CPU has no AVX512_BF16 both rows
/// measure the widening path.
/// </summary>
[MemoryDiagnoser]
public class Bf16GemmBenchmarks
{
    private LinearWeight _weight = null!;
    private float[] _x = [], _y = [];
    private ComputePool _pool = null!;
    private int _m;

    [Params("1024x2048x2048", "1024x5632x2048", "4x5632x2048", "1x5632x2048")]
    public string Shape { get; set; } = "";

    [Params(false, true)]
    public bool Widening { get; set; }

    [Params(1, 2)]
    public int Threads { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var (m, n, k) = BenchData.ParseShape(Shape);
        _m = m;
        _x = BenchData.Floats(m * k, 1);
        _y = new float[m * n];
        bool saved = Runahead.Numerics.Jit.Bf16Dot.ForceWidening;
        Runahead.Numerics.Jit.Bf16Dot.ForceWidening = Widening;
        try
        {
            _weight = LinearWeight.FromStored(BenchData.Stored(TensorType.BF16, n * k, 2), TensorType.BF16, n, k);
        }
        finally
        {
            Runahead.Numerics.Jit.Bf16Dot.ForceWidening = saved;
        }
        _pool = new ComputePool(Threads);
    }

    [GlobalCleanup]
    public void Cleanup() => _pool.Dispose();

    [Benchmark]
    public void Forward() => _weight.Forward(_x, _m, _y, _pool);
}
