using System.Diagnostics;
using Runahead.Distributed;
using Runahead.Models;
using Runahead.Numerics;

namespace Runahead.Planning;

public sealed class HostCalibrationOptions
{
    /// <summary>Chunk sizes c measured.</summary>
    public IReadOnlyList<int> ChunkTokens { get; init; } = [32, 64, 128, 256, 512];

    /// <summary>Prefix lengths p measured.</summary>
    public IReadOnlyList<int> PrefixTokens { get; init; } = [0, 512, 1024, 2048, 4096];

    /// <summary>Timed runs per point after one warm-up; the median is kept.</summary>
    public int Repeats { get; init; } = 3;

    public CancellationToken CancellationToken { get; init; }
}

/// <summary>
/// Measures this host for the planner: one real decoder layer of a loaded model (the models layer's ComputeQkv and
/// Finish, so t_qkv and t_rest are measured separately, causal and dense), the LM head of one position, and the
/// shared-memory transport's bandwidth and latency between two ranks.
/// </summary>
public static class HostCalibrator
{
    public static Calibration Measure(Model model, string modelName, HostCalibrationOptions options, Action<string>? progress = null)
    {
        var rows = MeasureLayer(model, modelName, options, progress);
        progress?.Invoke("LM head");
        double head = MeasureHeadMs(model, options);
        progress?.Invoke("shared-memory transport");
        var (bandwidth, latency) = MeasureTransport(options.CancellationToken);
        return new Calibration
        {
            Device = $"{Environment.ProcessorCount} logical CPUs, {model.Pool.Threads} compute threads",
            IsRunaheadFormat = true,
            KvBytesPerElement = sizeof(float),
            TransportBytesPerSecond = bandwidth,
            TransportLatencySeconds = latency,
            TransportMethod = "shared-memory communicator, two ranks in one process (8 MiB messages; 64 B ping-pong)",
            Threads = model.Pool.Threads,
            HeadMs = new Dictionary<string, double> { [modelName] = head },
            Rows = rows,
        };
    }

    /// <summary>t_qkv(c), t(c, p) causal and dense of layer 0, in ms (median of the repeats).</summary>
    public static List<CalibrationRow> MeasureLayer(Model model, string modelName, HostCalibrationOptions options, Action<string>? progress = null)
    {
        var cfg = model.Config;
        int maxC = options.ChunkTokens.Max(), maxP = options.PrefixTokens.Max();
        if (options.ChunkTokens.Any(c => c < 1) || options.PrefixTokens.Any(p => p < 0))
            throw new RunaheadException("calibration grid: chunk sizes must be >= 1 and prefix lengths >= 0");
        if (maxC > model.MaxChunkTokens)
            throw new RunaheadException($"calibration grid: chunk {maxC} is larger than the model's chunk limit {model.MaxChunkTokens}");
        var layer = model.Layers[0];
        var ws = model.CreateWorkspace(maxC);
        var random = new Random(1234);
        var ids = new int[maxC];
        for (int i = 0; i < ids.Length; i++) ids[i] = random.Next(cfg.VocabSize);
        var input = new float[maxC * cfg.Dim];
        model.Embed(ids, input);
        var hidden = new float[input.Length];
        var q = new float[maxC * cfg.QDim];
        var k = new float[maxC * cfg.KvDim];
        var v = new float[maxC * cfg.KvDim];
        long kvLength = checked((long)(maxP + maxC) * cfg.KvDim);
        if (kvLength > int.MaxValue) throw new RunaheadException("calibration grid: prefix too long for this model's K,V width");
        var keys = new float[kvLength];
        var values = new float[kvLength];
        // Plausible prefix K,V: small random values (attention's cost does not depend on them).
        for (long i = 0; i < kvLength; i++)
        {
            keys[i] = (float)(random.NextDouble() - 0.5) * 0.2f;
            values[i] = (float)(random.NextDouble() - 0.5) * 0.2f;
        }

        var rows = new List<CalibrationRow>();
        var times = new double[Math.Max(1, options.Repeats)];
        foreach (int c in options.ChunkTokens)
        {
            foreach (int p in options.PrefixTokens)
            {
                options.CancellationToken.ThrowIfCancellationRequested();
                progress?.Invoke($"layer c={c} p={p}");
                int kvRows = c * cfg.KvDim;
                double qkv = Median(times, () =>
                {
                    layer.ComputeQkv(input.AsSpan(0, c * cfg.Dim), c, p, q.AsSpan(0, c * cfg.QDim), k.AsSpan(0, kvRows), v.AsSpan(0, kvRows), ws);
                });
                k.AsSpan(0, kvRows).CopyTo(keys.AsSpan(p * cfg.KvDim));
                v.AsSpan(0, kvRows).CopyTo(values.AsSpan(p * cfg.KvDim));
                // Finish updates hidden in place, so each run starts from a fresh copy (made outside the timing).
                double Rest(AttentionMask mask) => Median(times, () =>
                {
                    layer.Finish(hidden.AsSpan(0, c * cfg.Dim), c, q.AsSpan(0, c * cfg.QDim), keys.AsSpan(0, (p + c) * cfg.KvDim),
                        values.AsSpan(0, (p + c) * cfg.KvDim), p, p + c, ws, mask);
                }, copyCost: () => input.AsSpan(0, c * cfg.Dim).CopyTo(hidden));
                double causal = Rest(AttentionMask.PrefixCausal);
                double dense = Rest(AttentionMask.DenseThenMask);
                rows.Add(new CalibrationRow(modelName, c, p, qkv + causal, qkv + dense, qkv));
            }
        }
        return rows;
    }

    /// <summary>Final norm and LM head for one position, in ms.</summary>
    public static double MeasureHeadMs(Model model, HostCalibrationOptions options)
    {
        var ws = model.CreateWorkspace(1);
        var hidden = new float[model.Config.Dim];
        model.Embed([0], hidden);
        var logits = new float[model.Config.VocabSize];
        var times = new double[Math.Max(1, options.Repeats)];
        return Median(times, () => model.Logits(hidden, 1, logits, ws));
    }

    /// <summary>
    /// Bandwidth (bytes/s) from 8 MiB messages and one-way latency (s) from 64-byte ping-pongs between two ranks of
    /// the shared-memory communicator the runtime uses, both in this process.
    /// </summary>
    public static (double BytesPerSecond, double LatencySeconds) MeasureTransport(CancellationToken cancellationToken)
    {
        const int bigBytes = 8 << 20, bigCount = 8, pingCount = 200;
        using var segment = SharedMemorySegment.Create(2, 4L * bigBytes);
        using var a = new SharedMemoryCommunicator(segment, 0, null, TimeSpan.FromSeconds(30), ownsSegment: false);
        using var b = new SharedMemoryCommunicator(segment, 1, null, TimeSpan.FromSeconds(30), ownsSegment: false);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(60));
        var ct = timeout.Token;
        var big = new byte[bigBytes];
        var small = new byte[64];
        double bandwidth = 0, latency = 0;
        var run = Task.Run(async () =>
        {
            // Warm-up, then timed bulk transfer.
            var receiver = Task.Run(async () =>
            {
                for (int i = 0; i < bigCount + 1; i++)
                {
                    using var m = await b.ReceiveAsync(0, 1, ct);
                }
            }, ct);
            await a.SendBytesAsync(1, 1, big, ct);
            var clock = Stopwatch.StartNew();
            for (int i = 0; i < bigCount; i++) await a.SendBytesAsync(1, 1, big, ct);
            await receiver;
            bandwidth = (double)bigBytes * bigCount / clock.Elapsed.TotalSeconds;

            var echo = Task.Run(async () =>
            {
                for (int i = 0; i < pingCount + 10; i++)
                {
                    using (var m = await b.ReceiveAsync(0, 2, ct)) { }
                    await b.SendBytesAsync(0, 3, small, ct);
                }
            }, ct);
            for (int i = 0; i < 10; i++)
            {
                await a.SendBytesAsync(1, 2, small, ct);
                using var m = await a.ReceiveAsync(1, 3, ct);
            }
            clock.Restart();
            for (int i = 0; i < pingCount; i++)
            {
                await a.SendBytesAsync(1, 2, small, ct);
                using var m = await a.ReceiveAsync(1, 3, ct);
            }
            latency = clock.Elapsed.TotalSeconds / (2.0 * pingCount);
            await echo;
        }, ct);
        try
        {
            if (!run.Wait(TimeSpan.FromSeconds(90), ct)) throw new RunaheadException("transport calibration timed out");
        }
        catch (AggregateException e) when (e.InnerException is OperationCanceledException)
        {
            throw new RunaheadException("transport calibration timed out or was cancelled");
        }
        return (bandwidth, latency);
    }

    /// <summary>Median wall time in ms of <paramref name="body"/> after one warm-up; copyCost runs untimed before each.</summary>
    private static double Median(double[] times, Action body, Action? copyCost = null)
    {
        copyCost?.Invoke();
        body();
        for (int i = 0; i < times.Length; i++)
        {
            copyCost?.Invoke();
            long start = Stopwatch.GetTimestamp();
            body();
            times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }
        Array.Sort(times);
        return Math.Max(1e-6, times[times.Length / 2]);
    }
}
