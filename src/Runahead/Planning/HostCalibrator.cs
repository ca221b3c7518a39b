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

    /// <summary>When set, exactly these (c, p) points instead of every chunk size with every prefix length.</summary>
    public IReadOnlyList<(int C, int P)>? Points { get; init; }

    /// <summary>Timed batches per point after one warm-up; the median batch is kept.</summary>
    public int Repeats { get; init; } = 3;

    /// <summary>
    /// Shortest wall time of one timed batch (the body runs back to back until it is reached; the batch's time per
    /// run is kept). On a shared machine a run shorter than the scheduler's time slice (4 ms at 250 Hz) is mostly
    /// either not preempted at all or preempted for a whole slice, so the median of single short runs measures an
    /// idle CPU while a real prefill, hundreds of slices long, gets only its share of the cores. A batch spanning
    /// many slices measures that share, as the prefill will see it. Zero times single runs.
    /// </summary>
    public double MinBatchMilliseconds { get; init; } = 100;

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

    /// <summary>t_qkv(c), t(c, p) causal and dense of one layer, in ms (median of the repeats; the layers take turns).</summary>
    public static List<CalibrationRow> MeasureLayer(Model model, string modelName, HostCalibrationOptions options, Action<string>? progress = null) =>
        MeasureLayer([model], modelName, options, progress);

    /// <summary>
    /// As above with one thread per model, all running the same point at the same time: with P ranks computing at once
    /// on a machine that gives this process group a fixed CPU share (or fewer cores than ranks x threads), each rank gets
    /// a part of it, and a calibration for P ranks must be timed that way. The cost is the mean over the threads.
    /// </summary>
    public static List<CalibrationRow> MeasureLayer(IReadOnlyList<Model> models, string modelName, HostCalibrationOptions options, Action<string>? progress = null)
    {
        if (models.Count == 0) throw new ArgumentException("at least one model is needed", nameof(models));
        var points = options.Points ?? options.ChunkTokens.SelectMany(c => options.PrefixTokens.Select(p => (c, p))).ToArray();
        if (points.Count == 0) throw new RunaheadException("calibration grid: no points to measure");
        if (points.Any(x => x.C < 1 || x.P < 0))
            throw new RunaheadException("calibration grid: chunk sizes must be >= 1 and prefix lengths >= 0");
        int maxC = points.Max(x => x.C), maxP = points.Max(x => x.P);
        var benches = new LayerBench[models.Count];
        for (int i = 0; i < benches.Length; i++) benches[i] = new LayerBench(models[i], maxC, maxP);

        var rows = new List<CalibrationRow>();
        int repeats = Math.Max(1, options.Repeats);
        var ct = options.CancellationToken;
        foreach (var (c, p) in points)
        {
            ct.ThrowIfCancellationRequested();
            progress?.Invoke($"layer c={c} p={p}");
            double qkv = Concurrently(benches.Length, options.MinBatchMilliseconds, repeats, i => () => benches[i].Qkv(c, p), _ => null, ct);
            foreach (var bench in benches) bench.PlaceOwnKv(c, p);
            double Rest(AttentionMask mask) => Concurrently(benches.Length, options.MinBatchMilliseconds, repeats,
                i => () => benches[i].Finish(c, p, mask), i => () => benches[i].ResetHidden(c), ct);
            double causal = Rest(AttentionMask.PrefixCausal);
            double dense = Rest(AttentionMask.DenseThenMask);
            rows.Add(new CalibrationRow(modelName, c, p, qkv + causal, qkv + dense, qkv));
        }
        return rows;
    }

    /// <summary>
    /// One model's layers with their own buffers, so several can be timed on threads at once. Each timed call takes the
    /// next layer in turn, as a prefill does: a run streams every layer's weights from memory once, while timing one
    /// layer over and over would keep its weights in cache (on smollm-135m that hid ~0.8 ms a layer at 256-token
    /// chunks, a bias of -5..-13 % against real runs). With a model smaller than the caches it makes no difference.
    /// </summary>
    private sealed class LayerBench
    {
        private readonly ModelConfig _cfg;
        private readonly IReadOnlyList<DecoderLayer> _layers;
        private readonly ForwardWorkspace _ws;
        private int _nextQkvLayer, _nextFinishLayer;
        private readonly float[] _input, _hidden, _q, _k, _v, _keys, _values;

        public LayerBench(Model model, int maxC, int maxP)
        {
            _cfg = model.Config;
            if (maxC > model.MaxChunkTokens)
                throw new RunaheadException($"calibration grid: chunk {maxC} is larger than the model's chunk limit {model.MaxChunkTokens}");
            _layers = model.Layers;
            _ws = model.CreateWorkspace(maxC);
            var random = new Random(1234);
            var ids = new int[maxC];
            for (int i = 0; i < ids.Length; i++) ids[i] = random.Next(_cfg.VocabSize);
            _input = new float[maxC * _cfg.Dim];
            model.Embed(ids, _input);
            _hidden = new float[_input.Length];
            _q = new float[maxC * _cfg.QDim];
            _k = new float[maxC * _cfg.KvDim];
            _v = new float[maxC * _cfg.KvDim];
            long kvLength = checked((long)(maxP + maxC) * _cfg.KvDim);
            if (kvLength > int.MaxValue) throw new RunaheadException("calibration grid: prefix too long for this model's K,V width");
            _keys = new float[kvLength];
            _values = new float[kvLength];
            // Plausible prefix K,V: small random values (attention's cost does not depend on them).
            for (long i = 0; i < kvLength; i++)
            {
                _keys[i] = (float)(random.NextDouble() - 0.5) * 0.2f;
                _values[i] = (float)(random.NextDouble() - 0.5) * 0.2f;
            }
        }

        public void Qkv(int c, int p) =>
            NextLayer(ref _nextQkvLayer).ComputeQkv(_input.AsSpan(0, c * _cfg.Dim), c, p, _q.AsSpan(0, c * _cfg.QDim), _k.AsSpan(0, c * _cfg.KvDim), _v.AsSpan(0, c * _cfg.KvDim), _ws);

        public void PlaceOwnKv(int c, int p)
        {
            _k.AsSpan(0, c * _cfg.KvDim).CopyTo(_keys.AsSpan(p * _cfg.KvDim));
            _v.AsSpan(0, c * _cfg.KvDim).CopyTo(_values.AsSpan(p * _cfg.KvDim));
        }

        /// <summary>Finish updates hidden in place, so each run starts from a fresh copy (its cost is taken off the timing).</summary>
        public void ResetHidden(int c) => _input.AsSpan(0, c * _cfg.Dim).CopyTo(_hidden);

        private DecoderLayer NextLayer(ref int next)
        {
            var layer = _layers[next];
            next = (next + 1) % _layers.Count;
            return layer;
        }

        public void Finish(int c, int p, AttentionMask mask) =>
            NextLayer(ref _nextFinishLayer).Finish(_hidden.AsSpan(0, c * _cfg.Dim), c, _q.AsSpan(0, c * _cfg.QDim), _keys.AsSpan(0, (p + c) * _cfg.KvDim),
                _values.AsSpan(0, (p + c) * _cfg.KvDim), p, p + c, _ws, mask);
    }

    /// <summary>
    /// <see cref="Median"/> of the same work on <paramref name="threads"/> threads at once (batch by batch, in step),
    /// the mean over the threads; one thread runs on the caller.
    /// </summary>
    private static double Concurrently(int threads, double minBatchMs, int repeats, Func<int, Action> body, Func<int, Action?> untimed, CancellationToken ct)
    {
        if (threads == 1) return Median(new double[repeats], minBatchMs, body(0), untimed(0));
        using var barrier = new Barrier(threads);
        var results = new double[threads];
        var errors = new Exception?[threads];
        var workers = new Thread[threads];
        for (int i = 0; i < threads; i++)
        {
            int id = i;
            workers[i] = new Thread(() =>
            {
                try
                {
                    results[id] = Median(new double[repeats], minBatchMs, body(id), untimed(id), barrier, ct);
                }
                catch (Exception e)
                {
                    errors[id] = e;
                    try { barrier.RemoveParticipant(); } catch (InvalidOperationException) { }
                }
            }) { IsBackground = true, Name = $"calibrate {id}" };
            workers[i].Start();
        }
        foreach (var w in workers)
            if (!w.Join(TimeSpan.FromMinutes(10))) throw new RunaheadException("calibration: a measuring thread did not finish within 10 minutes");
        foreach (var e in errors)
        {
            if (e is OperationCanceledException) throw e;
            if (e != null) throw new RunaheadException($"calibration failed on a measuring thread: {e.Message}");
        }
        double sum = 0;
        foreach (double r in results) sum += r;
        return sum / threads;
    }

    /// <summary>Final norm and LM head for one position, in ms.</summary>
    public static double MeasureHeadMs(Model model, HostCalibrationOptions options)
    {
        var ws = model.CreateWorkspace(1);
        var hidden = new float[model.Config.Dim];
        model.Embed([0], hidden);
        var logits = new float[model.Config.VocabSize];
        var times = new double[Math.Max(1, options.Repeats)];
        return Median(times, options.MinBatchMilliseconds, () => model.Logits(hidden, 1, logits, ws));
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

    /// <summary>
    /// Median over the batches of the wall time in ms per run of <paramref name="body"/>, after one warm-up run.
    /// Each batch runs the body back to back until <paramref name="minBatchMs"/> have passed (at least once).
    /// <paramref name="untimed"/> runs before every body run; its own cost is measured alone and taken off the batch
    /// (it is a copy of the layer's input, a fraction of a percent of the layer, but not part of it).
    /// </summary>
    private static double Median(double[] times, double minBatchMs, Action body, Action? untimed = null, Barrier? inStep = null,
        CancellationToken ct = default)
    {
        untimed?.Invoke();
        body();
        double untimedMs = 0;
        if (untimed != null && minBatchMs > 0)
        {
            long s = Stopwatch.GetTimestamp();
            for (int i = 0; i < 8; i++) untimed();
            untimedMs = Stopwatch.GetElapsedTime(s).TotalMilliseconds / 8;
        }
        for (int i = 0; i < times.Length; i++)
        {
            if (inStep != null && !inStep.SignalAndWait(TimeSpan.FromMinutes(5), ct))
                throw new RunaheadException("calibration: the measuring threads lost step for 5 minutes");
            if (minBatchMs <= 0)
            {
                untimed?.Invoke();
                long start = Stopwatch.GetTimestamp();
                body();
                times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                continue;
            }
            long batchStart = Stopwatch.GetTimestamp();
            int runs = 0;
            double elapsed;
            do
            {
                untimed?.Invoke();
                body();
                runs++;
                elapsed = Stopwatch.GetElapsedTime(batchStart).TotalMilliseconds;
            }
            while (elapsed < minBatchMs);
            times[i] = elapsed / runs - untimedMs;
        }
        Array.Sort(times);
        return Math.Max(1e-6, times[times.Length / 2]);
    }
}
