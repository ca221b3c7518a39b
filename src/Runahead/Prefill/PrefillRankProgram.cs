using Runahead.Distributed;
using Runahead.Models;

namespace Runahead.Prefill;

/// <summary>
/// What every worker process runs: loads the model once (outside any TTFT), then executes <see cref="PrefillJob"/>s
/// with a <see cref="RankJobExecutor"/> on the rank's communicator. Ranks load with
/// <see cref="ModelLoadOptions.SharedWeights"/> on (unless the arguments say "shared-weights=off"): the first rank to
/// get the cache lock packs the weights into the cache file and the others map it, so P ranks on one host hold one
/// copy of the packed weights instead of P private ones.
/// </summary>
public sealed class PrefillRankProgram : IRankProgram
{
    private Model? _model;
    private RankJobExecutor? _executor;

    public async Task InitializeAsync(RankContext context, CancellationToken ct)
    {
        var path = context.ModelPath ?? throw new RunaheadException($"rank {context.Rank}: no model path was given to the worker");
        ct.ThrowIfCancellationRequested();
        var (contextLength, sharedWeights) = Parse(context.ProgramArguments);
        await AgreeOnBf16PathAsync(context.Communicator, ct).ConfigureAwait(false);
        _model = Model.Load(path, new ModelLoadOptions { Threads = context.ThreadsPerRank, ContextLength = contextLength, SharedWeights = sharedWeights });
        _executor = new RankJobExecutor(_model, context.Communicator);
    }

    /// <summary>
    /// Every rank packs BF16 weights the way rank 0 decided, before any weight is packed: one layout for the shared
    /// packed-weight file and one numeric path, so multi-rank results equal single-process ones. Workers of a rank pool
    /// already got the coordinator's decision; ranks started by mpiexec would otherwise each measure on their own.
    /// </summary>
    internal static async Task AgreeOnBf16PathAsync(ICommunicator communicator, CancellationToken ct)
    {
        // Ranks that are threads of one process share the decision already (and tests switch it per process).
        if (communicator.WorldSize == 1 || communicator is InProcessCommunicator) return;
        var mine = new[] { Numerics.Jit.Bf16Dot.Enabled ? 1f : 0f };
        var all = new float[communicator.WorldSize];
        var counts = new int[communicator.WorldSize];
        Array.Fill(counts, 1);
        await communicator.AllGatherAsync(mine, all, counts, ct).ConfigureAwait(false);
        Numerics.Jit.Bf16Dot.Adopt(all[0] != 0);
    }

    private const string ContextLengthKey = "context-length=";
    private const string SharedWeightsOff = "shared-weights=off";

    /// <summary>The program arguments a coordinator hands to every rank (<see cref="RankContext.ProgramArguments"/>).</summary>
    public static string Arguments(int? contextLength, bool sharedWeights = true)
    {
        var parts = new List<string>(2);
        if (contextLength is int n) parts.Add(ContextLengthKey + n.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (!sharedWeights) parts.Add(SharedWeightsOff);
        return string.Join(' ', parts);
    }

    internal static (int? ContextLength, bool SharedWeights) Parse(string arguments)
    {
        int? contextLength = null;
        bool sharedWeights = true;
        foreach (var part in arguments.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            if (part == SharedWeightsOff) sharedWeights = false;
            else if (part.StartsWith(ContextLengthKey, StringComparison.Ordinal))
                contextLength = int.TryParse(part.AsSpan(ContextLengthKey.Length), System.Globalization.NumberStyles.None,
                    System.Globalization.CultureInfo.InvariantCulture, out int n) && n > 0
                    ? n
                    : throw new RunaheadException($"worker: bad program argument '{part}'");
        }
        return (contextLength, sharedWeights);
    }

    public Task<byte[]> RunJobAsync(RankContext context, ReadOnlyMemory<byte> request, CancellationToken ct)
    {
        var executor = _executor ?? throw new InvalidOperationException("rank program used before InitializeAsync");
        return executor.RunAsync(request, context.EmitAsync, ct);
    }

    public void Dispose()
    {
        _model?.Dispose();
        _model = null;
        _executor = null;
    }
}
