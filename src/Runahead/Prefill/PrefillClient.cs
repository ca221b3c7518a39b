using Runahead.Diagnostics;
using Runahead.Generation;

namespace Runahead.Prefill;

/// <summary>One prompt through a parallel prefill, as the client saw it.</summary>
/// <param name="TtftMs">From handing the prompt ids to the ranks until the first token id arrived here.</param>
/// <param name="DecodeMs">From the first to the last generated token.</param>
/// <param name="Logits">The prefill's last-position logits, when asked for.</param>
public sealed record PrefillRun(PrefillStrategyKind Strategy, Partition Partition, double TtftMs, double DecodeMs, Timeline Timeline,
    float[]? Logits, int[] Generated)
{
    public IReadOnlyList<RankTimings> RankTimings => Timeline.AllTotals();
}

/// <summary>
/// The coordinator (client) side of a parallel prefill: hands a prompt to the ranks of an <see cref="IRankJobHost"/>,
/// takes the first token (and the decode stream) from the last rank, and assembles the per-rank timeline of the
/// TTFT window. Process start and model load happen when the host is built, never inside a run.
/// </summary>
public sealed class PrefillClient
{
    private readonly IRankJobHost _host;

    public PrefillClient(IRankJobHost host) => _host = host ?? throw new ArgumentNullException(nameof(host));

    public int Ranks => _host.Ranks;

    /// <summary>False on MPI ranks other than 0; there <see cref="RunAsync"/> takes part in the job and returns null.</summary>
    public bool IsClient => _host.IsClient;

    /// <summary>Answers --partition searched/predicted; null: those give the "run calibrate" error.</summary>
    public Func<PartitionKind, int, int, int[]?>? Planner { get; init; }

    /// <summary>
    /// One short untimed job so that the ranks' first real prompt does not pay for just-in-time compilation and first
    /// touches of the weights (part of start-up, like process start and model load).
    /// </summary>
    public async Task WarmUpAsync(PrefillStrategyKind strategy, CancellationToken ct)
    {
        var ids = new int[Math.Max(2 * Ranks, 8)];
        Array.Fill(ids, 1);
        await RunAsync(ids, strategy, PartitionSpec.Even, 2, SamplingOptions.Greedy, null, false, null, ct).ConfigureAwait(false);
    }

    /// <param name="onToken">Called with each generated id as it arrives (on the host's thread; keep it short).</param>
    /// <returns>The run as the client saw it; null on a process that is not the client (see <see cref="IsClient"/>).</returns>
    public async Task<PrefillRun?> RunAsync(ReadOnlyMemory<int> promptIds, PrefillStrategyKind strategy, PartitionSpec partitionSpec,
        int maxNewTokens, SamplingOptions? sampling, IReadOnlyList<int>? stopIds, bool returnLogits, Action<int>? onToken, CancellationToken ct)
    {
        if (promptIds.Length == 0) throw new RunaheadException("the prompt is empty: at least one token is needed");
        if (strategy == PrefillStrategyKind.Single && Ranks != 1)
            throw new RunaheadException($"--strategy single runs on one rank, not {Ranks}");
        var partition = partitionSpec.Resolve(promptIds.Length, Ranks, Planner);
        var job = new PrefillJob
        {
            Strategy = strategy, Chunks = partition.Chunks.ToArray(), PromptIds = promptIds.ToArray(),
            MaxNewTokens = Math.Max(1, maxNewTokens), Sampling = sampling ?? SamplingOptions.Greedy,
            StopIds = stopIds?.ToArray() ?? [], ReturnLogits = returnLogits,
        };
        job.Sampling.Validate();
        var request = job.Encode();

        long firstToken = 0, lastToken = 0;
        int last = Ranks - 1;
        long start = RankRecorder.Now();
        var replies = await _host.RunJobAsync(request, (rank, message) =>
        {
            if (rank != last) return;
            long now = RankRecorder.Now();
            if (firstToken == 0) firstToken = now;
            lastToken = now;
            onToken?.Invoke(PrefillJobReply.DecodeToken(message.Span));
        }, ct).ConfigureAwait(false);
        if (!IsClient) return null;
        if (firstToken == 0) throw new RunaheadException($"rank {last} finished the prefill without sending the first token");

        var recorders = new RankRecorder[Ranks];
        PrefillJobReply? lastReply = null;
        for (int r = 0; r < Ranks; r++)
        {
            PrefillJobReply reply;
            try
            {
                reply = PrefillJobReply.Decode(replies[r]);
            }
            catch (InvalidDataException e)
            {
                throw new RunaheadException($"rank {r} sent a malformed reply ({e.Message})");
            }
            recorders[r] = reply.Recorder;
            if (r == last) lastReply = reply;
        }
        var timeline = new Timeline($"{strategy.Name()} P={Ranks} C={promptIds.Length}", start, firstToken, recorders);
        return new PrefillRun(strategy, partition, RankRecorder.TicksToMs(firstToken - start), RankRecorder.TicksToMs(lastToken - firstToken),
            timeline, lastReply!.Logits, lastReply.Generated);
    }
}
