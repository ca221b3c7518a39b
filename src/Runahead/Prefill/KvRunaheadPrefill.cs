using Runahead.Diagnostics;
using Runahead.Distributed;
using Runahead.Models;
using Runahead.Numerics;

namespace Runahead.Prefill;

/// <summary>
/// KV-Runahead (Cho et al., ICML 2024, Fig. 7): rank i owns positions [S_{i-1}, S_i). Per layer it computes Q,K,V of
/// its chunk, receives K,V of [0, S_{i-1}) from rank i-1, passes [0, S_i) on to rank i+1 before attending, then
/// attends with the lower-right causal mask. No global synchronisation: ranks drift into a wavefront over layers.
/// The last rank ends with the whole prompt's cache and decodes alone.
/// </summary>
public sealed class KvRunaheadPrefill : RankPrefill
{
    // Earlier ranks keep a layer's K,V in the very message they pass on: K rows [0, S_i), then V rows [0, S_i).
    // The prefix lands in it, their own rows are computed into it, and it is sent as it is (no copy to a send buffer).
    private float[] _handoff = [];

    public KvRunaheadPrefill(Model model, ICommunicator communicator) : base(model, communicator) { }

    public override PrefillStrategyKind Kind => PrefillStrategyKind.Kvr;

    protected override async Task<KvCache?> RunLayersAsync(RankJob job, int cacheCapacity, CancellationToken ct)
    {
        var cfg = Model.Config;
        int start = job.Start, count = job.Count, end = job.End, kvDim = cfg.KvDim;
        int prev = Communicator.PrevRank, next = Communicator.NextRank;
        var rec = job.Recorder;
        long t = RankRecorder.Now();
        // The last rank's cache is new for every prompt (decoding continues on it); allocating it is part of the work.
        var cache = job.IsLast ? new KvCache(cfg, cacheCapacity) : null;
        if (cache == null && _handoff.Length < 2 * end * kvDim) _handoff = new float[2 * end * kvDim];
        t = rec.Mark(SpanKind.Compute, -1, t);

        // K and V rows [0, S_i) of layer l: in the cache on the last rank, in the hand-off message elsewhere.
        Span<float> Keys(int l) => cache != null ? cache.Keys(l, 0, end) : _handoff.AsSpan(0, end * kvDim);
        Span<float> Values(int l) => cache != null ? cache.Values(l, 0, end) : _handoff.AsSpan(end * kvDim, end * kvDim);

        for (int l = 0; l < cfg.Layers; l++)
        {
            ct.ThrowIfCancellationRequested();
            var layer = Model.Layers[l];
            // 1. Q,K,V of my tokens at their global positions, straight into rows [S_{i-1}, S_i).
            ComputeQkv(layer, job, Keys(l)[(start * kvDim)..], Values(l)[(start * kvDim)..]);
            t = rec.Mark(SpanKind.Compute, l, t);

            // 2.-3. K,V of [0, S_{i-1}) from rank i-1, placed in front of my rows (rank 0 has no prefix).
            if (prev >= 0)
            {
                using var prefix = await Communicator.ReceiveAsync(prev, l, ct).ConfigureAwait(false);
                PlacePrefix(prefix.Data, Keys(l)[..(start * kvDim)], Values(l)[..(start * kvDim)], l, prev);
                t = rec.Mark(SpanKind.WaitKv, l, t);
            }

            // 4. K,V of [0, S_i) on to rank i+1 now, asynchronously: it overlaps with my attention below.
            var sending = ValueTask.CompletedTask;
            if (next >= 0)
            {
                sending = Communicator.SendAsync(next, l, _handoff.AsMemory(0, 2 * end * kvDim), ct);
                t = rec.Mark(SpanKind.Send, l, t);
            }

            // 5.-6. My queries against keys [0, S_i), lower-right causal mask; output projection, MLP, residuals.
            Finish(layer, job, Keys(l), Values(l), end, AttentionMask.PrefixCausal);
            t = rec.Mark(SpanKind.Compute, l, t);

            // The hand-off buffer is rewritten by the next layer: make sure the transport is done with it.
            bool pending = !sending.IsCompleted;
            await sending.ConfigureAwait(false);
            if (pending) t = rec.Mark(SpanKind.Send, l, t);
        }
        return cache;
    }

    /// <summary>Splits a received [K rows | V rows] prefix into place, after checking it is the size we expect.</summary>
    private static void PlacePrefix(ReadOnlySpan<float> message, Span<float> keys, Span<float> values, int layer, int source)
    {
        if (message.Length != keys.Length + values.Length)
            throw new RankFailedException(source,
                $"rank {source} sent {message.Length} K,V values for layer {layer}, expected {keys.Length + values.Length}; do the ranks disagree on the partition?");
        message[..keys.Length].CopyTo(keys);
        message[keys.Length..].CopyTo(values);
    }
}
