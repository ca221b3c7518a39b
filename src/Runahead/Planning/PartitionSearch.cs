using System.Diagnostics;

namespace Runahead.Planning;

public sealed class PartitionSearchOptions
{
    /// <summary>Most evaluations of the coarse grid over the simplex of chunk sizes.</summary>
    public int CoarseBudget { get; init; } = 12_000;

    /// <summary>How many of the best coarse points are refined.</summary>
    public int Refine { get; init; } = 4;

    /// <summary>Largest full neighbourhood (3^(P-1) points) tried per refinement step; beyond it, one split at a time.</summary>
    public int MaxNeighbourhood { get; init; } = 81;

    public int MinChunk { get; init; } = 1;

    /// <summary>Re-measures the best few candidates on real ranks when set.</summary>
    public ICandidateMeasurer? Measurer { get; init; }

    public int Remeasure { get; init; } = 3;

    public CancellationToken CancellationToken { get; init; }
}

public sealed record PartitionSearchResult(int[] Chunks, double Cost, int Evaluations, TimeSpan Elapsed, double? MeasuredSeconds);

/// <summary>
/// KVR-S: hierarchical search over the P-1 split points. A coarse grid over the simplex of chunk sizes (in units of
/// C/g, g as fine as the budget allows), then around each of the best few points a 3^(P-1) neighbourhood of the split
/// points at a step that halves down to one token, then a coordinate-descent polish that moves tokens between any two
/// chunks. Works on any objective; with the simulator, 8 ranks x 16k tokens takes well under a second.
/// </summary>
public static class PartitionSearch
{
    public static PartitionSearchResult Search(IPartitionObjective objective, int tokens, int ranks, PartitionSearchOptions? options = null)
    {
        options ??= new PartitionSearchOptions();
        int minChunk = Math.Max(1, options.MinChunk);
        if (ranks < 1) throw new RunaheadException($"rank count {ranks} must be at least 1");
        if ((long)ranks * minChunk > tokens)
            throw new RunaheadException($"{tokens} tokens cannot be split over {ranks} ranks of at least {minChunk} token(s)");
        var clock = Stopwatch.StartNew();
        var state = new SearchState(objective, tokens, ranks, minChunk, options.CancellationToken);
        if (ranks == 1)
        {
            int[] one = [tokens];
            return new PartitionSearchResult(one, state.Evaluate(one), state.Evaluations, clock.Elapsed, null);
        }

        int units = CoarseUnits(tokens / minChunk, ranks, options.CoarseBudget);
        var top = new TopList(Math.Max(1, options.Refine));
        var unitSplits = new int[ranks - 1];
        var splits = new int[ranks - 1];
        EnumerateCoarse(0, 1);

        void EnumerateCoarse(int depth, int from)
        {
            if (depth == ranks - 1)
            {
                for (int j = 0; j < splits.Length; j++) splits[j] = (int)((long)unitSplits[j] * tokens / units);
                if (state.Valid(splits)) top.Offer(splits, state.EvaluateSplits(splits));
                return;
            }
            for (int u = from; u <= units - (ranks - 1 - depth); u++)
            {
                unitSplits[depth] = u;
                EnumerateCoarse(depth + 1, u + 1);
            }
        }
        if (top.Count == 0) top.Offer(ToSplitPoints(Partition.Even(tokens, ranks)), state.EvaluateSplits(ToSplitPoints(Partition.Even(tokens, ranks))));

        int firstStep = Math.Max(1, tokens / units / 2);
        int[] best = [];
        double bestCost = double.PositiveInfinity;
        var refined = new List<(int[] Splits, double Cost)>();
        foreach (var (start, startCost) in top.Items)
        {
            var (s, c) = Refine(state, start, startCost, firstStep, options.MaxNeighbourhood);
            (s, c) = NelderMead(state, s, c, firstStep * 2);
            (s, c) = Polish(state, s, c, firstStep);
            refined.Add((s, c));
            if (c < bestCost) { bestCost = c; best = s; }
        }

        double? measured = null;
        if (options.Measurer is { } measurer)
        {
            refined.Sort((a, b) => a.Cost.CompareTo(b.Cost));
            var seen = new HashSet<string>();
            double bestMeasured = double.PositiveInfinity;
            foreach (var (s, _) in refined)
            {
                var chunks = ToChunks(s, tokens);
                if (!seen.Add(Partition.Format(chunks))) continue;
                if (seen.Count > options.Remeasure) break;
                double m = measurer.Measure(chunks, options.CancellationToken);
                if (m < bestMeasured) { bestMeasured = m; best = s; bestCost = state.EvaluateSplits(s); }
            }
            measured = bestMeasured;
        }
        return new PartitionSearchResult(ToChunks(best, tokens), bestCost, state.Evaluations, clock.Elapsed, measured);
    }

    /// <summary>The finest grid g with C(g-1, P-1) compositions within budget.</summary>
    private static int CoarseUnits(int maxUnits, int ranks, int budget)
    {
        int g = ranks;
        while (g < maxUnits && g < 4096 && Compositions(g + 1, ranks) <= budget) g++;
        return g;
    }

    private static double Compositions(int units, int ranks)
    {
        double r = 1;
        for (int k = 1; k <= ranks - 1; k++) r = r * (units - ranks + k) / k;
        return r;
    }

    /// <summary>Moves the centre to the best point of its neighbourhood until none is better, halving the step each time.</summary>
    private static (int[] Splits, double Cost) Refine(SearchState state, int[] start, double startCost, int step, int maxNeighbourhood)
    {
        int dims = start.Length;
        var center = (int[])start.Clone();
        double centerCost = startCost;
        var candidate = new int[dims];
        var bestPoint = new int[dims];
        bool full = Math.Pow(3, dims) <= maxNeighbourhood;
        while (true)
        {
            for (int round = 0; round < 8; round++)
            {
                double bestCost = centerCost;
                bool moved = false;
                if (full)
                {
                    int count = (int)Math.Pow(3, dims);
                    for (int code = 0; code < count; code++)
                    {
                        int rest = code;
                        for (int j = 0; j < dims; j++)
                        {
                            candidate[j] = center[j] + (rest % 3 - 1) * step;
                            rest /= 3;
                        }
                        Consider();
                    }
                }
                else
                {
                    for (int j = 0; j < dims; j++)
                    {
                        for (int sign = -1; sign <= 1; sign += 2)
                        {
                            center.CopyTo(candidate, 0);
                            candidate[j] += sign * step;
                            Consider();
                        }
                    }
                }
                if (!moved) break;
                bestPoint.CopyTo(center, 0);
                centerCost = bestCost;

                void Consider()
                {
                    if (!state.Valid(candidate)) return;
                    double cost = state.EvaluateSplits(candidate);
                    if (cost < bestCost)
                    {
                        bestCost = cost;
                        candidate.CopyTo(bestPoint, 0);
                        moved = true;
                    }
                }
            }
            if (step == 1) break;
            step = Math.Max(1, step / 2);
        }
        return (center, centerCost);
    }

    /// <summary>
    /// Nelder-Mead on the split points (rounded when evaluated), restarted from its best point while that helps.
    /// TTFT is a max over paths, so its minimum sits where several paths tie: a ridge that moves along no axis.
    /// Grid and coordinate steps stall on such ridges; the simplex adapts its shape and walks along them.
    /// </summary>
    private static (int[] Splits, double Cost) NelderMead(SearchState state, int[] start, double startCost, int size)
    {
        int n = start.Length;
        var best = (int[])start.Clone();
        double bestCost = startCost;
        var rounded = new int[n];
        double Eval(double[] x)
        {
            for (int j = 0; j < n; j++) rounded[j] = (int)Math.Round(x[j]);
            return state.Valid(rounded) ? state.EvaluateSplits(rounded) : double.PositiveInfinity;
        }
        for (int restart = 0; restart < 4 && size >= 1; restart++)
        {
            var pts = new double[n + 1][];
            var f = new double[n + 1];
            for (int k = 0; k <= n; k++)
            {
                pts[k] = new double[n];
                for (int j = 0; j < n; j++) pts[k][j] = best[j];
                if (k > 0) pts[k][k - 1] += (k & 1) == 1 ? size : -size;
                f[k] = Eval(pts[k]);
            }
            var centroid = new double[n];
            var xr = new double[n];
            var xe = new double[n];
            var xc = new double[n];
            for (int iter = 0; iter < 200 * n; iter++)
            {
                // Order: best first.
                Array.Sort(f, pts);
                if (f[n] - f[0] <= 1e-12 * Math.Abs(f[0]) && Spread(pts) < 0.5) break;
                Array.Clear(centroid);
                for (int k = 0; k < n; k++)
                    for (int j = 0; j < n; j++) centroid[j] += pts[k][j] / n;
                for (int j = 0; j < n; j++) xr[j] = centroid[j] + (centroid[j] - pts[n][j]);
                double fr = Eval(xr);
                if (fr < f[0])
                {
                    for (int j = 0; j < n; j++) xe[j] = centroid[j] + 2 * (centroid[j] - pts[n][j]);
                    double fe = Eval(xe);
                    if (fe < fr) { xe.CopyTo(pts[n], 0); f[n] = fe; }
                    else { xr.CopyTo(pts[n], 0); f[n] = fr; }
                    continue;
                }
                if (fr < f[n - 1])
                {
                    xr.CopyTo(pts[n], 0);
                    f[n] = fr;
                    continue;
                }
                bool outside = fr < f[n];
                for (int j = 0; j < n; j++)
                    xc[j] = outside ? centroid[j] + 0.5 * (xr[j] - centroid[j]) : centroid[j] + 0.5 * (pts[n][j] - centroid[j]);
                double fc = Eval(xc);
                if (fc < (outside ? fr : f[n]))
                {
                    xc.CopyTo(pts[n], 0);
                    f[n] = fc;
                    continue;
                }
                for (int k = 1; k <= n; k++)
                {
                    for (int j = 0; j < n; j++) pts[k][j] = pts[0][j] + 0.5 * (pts[k][j] - pts[0][j]);
                    f[k] = Eval(pts[k]);
                }
            }
            Array.Sort(f, pts);
            if (f[0] < bestCost)
            {
                bestCost = f[0];
                for (int j = 0; j < n; j++) best[j] = (int)Math.Round(pts[0][j]);
            }
            else
            {
                size /= 2;
            }
        }
        return (best, bestCost);
    }

    private static double Spread(double[][] pts)
    {
        double m = 0;
        for (int k = 1; k < pts.Length; k++)
            for (int j = 0; j < pts[0].Length; j++) m = Math.Max(m, Math.Abs(pts[k][j] - pts[0][j]));
        return m;
    }

    /// <summary>Coordinate descent on chunk pairs: move delta tokens from chunk a to chunk b while it helps.</summary>
    private static (int[] Splits, double Cost) Polish(SearchState state, int[] splits, double cost, int firstStep)
    {
        var chunks = ToChunks(splits, state.Tokens);
        int p = chunks.Length;
        for (int delta = firstStep; delta >= 1; delta /= 2)
        {
            bool improved = true;
            int sweeps = 0;
            while (improved && sweeps++ < 64)
            {
                improved = false;
                for (int a = 0; a < p; a++)
                {
                    for (int b = 0; b < p; b++)
                    {
                        if (a == b || chunks[a] - delta < state.MinChunk) continue;
                        chunks[a] -= delta;
                        chunks[b] += delta;
                        double c = state.Evaluate(chunks);
                        if (c < cost)
                        {
                            cost = c;
                            improved = true;
                        }
                        else
                        {
                            chunks[a] += delta;
                            chunks[b] -= delta;
                        }
                    }
                }
            }
        }
        return (ToSplitPoints(chunks), cost);
    }

    private static int[] ToSplitPoints(ReadOnlySpan<int> chunks)
    {
        var s = new int[chunks.Length - 1];
        int acc = 0;
        for (int i = 0; i < s.Length; i++) s[i] = acc += chunks[i];
        return s;
    }

    private static int[] ToChunks(ReadOnlySpan<int> splits, int tokens)
    {
        var chunks = new int[splits.Length + 1];
        int prev = 0;
        for (int i = 0; i < splits.Length; i++)
        {
            chunks[i] = splits[i] - prev;
            prev = splits[i];
        }
        chunks[^1] = tokens - prev;
        return chunks;
    }

    private sealed class SearchState(IPartitionObjective objective, int tokens, int ranks, int minChunk, CancellationToken cancellation)
    {
        private readonly int[] _chunks = new int[ranks];
        public int Tokens => tokens;
        public int MinChunk => minChunk;
        public int Evaluations { get; private set; }

        public bool Valid(ReadOnlySpan<int> splits)
        {
            int prev = 0;
            foreach (int s in splits)
            {
                if (s - prev < minChunk) return false;
                prev = s;
            }
            return tokens - prev >= minChunk;
        }

        public double EvaluateSplits(ReadOnlySpan<int> splits)
        {
            int prev = 0;
            for (int i = 0; i < splits.Length; i++)
            {
                _chunks[i] = splits[i] - prev;
                prev = splits[i];
            }
            _chunks[^1] = tokens - prev;
            return Evaluate(_chunks);
        }

        public double Evaluate(ReadOnlySpan<int> chunks)
        {
            if ((++Evaluations & 1023) == 0) cancellation.ThrowIfCancellationRequested();
            return objective.Evaluate(chunks);
        }
    }

    /// <summary>The k cheapest distinct points seen.</summary>
    private sealed class TopList(int capacity)
    {
        private readonly List<(int[] Splits, double Cost)> _items = new(capacity + 1);
        public int Count => _items.Count;
        public IReadOnlyList<(int[] Splits, double Cost)> Items => _items;

        public void Offer(ReadOnlySpan<int> splits, double cost)
        {
            if (_items.Count == capacity && cost >= _items[^1].Cost) return;
            int at = _items.Count;
            while (at > 0 && _items[at - 1].Cost > cost) at--;
            _items.Insert(at, (splits.ToArray(), cost));
            if (_items.Count > capacity) _items.RemoveAt(_items.Count - 1);
        }
    }
}
