using Runahead.Distributed;
using Runahead.Generation;
using Runahead.Models;

namespace Runahead.Prefill;

/// <summary>
/// Runs <see cref="PrefillJob"/>s for one rank: its part of the job's strategy, then, on the last rank, sampling of
/// the first token and decoding alone on the cache the prefill left (the paper's extension phase: no communication),
/// streaming each token through <c>emit</c>. Shared by worker processes (<see cref="PrefillRankProgram"/>) and the
/// in-process transport. One job at a time.
/// </summary>
public sealed class RankJobExecutor
{
    private readonly Dictionary<PrefillStrategyKind, RankPrefill> _strategies = new();
    private ForwardWorkspace? _decodeWorkspace;

    public RankJobExecutor(Model model, ICommunicator communicator)
    {
        Model = model ?? throw new ArgumentNullException(nameof(model));
        Communicator = communicator ?? throw new ArgumentNullException(nameof(communicator));
    }

    public Model Model { get; }
    public ICommunicator Communicator { get; }

    public async Task<byte[]> RunAsync(ReadOnlyMemory<byte> request, Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask> emit, CancellationToken ct)
    {
        int rank = Communicator.Rank;
        PrefillJob job;
        try
        {
            job = PrefillJob.Decode(request.Span);
        }
        catch (InvalidDataException e)
        {
            throw new RunaheadException($"rank {rank}: malformed prefill job ({e.Message})");
        }
        var partition = job.Partition();
        if (job.Strategy == PrefillStrategyKind.Single && Communicator.WorldSize != 1)
            throw new RunaheadException($"--strategy single runs on one rank, not {Communicator.WorldSize}");
        if (!_strategies.TryGetValue(job.Strategy, out var strategy))
            _strategies[job.Strategy] = strategy = RankPrefill.Create(job.Strategy, Model, Communicator);

        int budget = Math.Max(1, job.MaxNewTokens);
        int capacity = (int)Math.Min(Model.Config.ContextLength, (long)job.PromptIds.Length + budget);
        var output = await strategy.RunAsync(job.PromptIds, partition, Math.Max(capacity, job.PromptIds.Length), ct).ConfigureAwait(false);
        if (output.Logits == null) return new PrefillJobReply(output.Recorder, null, []).Encode();

        float[]? returned = job.ReturnLogits ? (float[])output.Logits.Clone() : null;
        var generated = await DecodeAsync(job, output.Cache!, output.Logits, budget, emit, ct).ConfigureAwait(false);
        return new PrefillJobReply(output.Recorder, returned, generated).Encode();
    }

    /// <summary>Samples and streams tokens until the budget, a stop id (streamed, then stop) or a full cache.</summary>
    private async Task<int[]> DecodeAsync(PrefillJob job, KvCache cache, float[] logits, int budget,
        Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask> emit, CancellationToken ct)
    {
        var sampler = new Sampler(Model.Config.VocabSize, job.Sampling);
        var history = new int[job.PromptIds.Length + budget];
        job.PromptIds.CopyTo(history, 0);
        int length = job.PromptIds.Length, generated = 0;
        var step = new int[1];
        _decodeWorkspace ??= Model.CreateWorkspace(1);
        while (true)
        {
            int next = sampler.Sample(logits, history.AsSpan(0, length));
            history[length++] = next;
            generated++;
            await emit(PrefillJobReply.EncodeToken(next), ct).ConfigureAwait(false);
            if (generated >= budget || Array.IndexOf(job.StopIds, next) >= 0 || cache.Length >= cache.Capacity) break;
            ct.ThrowIfCancellationRequested();
            step[0] = next;
            Model.Forward(step, cache, logits, _decodeWorkspace);
        }
        return history[job.PromptIds.Length..length];
    }
}
