namespace Runahead.Planning;

public sealed partial class Simulator
{
    private enum Phase { Qkv, Wait, Rest, Head, Done }

    private Phase[] _phase = [];
    private int[] _layer = [];
    private double[] _remaining = [], _phaseStart = [], _waitUntil = [], _kvArrival = [];

    /// <summary>
    /// The same prefill as <see cref="Kvr"/> and <see cref="Tsp"/>, event by event, with the ranks' compute sharing
    /// <see cref="CpuCores"/> cores. Each compute span (t_qkv, t_rest, the head) holds its cost as work; while n ranks
    /// compute, each does work at rate min(1, cores / n) per second. Rates change only at events: a rank starting or
    /// finishing a compute span, or a wait ending (K,V arrived; TSP's barrier). Between events the loop advances
    /// time to the next one. Waiting and sending take no CPU (the transport copies are in the link model).
    /// </summary>
    private double ProcessorSharing(PrefillStrategy strategy, ReadOnlySpan<int> chunks, List<SimSpan>? spans)
    {
        int p = chunks.Length, layers = Cost.Layers, total = Sum(chunks);
        bool tsp = (strategy is PrefillStrategy.Tsp or PrefillStrategy.TspCausal) && p > 1;
        Prepare(p);
        PrepareSharing(p, layers);
        int prefix = 0;
        for (int i = 0; i < p; i++)
        {
            _qkv[i] = Cost.Qkv(chunks[i]);
            bool fromGrid;
            _rest[i] = strategy == PrefillStrategy.Tsp && p > 1
                ? Cost.RestDense(chunks[i], total - chunks[i], out fromGrid)
                : Cost.RestCausal(chunks[i], prefix, out fromGrid);
            Count(fromGrid);
            prefix += chunks[i];
            int to = tsp ? (i + 1) % p : i + 1;
            if (to < p) _links[i].Reset(Links.Bandwidth(i, to), Links.LatencySeconds, Links.Background(i, to));
            _phase[i] = Phase.Qkv;
            _layer[i] = 0;
            _remaining[i] = _qkv[i];
            _phaseStart[i] = 0;
            _waitUntil[i] = double.NaN;
            _finish[i] = 0;
        }
        for (int i = 0; i < p * layers; i++) _kvArrival[i] = double.NaN;

        double now = 0, bytesPerToken = Cost.KvBytesPerToken, ttft = double.NaN;
        int gathered = 0;
        // A rank whose work is within this of zero has finished: the step to the next event leaves rounding residue.
        const double Epsilon = 1e-15;
        while (true)
        {
            // Settle every transition due at 'now' (one may enable another at the same instant, e.g. K,V arriving
            // with no latency), then find the next event.
            bool changed = true;
            while (changed)
            {
                changed = false;
                for (int i = 0; i < p; i++)
                {
                    switch (_phase[i])
                    {
                        case Phase.Qkv when _remaining[i] <= Epsilon:
                            spans?.Add(new SimSpan(i, _layer[i], SimSpanKind.Qkv, _phaseStart[i], now));
                            _phase[i] = Phase.Wait;
                            _phaseStart[i] = now;
                            if (tsp)
                            {
                                _ready[i] = now;
                                _waitUntil[i] = double.NaN;
                                if (++gathered == p)
                                {
                                    double barrier = Gather(chunks, bytesPerToken, spans, _layer[i]);
                                    for (int r = 0; r < p; r++) _waitUntil[r] = barrier;
                                    gathered = 0;
                                }
                            }
                            else
                            {
                                _waitUntil[i] = i == 0 ? now : _kvArrival[i * layers + _layer[i]];
                            }
                            changed = true;
                            break;
                        case Phase.Wait when _waitUntil[i] <= now:
                            if (spans != null && now > _phaseStart[i]) spans.Add(new SimSpan(i, _layer[i], SimSpanKind.Wait, _phaseStart[i], now));
                            if (!tsp && i < p - 1)
                            {
                                // KV-Runahead: K,V of [0, S_i) leave for the next rank as soon as this rank's are ready.
                                var (start, end, arrival) = _links[i].Send(now, PrefixOf(chunks, i) * bytesPerToken);
                                _kvArrival[(i + 1) * layers + _layer[i]] = arrival;
                                // The next rank may already be waiting for exactly this layer.
                                if (_phase[i + 1] == Phase.Wait && _layer[i + 1] == _layer[i]) _waitUntil[i + 1] = arrival;
                                spans?.Add(new SimSpan(i, _layer[i], SimSpanKind.Send, start, end));
                            }
                            _phase[i] = Phase.Rest;
                            _phaseStart[i] = now;
                            _remaining[i] = _rest[i];
                            changed = true;
                            break;
                        case Phase.Rest when _remaining[i] <= Epsilon:
                            spans?.Add(new SimSpan(i, _layer[i], SimSpanKind.Rest, _phaseStart[i], now));
                            _finish[i] = now;
                            _phaseStart[i] = now;
                            if (++_layer[i] < layers)
                            {
                                _phase[i] = Phase.Qkv;
                                _remaining[i] = _qkv[i];
                            }
                            else if (i == p - 1)
                            {
                                _phase[i] = Phase.Head;
                                _remaining[i] = Cost.HeadSeconds;
                            }
                            else
                            {
                                _phase[i] = Phase.Done;
                            }
                            changed = true;
                            break;
                        case Phase.Head when _remaining[i] <= Epsilon:
                            ttft = now;
                            spans?.Add(new SimSpan(i, layers, SimSpanKind.Head, _phaseStart[i], now));
                            _phase[i] = Phase.Done;
                            changed = true;
                            break;
                    }
                }
            }
            // A rank may still compute its last layer after the first token is known (TSP's longer chunks); it keeps
            // its share of the cores, and its spans end where they really end, as in the closed forms.
            int computing = 0, done = 0;
            for (int i = 0; i < p; i++)
            {
                if (_phase[i] is Phase.Qkv or Phase.Rest or Phase.Head) computing++;
                else if (_phase[i] == Phase.Done) done++;
            }
            if (done == p) break;
            double rate = computing == 0 ? 1 : Math.Min(1, CpuCores / computing);
            double step = double.PositiveInfinity;
            for (int i = 0; i < p; i++)
            {
                if (_phase[i] is Phase.Qkv or Phase.Rest or Phase.Head) step = Math.Min(step, _remaining[i] / rate);
                else if (_phase[i] == Phase.Wait && _waitUntil[i] > now) step = Math.Min(step, _waitUntil[i] - now);
            }
            if (double.IsPositiveInfinity(step)) throw new InvalidOperationException("processor-sharing simulation stalled: no rank can progress");
            now += step;
            for (int i = 0; i < p; i++)
            {
                if (_phase[i] is not (Phase.Qkv or Phase.Rest or Phase.Head)) continue;
                // The rank(s) that defined the step finish exactly, whatever the rounding of work - step * rate.
                _remaining[i] = _remaining[i] / rate <= step ? 0 : _remaining[i] - step * rate;
            }
        }
        if (spans != null)
            for (int i = 0; i < p - 1; i++)
                if (ttft > _finish[i]) spans.Add(new SimSpan(i, layers, SimSpanKind.Idle, _finish[i], ttft));
        return ttft;
    }

    /// <summary>TSP's ring all-gather of one layer from the ranks' ready times (as in <see cref="Tsp"/>); returns the barrier.</summary>
    private double Gather(ReadOnlySpan<int> chunks, double bytesPerToken, List<SimSpan>? spans, int layer)
    {
        int p = chunks.Length;
        for (int i = 0; i < p; i++) _arrival[i] = _ready[i];
        for (int step = 0; step < p - 1; step++)
        {
            for (int i = 0; i < p; i++)
            {
                int chunkIndex = ((i - step) % p + p) % p;
                var (start, end, arrival) = _links[i].Send(_arrival[i], chunks[chunkIndex] * bytesPerToken);
                _next[(i + 1) % p] = arrival;
                spans?.Add(new SimSpan(i, layer, SimSpanKind.Send, start, end));
            }
            (_arrival, _next) = (_next, _arrival);
        }
        double barrier = 0;
        for (int i = 0; i < p; i++) barrier = Math.Max(barrier, Math.Max(_arrival[i], _ready[i]));
        return barrier;
    }

    private static int PrefixOf(ReadOnlySpan<int> chunks, int rank)
    {
        int s = 0;
        for (int i = 0; i <= rank; i++) s += chunks[i];
        return s;
    }

    private void PrepareSharing(int p, int layers)
    {
        if (_phase.Length < p)
        {
            _phase = new Phase[p];
            _layer = new int[p];
            _remaining = new double[p];
            _phaseStart = new double[p];
            _waitUntil = new double[p];
        }
        if (_kvArrival.Length < p * layers) _kvArrival = new double[p * layers];
    }
}
