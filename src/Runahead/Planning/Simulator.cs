namespace Runahead.Planning;

/// <summary>
/// Event simulation of one prefill on P ranks from a per-layer cost model and the links between ranks.
/// Reuses scratch buffers between runs, so one instance must not run on two threads at once.
/// </summary>
/// <remarks>
/// By default every rank has its own processor (a GPU, or a core per rank), and the recurrences below are closed
/// forms. With <see cref="CpuCores"/> below the rank count the ranks share the host's cores (processor sharing, see
/// <see cref="ProcessorSharing"/>): a rank that computes alone runs at full speed, ranks that compute at the same
/// time split the cores between them.
/// </remarks>
public sealed partial class Simulator
{
    private LinkChannel[] _links = [];
    private double[] _finish = [], _ready = [], _qkv = [], _rest = [], _arrival = [], _next = [];
    private int _gridLookups, _fitLookups;

    public LayerCostModel Cost { get; }
    public LinkTopology Links { get; }

    /// <summary>
    /// Cores the ranks' compute shares, in units of what one rank computing alone gets (the cost model's speed).
    /// Infinity (the default) or at least the rank count: every rank has its own processor. Fewer: when n ranks
    /// compute at once each progresses at min(1, CpuCores / n) of its cost model's speed.
    /// </summary>
    public double CpuCores { get; }

    public Simulator(LayerCostModel cost, LinkTopology links, double cpuCores = double.PositiveInfinity)
    {
        if (!(cpuCores > 0)) throw new RunaheadException($"the simulator's CPU cores must be positive, not {cpuCores}");
        Cost = cost;
        Links = links;
        CpuCores = cpuCores;
    }

    /// <summary>TTFT in seconds, without building a timeline (the search's inner loop).</summary>
    public double Ttft(PrefillStrategy strategy, ReadOnlySpan<int> chunks) => Simulate(strategy, chunks, null);

    public SimulationResult Run(PrefillStrategy strategy, ReadOnlySpan<int> chunks, bool timeline = true)
    {
        var spans = timeline ? new List<SimSpan>() : null;
        double ttft = Simulate(strategy, chunks, spans);
        return new SimulationResult
        {
            Strategy = strategy,
            Chunks = strategy == PrefillStrategy.Single ? [Sum(chunks)] : chunks.ToArray(),
            TtftSeconds = ttft,
            Timeline = (IReadOnlyList<SimSpan>?)spans ?? [],
            GridLookups = _gridLookups,
            FitLookups = _fitLookups,
        };
    }

    private double Simulate(PrefillStrategy strategy, ReadOnlySpan<int> chunks, List<SimSpan>? spans)
    {
        if (chunks.Length == 0) throw new RunaheadException("a partition needs at least one rank");
        foreach (int c in chunks) if (c < 1) throw new RunaheadException("every rank needs at least one token");
        if (chunks.Length > Links.MaxRanks)
            throw new RunaheadException($"{chunks.Length} ranks but the link matrix describes {Links.MaxRanks}");
        _gridLookups = _fitLookups = 0;
        if (strategy == PrefillStrategy.Single || chunks.Length == 1)
        {
            Span<int> whole = [Sum(chunks)];
            return CpuCores >= 1 ? Kvr(whole, spans) : ProcessorSharing(PrefillStrategy.Kvr, whole, spans);
        }
        // With a core per computing rank nobody is ever slowed down, and the closed forms are exact.
        if (CpuCores < chunks.Length) return ProcessorSharing(strategy, chunks, spans);
        return strategy switch
        {
            PrefillStrategy.Kvr => Kvr(chunks, spans),
            PrefillStrategy.Tsp => Tsp(chunks, dense: true, spans),
            PrefillStrategy.TspCausal => Tsp(chunks, dense: false, spans),
            _ => throw new ArgumentOutOfRangeException(nameof(strategy)),
        };
    }

    /// <summary>
    /// The KV-Runahead recurrence. Per layer l and rank i (ranks in order, so rank i-1's send of layer l is known):
    /// K_i(l) = max(F_i(l-1) + t_qkv(c_i), R_i(l)); F_i(l) = K_i(l) + t_rest(c_i, S_{i-1}); rank i then sends
    /// K,V of [0, S_i) to rank i+1 at K_i(l), queued behind its earlier sends on that link.
    /// </summary>
    private double Kvr(ReadOnlySpan<int> chunks, List<SimSpan>? spans)
    {
        int p = chunks.Length;
        Prepare(p);
        int prefix = 0;
        for (int i = 0; i < p; i++)
        {
            _qkv[i] = Cost.Qkv(chunks[i]);
            _rest[i] = Cost.RestCausal(chunks[i], prefix, out bool fromGrid);
            Count(fromGrid);
            prefix += chunks[i];
            _finish[i] = 0;
            if (i < p - 1) _links[i].Reset(Links.Bandwidth(i, i + 1), Links.LatencySeconds, Links.Background(i, i + 1));
        }
        double bytesPerToken = Cost.KvBytesPerToken;
        for (int l = 0; l < Cost.Layers; l++)
        {
            int sent = 0;
            for (int i = 0; i < p; i++)
            {
                double qkvStart = _finish[i];
                double qkvDone = qkvStart + _qkv[i];
                double k = i == 0 ? qkvDone : Math.Max(qkvDone, _arrival[i]);
                double f = k + _rest[i];
                _finish[i] = f;
                sent += chunks[i];
                if (spans != null)
                {
                    spans.Add(new SimSpan(i, l, SimSpanKind.Qkv, qkvStart, qkvDone));
                    if (k > qkvDone) spans.Add(new SimSpan(i, l, SimSpanKind.Wait, qkvDone, k));
                    spans.Add(new SimSpan(i, l, SimSpanKind.Rest, k, f));
                }
                if (i < p - 1)
                {
                    var (start, end, arrival) = _links[i].Send(k, sent * bytesPerToken);
                    _arrival[i + 1] = arrival;
                    spans?.Add(new SimSpan(i, l, SimSpanKind.Send, start, end));
                }
            }
        }
        return Finish(p, spans);
    }

    /// <summary>
    /// TSP: per layer every rank computes Q,K,V of its chunk, the ranks all-gather K,V over the ring i -> i+1 mod P
    /// (P-1 steps, each forwarding the chunk received in the step before), wait at a barrier for the slowest, then
    /// run attention over all keys (dense, as in the paper, or causal-skipping) and the rest of the layer.
    /// </summary>
    private double Tsp(ReadOnlySpan<int> chunks, bool dense, List<SimSpan>? spans)
    {
        int p = chunks.Length, total = Sum(chunks);
        Prepare(p);
        int prefix = 0;
        for (int i = 0; i < p; i++)
        {
            _qkv[i] = Cost.Qkv(chunks[i]);
            bool fromGrid;
            // Dense: the c x C block (its prefix is every other rank's tokens); causal: only keys up to its own.
            _rest[i] = dense ? Cost.RestDense(chunks[i], total - chunks[i], out fromGrid) : Cost.RestCausal(chunks[i], prefix, out fromGrid);
            Count(fromGrid);
            prefix += chunks[i];
            _finish[i] = 0;
            _links[i].Reset(Links.Bandwidth(i, (i + 1) % p), Links.LatencySeconds, Links.Background(i, (i + 1) % p));
        }
        double bytesPerToken = Cost.KvBytesPerToken;
        for (int l = 0; l < Cost.Layers; l++)
        {
            for (int i = 0; i < p; i++)
            {
                _ready[i] = _finish[i] + _qkv[i];
                spans?.Add(new SimSpan(i, l, SimSpanKind.Qkv, _finish[i], _ready[i]));
                _arrival[i] = _ready[i];
            }
            for (int step = 0; step < p - 1; step++)
            {
                for (int i = 0; i < p; i++)
                {
                    int chunkIndex = ((i - step) % p + p) % p;
                    var (start, end, arrival) = _links[i].Send(_arrival[i], chunks[chunkIndex] * bytesPerToken);
                    _next[(i + 1) % p] = arrival;
                    spans?.Add(new SimSpan(i, l, SimSpanKind.Send, start, end));
                }
                (_arrival, _next) = (_next, _arrival);
            }
            double barrier = 0;
            for (int i = 0; i < p; i++) barrier = Math.Max(barrier, Math.Max(_arrival[i], _ready[i]));
            for (int i = 0; i < p; i++)
            {
                if (spans != null && barrier > _ready[i]) spans.Add(new SimSpan(i, l, SimSpanKind.Wait, _ready[i], barrier));
                _finish[i] = barrier + _rest[i];
                spans?.Add(new SimSpan(i, l, SimSpanKind.Rest, barrier, _finish[i]));
            }
        }
        return Finish(p, spans);
    }

    /// <summary>The last rank holds the last position: it runs the head; the others idle until the token is known.</summary>
    private double Finish(int p, List<SimSpan>? spans)
    {
        double last = _finish[p - 1];
        double ttft = last + Cost.HeadSeconds;
        if (spans != null)
        {
            spans.Add(new SimSpan(p - 1, Cost.Layers, SimSpanKind.Head, last, ttft));
            for (int i = 0; i < p - 1; i++)
                if (ttft > _finish[i]) spans.Add(new SimSpan(i, Cost.Layers, SimSpanKind.Idle, _finish[i], ttft));
        }
        return ttft;
    }

    private void Count(bool fromGrid)
    {
        if (fromGrid) _gridLookups++; else _fitLookups++;
    }

    private void Prepare(int p)
    {
        if (_finish.Length >= p) return;
        _finish = new double[p];
        _ready = new double[p];
        _qkv = new double[p];
        _rest = new double[p];
        _arrival = new double[p];
        _next = new double[p];
        var links = new LinkChannel[p];
        for (int i = 0; i < p; i++) links[i] = i < _links.Length ? _links[i] : new LinkChannel();
        _links = links;
    }

    private static int Sum(ReadOnlySpan<int> chunks)
    {
        long s = 0;
        foreach (int c in chunks) s += c;
        if (s > 1 << 24) throw new RunaheadException($"{s} tokens is more than the simulator accepts (16M)");
        return (int)s;
    }
}
