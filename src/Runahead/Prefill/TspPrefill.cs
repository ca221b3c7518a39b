using Runahead.Diagnostics;
using Runahead.Distributed;
using Runahead.Models;
using Runahead.Numerics;

namespace Runahead.Prefill;

/// <summary>
/// Tensor/sequence parallel prefill as the KV-Runahead paper's baseline: per layer every rank computes Q,K,V of its
/// chunk, all ranks all-gather K and V (a global synchronisation), then each attends its queries to the gathered
/// keys (<see cref="TspAttention"/>) and runs the rest of the layer for its tokens. The last rank holds the last
/// position and produces the first token; it keeps the gathered K,V as its cache.
/// </summary>
public sealed class TspPrefill : RankPrefill
{
    private float[] _mineK = [], _mineV = [], _allK = [], _allV = [];
    private int[] _counts = [];

    public TspPrefill(Model model, ICommunicator communicator, TspAttention attention) : base(model, communicator)
        => Attention = attention;

    public TspAttention Attention { get; }

    public override PrefillStrategyKind Kind => Attention == TspAttention.DenseThenMask ? PrefillStrategyKind.Tsp : PrefillStrategyKind.TspCausal;

    protected override async Task<KvCache?> RunLayersAsync(RankJob job, int cacheCapacity, CancellationToken ct)
    {
        var cfg = Model.Config;
        int count = job.Count, end = job.End, kvDim = cfg.KvDim;
        int tokens = job.Partition.Tokens;
        var rec = job.Recorder;
        long t = RankRecorder.Now();
        Prepare(job.Partition, kvDim);
        var cache = job.IsLast ? new KvCache(cfg, cacheCapacity) : null;
        t = rec.Mark(SpanKind.Compute, -1, t);
        var mineK = _mineK.AsMemory(0, count * kvDim);
        var mineV = _mineV.AsMemory(0, count * kvDim);
        var allK = _allK.AsMemory(0, tokens * kvDim);
        var allV = _allV.AsMemory(0, tokens * kvDim);
        var counts = _counts.AsMemory(0, job.Partition.Ranks);
        // Dense: the paper's C/P x C block with masked scores computed; causal: only keys a query can see.
        int totalKeys = Attention == TspAttention.DenseThenMask ? tokens : end;
        var mask = Attention == TspAttention.DenseThenMask ? AttentionMask.DenseThenMask : AttentionMask.PrefixCausal;

        for (int l = 0; l < cfg.Layers; l++)
        {
            ct.ThrowIfCancellationRequested();
            var layer = Model.Layers[l];
            ComputeQkv(layer, job, mineK.Span, mineV.Span);
            t = rec.Mark(SpanKind.Compute, l, t);

            // Global synchronisation: every rank's K and V of this layer, in rank (= position) order.
            await Communicator.AllGatherAsync(mineK, allK, counts, ct).ConfigureAwait(false);
            await Communicator.AllGatherAsync(mineV, allV, counts, ct).ConfigureAwait(false);
            t = rec.Mark(SpanKind.WaitKv, l, t);

            Finish(layer, job, allK.Span, allV.Span, totalKeys, mask);
            cache?.ImportRange(l, 0, allK.Span, allV.Span);
            t = rec.Mark(SpanKind.Compute, l, t);
        }
        return cache;
    }

    private void Prepare(Partition partition, int kvDim)
    {
        int mine = partition.Chunk(Communicator.Rank) * kvDim, all = partition.Tokens * kvDim;
        if (_mineK.Length < mine) { _mineK = new float[mine]; _mineV = new float[mine]; }
        if (_allK.Length < all) { _allK = new float[all]; _allV = new float[all]; }
        if (_counts.Length < partition.Ranks) _counts = new int[partition.Ranks];
        for (int r = 0; r < partition.Ranks; r++) _counts[r] = partition.Chunk(r) * kvDim;
    }
}
