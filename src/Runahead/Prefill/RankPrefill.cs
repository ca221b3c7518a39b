using System.Buffers;
using Runahead.Diagnostics;
using Runahead.Distributed;
using Runahead.Models;
using Runahead.Numerics;

namespace Runahead.Prefill;

/// <summary>
/// One rank's half of a parallel prefill: what each worker runs, given the full model and its communicator.
/// One instance per rank, reused for many prompts (it keeps its workspace). Not thread-safe: one prompt at a time.
/// </summary>
public abstract class RankPrefill
{
    private ForwardWorkspace? _workspace;

    protected RankPrefill(Model model, ICommunicator communicator)
    {
        Model = model ?? throw new ArgumentNullException(nameof(model));
        Communicator = communicator ?? throw new ArgumentNullException(nameof(communicator));
    }

    public Model Model { get; }
    public ICommunicator Communicator { get; }
    public abstract PrefillStrategyKind Kind { get; }

    public static RankPrefill Create(PrefillStrategyKind kind, Model model, ICommunicator communicator) => kind switch
    {
        PrefillStrategyKind.Tsp => new TspPrefill(model, communicator, TspAttention.DenseThenMask),
        PrefillStrategyKind.TspCausal => new TspPrefill(model, communicator, TspAttention.CausalSkip),
        // single is the one-rank case of the wavefront: no receive, no send.
        PrefillStrategyKind.Kvr or PrefillStrategyKind.Single => new KvRunaheadPrefill(model, communicator),
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    /// <summary>
    /// Runs this rank's part for <paramref name="promptIds"/> (the whole prompt; each rank reads its chunk) split by
    /// <paramref name="partition"/>. The last rank's output holds the last position's logits and a cache of capacity
    /// <paramref name="cacheCapacity"/> (room for decoding) filled with the whole prompt.
    /// </summary>
    public async Task<RankPrefillOutput> RunAsync(ReadOnlyMemory<int> promptIds, Partition partition, int cacheCapacity, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(partition);
        if (partition.Ranks != Communicator.WorldSize)
            throw new RunaheadException($"the partition has {partition.Ranks} chunks but the group has {Communicator.WorldSize} ranks");
        if (partition.Tokens != promptIds.Length)
            throw new RunaheadException($"the partition covers {partition.Tokens} tokens but the prompt has {promptIds.Length}");
        if (cacheCapacity < promptIds.Length)
            throw new ArgumentOutOfRangeException(nameof(cacheCapacity), "the cache must hold at least the prompt");
        if (promptIds.Length > Model.Config.ContextLength)
            throw new RunaheadException($"the prompt has {promptIds.Length} tokens, more than the model's context of {Model.Config.ContextLength}");

        var recorder = new RankRecorder(Communicator.Rank, Model.Config.Layers);
        int count = partition.Chunk(Communicator.Rank);
        var cfg = Model.Config;
        var hidden = ArrayPool<float>.Shared.Rent(count * cfg.Dim);
        var q = ArrayPool<float>.Shared.Rent(count * cfg.QDim);
        try
        {
            // Chunks longer than the model's GEMM chunk go through the layer in slices, as in single prefill, so a
            // rank's workspace stays bounded however long its share of the prompt is.
            var ws = Workspace(Math.Min(count, Model.MaxChunkTokens));
            var job = new RankJob(cfg, promptIds, partition, Communicator.Rank, ws, hidden, q, recorder);
            long t = RankRecorder.Now();
            Model.Embed(promptIds.Span.Slice(job.Start, count), hidden.AsSpan(0, count * cfg.Dim));
            recorder.Mark(SpanKind.Compute, -1, t);
            var cache = await RunLayersAsync(job, cacheCapacity, ct).ConfigureAwait(false);
            if (!job.IsLast) return new RankPrefillOutput(recorder, null, null);

            t = RankRecorder.Now();
            var logits = new float[cfg.VocabSize];
            Model.Logits(hidden.AsSpan((count - 1) * cfg.Dim, cfg.Dim), 1, logits, job.Workspace);
            cache!.SetLength(partition.Tokens);
            recorder.Mark(SpanKind.Compute, -1, t);
            return new RankPrefillOutput(recorder, logits, cache);
        }
        finally
        {
            ArrayPool<float>.Shared.Return(hidden);
            ArrayPool<float>.Shared.Return(q);
        }
    }

    /// <summary>
    /// Runs every decoder layer on the job's chunk (hidden states updated in place). Returns the last rank's cache
    /// holding K,V of the whole prompt; other ranks may return null.
    /// </summary>
    protected abstract Task<KvCache?> RunLayersAsync(RankJob job, int cacheCapacity, CancellationToken ct);

    /// <summary>
    /// <see cref="DecoderLayer.ComputeQkv"/> for the job's chunk, in slices of at most the workspace size; K,V rows
    /// land in <paramref name="keys"/>/<paramref name="values"/> ([Count, KvDim], the chunk's own rows).
    /// </summary>
    protected static void ComputeQkv(DecoderLayer layer, RankJob job, Span<float> keys, Span<float> values)
    {
        var cfg = job.Config;
        int slice = job.Workspace.MaxTokens;
        for (int done = 0; done < job.Count; done += slice)
        {
            int n = Math.Min(slice, job.Count - done);
            layer.ComputeQkv(job.Hidden.AsSpan(done * cfg.Dim, n * cfg.Dim), n, job.Start + done,
                job.Q.AsSpan(done * cfg.QDim, n * cfg.QDim), keys.Slice(done * cfg.KvDim, n * cfg.KvDim),
                values.Slice(done * cfg.KvDim, n * cfg.KvDim), job.Workspace);
        }
    }

    /// <summary>
    /// <see cref="DecoderLayer.Finish"/> for the job's chunk in slices: each slice's queries (at their global
    /// positions) attend to key rows [0, totalKeys) under <paramref name="mask"/>.
    /// </summary>
    protected static void Finish(DecoderLayer layer, RankJob job, ReadOnlySpan<float> keys, ReadOnlySpan<float> values,
        int totalKeys, AttentionMask mask)
    {
        var cfg = job.Config;
        int slice = job.Workspace.MaxTokens;
        for (int done = 0; done < job.Count; done += slice)
        {
            int n = Math.Min(slice, job.Count - done);
            // Causal skipping never needs keys past the slice's last query.
            int keysForSlice = mask == AttentionMask.PrefixCausal ? job.Start + done + n : totalKeys;
            layer.Finish(job.Hidden.AsSpan(done * cfg.Dim, n * cfg.Dim), n, job.Q.AsSpan(done * cfg.QDim, n * cfg.QDim),
                keys[..(keysForSlice * cfg.KvDim)], values[..(keysForSlice * cfg.KvDim)], job.Start + done, keysForSlice,
                job.Workspace, mask);
        }
    }

    private ForwardWorkspace Workspace(int tokens)
    {
        if (_workspace == null || _workspace.MaxTokens < tokens) _workspace = Model.CreateWorkspace(tokens);
        return _workspace;
    }

    /// <summary>This rank's chunk of one prompt and its buffers.</summary>
    protected sealed class RankJob
    {
        public RankJob(ModelConfig workspaceConfig, ReadOnlyMemory<int> promptIds, Partition partition, int rank, ForwardWorkspace workspace, float[] hidden, float[] q, RankRecorder recorder)
        {
            PromptIds = promptIds;
            Partition = partition;
            Rank = rank;
            Config = workspaceConfig;
            Start = partition.Start(rank);
            Count = partition.Chunk(rank);
            IsLast = rank == partition.Ranks - 1;
            Workspace = workspace;
            Hidden = hidden;
            Q = q;
            Recorder = recorder;
        }

        public ReadOnlyMemory<int> PromptIds { get; }
        public Partition Partition { get; }
        public int Rank { get; }
        public ModelConfig Config { get; }
        /// <summary>Global position of the chunk's first token (S_{i-1}).</summary>
        public int Start { get; }
        public int Count { get; }
        /// <summary>One past the chunk's last position (S_i).</summary>
        public int End => Start + Count;
        public bool IsLast { get; }
        public ForwardWorkspace Workspace { get; }
        /// <summary>Rented: longer than Count x Dim; slice.</summary>
        public float[] Hidden { get; }
        /// <summary>Rented: longer than Count x QDim; slice.</summary>
        public float[] Q { get; }
        public RankRecorder Recorder { get; }
    }
}
