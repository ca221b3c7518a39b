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
/// <remarks>
/// The hand-off is asynchronous as in the paper: each layer's message goes to a <see cref="HandoffSender"/> whose own
/// thread feeds the transport, so a rank runs ahead of a slower successor (or a full shared-memory ring) instead of
/// being held to its pace, and waits for its sends once, after its last layer.
/// </remarks>
public sealed class KvRunaheadPrefill : RankPrefill
{
    // Earlier ranks keep a layer's K,V in the very message they pass on: K rows [0, S_i), then V rows [0, S_i).
    // The prefix lands in it, their own rows are computed into it, and it is sent as it is (no copy to a send buffer).
    private readonly HandoffSender _sender;

    public KvRunaheadPrefill(Model model, ICommunicator communicator) : this(model, communicator, 0) { }

    /// <param name="maxLayersInFlight">
    /// Most layers whose hand-off may still be with the transport before the compute loop waits (0: every layer, so it
    /// never waits; memory up to one message per layer).
    /// </param>
    public KvRunaheadPrefill(Model model, ICommunicator communicator, int maxLayersInFlight) : base(model, communicator)
    {
        _sender = new HandoffSender(maxLayersInFlight);
    }

    public override PrefillStrategyKind Kind => PrefillStrategyKind.Kvr;

    /// <summary>Hand-off buffers this rank holds between jobs (each 2 x S_i x KvDim floats of the longest job so far).</summary>
    public int PooledHandoffBuffers => _sender.PooledBuffers;

    protected override async Task<KvCache?> RunLayersAsync(RankJob job, int cacheCapacity, CancellationToken ct)
    {
        var cfg = Model.Config;
        int start = job.Start, end = job.End, kvDim = cfg.KvDim;
        int prev = Communicator.PrevRank, next = Communicator.NextRank;
        var rec = job.Recorder;
        long t = RankRecorder.Now();
        // The last rank's cache is new for every prompt (decoding continues on it); allocating it is part of the work.
        var cache = job.IsLast ? new KvCache(cfg, cacheCapacity) : null;
        int messageLength = 2 * end * kvDim;
        if (next >= 0) _sender.Begin(Communicator, next, messageLength, cfg.Layers, ct);
        bool finished = false;
        try
        {
            t = rec.Mark(SpanKind.Compute, -1, t);
            for (int l = 0; l < cfg.Layers; l++)
            {
                ct.ThrowIfCancellationRequested();
                var layer = Model.Layers[l];
                // K and V rows [0, S_i) of layer l (Keys/Values below): in the cache on the last rank, in this layer's
                // hand-off message elsewhere.
                float[]? message = null;
                if (cache == null)
                {
                    // Also where a failed send surfaces, one layer after it happened at the latest.
                    var rent = _sender.RentAsync(ct);
                    if (rent.IsCompletedSuccessfully) message = rent.Result;
                    else
                    {
                        // More layers with the transport than allowed: truthfully a wait for sends.
                        message = await rent.ConfigureAwait(false);
                        t = rec.Mark(SpanKind.Send, l, t);
                    }
                }

                // 1. Q,K,V of my tokens at their global positions, straight into rows [S_{i-1}, S_i).
                ComputeQkv(layer, job, Keys(cache, message, l, end, kvDim)[(start * kvDim)..],
                    Values(cache, message, l, end, kvDim)[(start * kvDim)..]);
                t = rec.Mark(SpanKind.Compute, l, t);

                // 2.-3. K,V of [0, S_{i-1}) from rank i-1, placed in front of my rows (rank 0 has no prefix).
                if (prev >= 0)
                {
                    using var prefix = await Communicator.ReceiveAsync(prev, l, ct).ConfigureAwait(false);
                    PlacePrefix(prefix.Data, Keys(cache, message, l, end, kvDim)[..(start * kvDim)],
                        Values(cache, message, l, end, kvDim)[..(start * kvDim)], l, prev);
                    t = rec.Mark(SpanKind.WaitKv, l, t);
                }

                // 4. K,V of [0, S_i) on to rank i+1 now; its thread sends while I attend below and run on to later layers.
                if (message != null) _sender.Post(l, message);

                // 5.-6. My queries against keys [0, S_i), lower-right causal mask; output projection, MLP, residuals.
                Finish(layer, job, Keys(cache, message, l, end, kvDim), Values(cache, message, l, end, kvDim), end, AttentionMask.PrefixCausal);
                t = rec.Mark(SpanKind.Compute, l, t);
            }

            // The one wait for the transport: every layer's message must be out before the job's buffers are reused.
            if (next >= 0)
            {
                await _sender.FinishAsync(rec).ConfigureAwait(false);
                rec.Mark(SpanKind.Send, -1, t);
            }
            finished = true;
            return cache;
        }
        finally
        {
            // Failure or cancellation: nothing of this job may go on sending (or hold its buffers) after it.
            if (!finished && next >= 0) await _sender.AbortAsync(rec).ConfigureAwait(false);
        }
    }

    /// <summary>K rows [0, end) of <paramref name="layer"/>: in the cache on the last rank, else in that layer's hand-off message.</summary>
    private static Span<float> Keys(KvCache? cache, float[]? message, int layer, int end, int kvDim) =>
        cache != null ? cache.Keys(layer, 0, end) : message.AsSpan(0, end * kvDim);

    private static Span<float> Values(KvCache? cache, float[]? message, int layer, int end, int kvDim) =>
        cache != null ? cache.Values(layer, 0, end) : message.AsSpan(end * kvDim, end * kvDim);

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
