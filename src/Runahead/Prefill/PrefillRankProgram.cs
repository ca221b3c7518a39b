using Runahead.Distributed;
using Runahead.Models;

namespace Runahead.Prefill;

/// <summary>
/// What every worker process runs: loads the model once (outside any TTFT), then executes <see cref="PrefillJob"/>s
/// with a <see cref="RankJobExecutor"/> on the rank's communicator.
/// </summary>
public sealed class PrefillRankProgram : IRankProgram
{
    private Model? _model;
    private RankJobExecutor? _executor;

    public Task InitializeAsync(RankContext context, CancellationToken ct)
    {
        var path = context.ModelPath ?? throw new RunaheadException($"rank {context.Rank}: no model path was given to the worker");
        ct.ThrowIfCancellationRequested();
        _model = Model.Load(path, new ModelLoadOptions { Threads = context.ThreadsPerRank, ContextLength = ParseContextLength(context.ProgramArguments) });
        _executor = new RankJobExecutor(_model, context.Communicator);
        return Task.CompletedTask;
    }

    private const string ContextLengthKey = "context-length=";

    /// <summary>The program arguments a coordinator hands to every rank (<see cref="RankContext.ProgramArguments"/>).</summary>
    public static string Arguments(int? contextLength) =>
        contextLength is int n ? ContextLengthKey + n.ToString(System.Globalization.CultureInfo.InvariantCulture) : "";

    private static int? ParseContextLength(string arguments)
    {
        foreach (var part in arguments.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            if (part.StartsWith(ContextLengthKey, StringComparison.Ordinal))
                return int.TryParse(part.AsSpan(ContextLengthKey.Length), System.Globalization.NumberStyles.None,
                    System.Globalization.CultureInfo.InvariantCulture, out int n) && n > 0
                    ? n
                    : throw new RunaheadException($"worker: bad program argument '{part}'");
        return null;
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
