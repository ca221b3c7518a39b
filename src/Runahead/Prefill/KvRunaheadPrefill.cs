using System.Buffers;
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
    private KvCache? _scratchCache;   // earlier ranks reuse theirs across prompts; only the last rank hands its cache out
    private float[] _sendBuffer = [];

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
        var cache = job.IsLast ? new KvCache(cfg, cacheCapacity) : ScratchCache(end);
        if (next >= 0 && _sendBuffer.Length < 2 * end * kvDim) _sendBuffer = new float[2 * end * kvDim];
        t = rec.Mark(SpanKind.Compute, -1, t);

        for (int l = 0; l < cfg.Layers; l++)
        {
            ct.ThrowIfCancellationRequested();
            var layer = Model.Layers[l];
            // 1. Q,K,V of my tokens at their global positions; my K,V rows go straight into the cache.
            ComputeQkv(layer, job, cache.Keys(l, start, count), cache.Values(l, start, count));
            t = rec.Mark(SpanKind.Compute, l, t);

            // 2.-3. K,V of [0, S_{i-1}) from rank i-1, placed in front of my rows (rank 0 has no prefix).
            if (prev >= 0)
            {
                using var prefix = await Communicator.ReceiveAsync(prev, l, ct).ConfigureAwait(false);
                ImportPrefix(cache, l, prefix.Data, start, prev);
                t = rec.Mark(SpanKind.WaitKv, l, t);
            }

            // 4. K,V of [0, S_i) on to rank i+1 now, asynchronously: it overlaps with my attention below.
            var sending = ValueTask.CompletedTask;
            if (next >= 0)
            {
                cache.Keys(l, 0, end).CopyTo(_sendBuffer);
                cache.Values(l, 0, end).CopyTo(_sendBuffer.AsSpan(end * kvDim));
                sending = Communicator.SendAsync(next, l, _sendBuffer.AsMemory(0, 2 * end * kvDim), ct);
                t = rec.Mark(SpanKind.Send, l, t);
            }

            // 5.-6. My queries against keys [0, S_i), lower-right causal mask; output projection, MLP, residuals.
            Finish(layer, job, cache.Keys(l, 0, end), cache.Values(l, 0, end), end, AttentionMask.PrefixCausal);
            t = rec.Mark(SpanKind.Compute, l, t);

            // The send buffer is reused by the next layer: make sure the transport is done with it.
            bool pending = !sending.IsCompleted;
            await sending.ConfigureAwait(false);
            if (pending) t = rec.Mark(SpanKind.Send, l, t);
        }
        return job.IsLast ? cache : null;
    }

    private static void ImportPrefix(KvCache cache, int layer, ReadOnlySpan<float> message, int prefixTokens, int source)
    {
        int rows = prefixTokens * cache.Config.KvDim;
        if (message.Length != 2 * rows)
            throw new RankFailedException(source,
                $"rank {source} sent {message.Length} K,V values for layer {layer}, expected {2 * rows} ({prefixTokens} tokens); do the ranks disagree on the partition?");
        cache.ImportRange(layer, 0, message[..rows], message[rows..]);
    }

    private KvCache ScratchCache(int tokens)
    {
        if (_scratchCache == null || _scratchCache.Capacity < tokens) _scratchCache = new KvCache(Model.Config, tokens);
        return _scratchCache;
    }
}
