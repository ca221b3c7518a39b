using System.Diagnostics;
using Runahead.Formats;

namespace Runahead.Numerics;

/// <summary>
/// One measured GEMM case: GFLOP/s are medians over repeats after warm-up. The *CpuGflops figures divide by the
/// process CPU time of the best repeat instead (per-core efficiency): on a shared machine they do not count time
/// the threads spent descheduled, so they compare kernels even when wall-clock numbers are noise.
/// </summary>
public sealed record GemmBenchmarkResult(int M, int N, int K, TensorType DType, int Threads, double OursGflops,
    double? OpenBlasGflops, double OursMedianMs, double? OpenBlasMedianMs, double OursCpuGflops, double? OpenBlasCpuGflops)
{
    /// <summary>ours / OpenBLAS, when OpenBLAS was measured.</summary>
    public double? Ratio => OpenBlasGflops is double t && t > 0 ? OursGflops / t : null;
}

/// <summary>
/// Times <see cref="LinearWeight.Forward"/> (and optionally OpenBLAS sgemm on the same F32 data, in the same process)
/// for Y[M, N] = X[M, K] W[N, K]^T.
/// </summary>
public static class GemmBenchmark
{
    public static GemmBenchmarkResult Run(int m, int n, int k, TensorType dtype, int threads, OpenBlas? openBlas, int repeats = 7, int warmup = 2)
    {
        if (m < 1 || n < 1 || k < 1) throw new RunaheadException($"bench gemm: shape {m}x{n}x{k} must be positive");
        if (dtype == TensorType.Q8_0 && k % 32 != 0) throw new RunaheadException($"--k: Q8_0 needs a multiple of 32, got {k}");
        if ((long)m * k > 1L << 28 || (long)n * k > 1L << 28 || (long)m * n > 1L << 28)
            throw new RunaheadException($"bench gemm: shape {m}x{n}x{k} is too large (each matrix at most 2^28 elements)");
        var rng = new Random(1234);
        var x = new float[m * k];
        var dense = new float[n * k];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        for (int i = 0; i < dense.Length; i++) dense[i] = (float)(rng.NextDouble() * 2 - 1) * 0.05f;
        var stored = Encode(dense, dtype);
        // OpenBLAS multiplies the same values our weight holds, so both compute the same product.
        DType.ToFloat32(stored, dtype, dense);
        var weight = LinearWeight.FromStored(stored, dtype, n, k);
        var y = new float[m * n];
        double flops = 2.0 * m * n * k;

        (double Ms, double CpuMs) ours;
        using (var pool = new ComputePool(threads))
        {
            ours = Measure(() => weight.Forward(x, m, y, pool), repeats, warmup);
        }
        (double Ms, double CpuMs)? theirs = null;
        if (openBlas is not null)
        {
            openBlas.SetThreads(threads);
            var y2 = new float[m * n];
            theirs = Measure(() => openBlas.Sgemm(x, dense, y2, m, n, k), repeats, warmup);
        }
        return new GemmBenchmarkResult(m, n, k, dtype, threads, flops / (ours.Ms * 1e6),
            theirs is { } t ? flops / (t.Ms * 1e6) : null, ours.Ms, theirs?.Ms,
            flops / (ours.CpuMs * 1e6), theirs is { } c ? flops / (c.CpuMs * 1e6) : null);
    }

    /// <summary>Median wall time and the smallest process CPU time over the repeats, in ms.</summary>
    private static (double Ms, double CpuMs) Measure(Action action, int repeats, int warmup)
    {
        for (int i = 0; i < warmup; i++) action();
        var times = new double[Math.Max(1, repeats)];
        double bestCpu = double.MaxValue;
        using var process = Process.GetCurrentProcess();
        for (int i = 0; i < times.Length; i++)
        {
            process.Refresh();
            var cpu0 = process.TotalProcessorTime;
            long start = Stopwatch.GetTimestamp();
            action();
            times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            process.Refresh();
            bestCpu = Math.Min(bestCpu, (process.TotalProcessorTime - cpu0).TotalMilliseconds);
        }
        Array.Sort(times);
        // CPU time has coarse granularity on some systems; never report it below the wall time of one thread.
        return (times[times.Length / 2], Math.Max(bestCpu, times[0]));
    }

    private static byte[] Encode(float[] values, TensorType type)
    {
        switch (type)
        {
            case TensorType.F32:
                return System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
            case TensorType.F16:
            {
                var bytes = new byte[values.Length * 2];
                for (int i = 0; i < values.Length; i++) BitConverter.TryWriteBytes(bytes.AsSpan(i * 2), (Half)values[i]);
                return bytes;
            }
            case TensorType.BF16:
            {
                var bytes = new byte[values.Length * 2];
                for (int i = 0; i < values.Length; i++) BitConverter.TryWriteBytes(bytes.AsSpan(i * 2), DType.FloatToBf16(values[i]));
                return bytes;
            }
            case TensorType.Q8_0:
            {
                var bytes = new byte[values.Length / 32 * 34];
                for (int b = 0; b < values.Length / 32; b++)
                {
                    float amax = 0;
                    for (int j = 0; j < 32; j++) amax = Math.Max(amax, Math.Abs(values[b * 32 + j]));
                    float d = amax / 127f;
                    BitConverter.TryWriteBytes(bytes.AsSpan(b * 34), (Half)d);
                    float inv = d > 0 ? 1f / d : 0f;
                    for (int j = 0; j < 32; j++) bytes[b * 34 + 2 + j] = (byte)(sbyte)Math.Round(values[b * 32 + j] * inv);
                }
                return bytes;
            }
            default:
                throw new RunaheadException($"--dtype: unsupported {type}");
        }
    }
}
