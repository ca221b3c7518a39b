using System.Diagnostics;
using Runahead.Formats;

namespace Runahead.Numerics;

/// <summary>
/// One measured GEMM case. Ours and OpenBLAS run alternately in the same loop (ours, theirs, ours, ...) so load from
/// other processes hits both alike; GFLOP/s are given for the median and for the best repeat. On a shared machine the
/// best repeat is the better estimate of what each kernel can do, the median of what a user would see.
/// </summary>
public sealed record GemmBenchmarkResult(int M, int N, int K, TensorType DType, int Threads,
    double OursGflops, double OursBestGflops, double? OpenBlasGflops, double? OpenBlasBestGflops)
{
    /// <summary>ours / OpenBLAS on median times, when OpenBLAS was measured.</summary>
    public double? Ratio => OpenBlasGflops is double t && t > 0 ? OursGflops / t : null;

    /// <summary>ours / OpenBLAS on best times.</summary>
    public double? BestRatio => OpenBlasBestGflops is double t && t > 0 ? OursBestGflops / t : null;
}

/// <summary>
/// Times <see cref="LinearWeight.Forward"/> (and optionally OpenBLAS sgemm on the same F32 data, in the same process)
/// for Y[M, N] = X[M, K] W[N, K]^T.
/// </summary>
public static class GemmBenchmark
{
    /// <summary>Whether BF16 weights run on the generated vdpbf16ps kernel ("on") or widen to F32 ("off: why").</summary>
    public static string Bf16KernelStatus => Jit.Bf16Dot.Status;

    /// <summary>How much faster the kernel was than widening in the start-up probe; null when not measured.</summary>
    public static double? Bf16KernelSpeedup => Jit.Bf16Dot.MeasuredSpeedup;

    /// <summary>How long the BF16 path decision took (kernel generation, self-test, probe).</summary>
    public static TimeSpan Bf16DecisionTime => Jit.Bf16Dot.DecisionTime;

    public static GemmBenchmarkResult Run(int m, int n, int k, TensorType dtype, int threads, OpenBlas? openBlas, int repeats = 7, int warmup = 2)
    {
        if (m < 1 || n < 1 || k < 1) throw new RunaheadException($"bench gemm: shape {m}x{n}x{k} must be positive");
        int block = TensorTypeInfo.BlockSize(dtype);
        if (k % block != 0) throw new RunaheadException($"--k: {dtype} needs a multiple of {block}, got {k}");
        if ((long)m * k > 1L << 28 || (long)n * k > 1L << 28 || (long)m * n > 1L << 28)
            throw new RunaheadException($"bench gemm: shape {m}x{n}x{k} is too large (each matrix at most 2^28 elements)");
        var rng = new Random(1234);
        var x = new float[m * k];
        var dense = new float[n * k];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        for (int i = 0; i < dense.Length; i++) dense[i] = (float)(rng.NextDouble() * 2 - 1) * 0.05f;
        var stored = new byte[TensorTypeInfo.ByteSize(dtype, dense.Length)];
        TensorEncoding.FromFloat32(dense, dtype, stored);
        // OpenBLAS multiplies the same values our weight holds, so both compute the same product.
        DType.ToFloat32(stored, dtype, dense);
        var weight = LinearWeight.FromStored(stored, dtype, n, k);
        var y = new float[m * n];
        double flops = 2.0 * m * n * k;

        var y2 = new float[m * n];
        var ours = new double[Math.Max(1, repeats)];
        var theirs = new double[ours.Length];
        using (var pool = new ComputePool(threads))
        {
            openBlas?.SetThreads(threads);
            for (int i = 0; i < warmup; i++)
            {
                weight.Forward(x, m, y, pool);
                openBlas?.Sgemm(x, dense, y2, m, n, k);
            }
            for (int i = 0; i < ours.Length; i++)
            {
                long start = Stopwatch.GetTimestamp();
                weight.Forward(x, m, y, pool);
                ours[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                if (openBlas is null) continue;
                start = Stopwatch.GetTimestamp();
                openBlas.Sgemm(x, dense, y2, m, n, k);
                theirs[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            }
        }
        Array.Sort(ours);
        Array.Sort(theirs);
        double Gflops(double ms) => flops / (ms * 1e6);
        return new GemmBenchmarkResult(m, n, k, dtype, threads, Gflops(ours[ours.Length / 2]), Gflops(ours[0]),
            openBlas is null ? null : Gflops(theirs[theirs.Length / 2]), openBlas is null ? null : Gflops(theirs[0]));
    }
}
