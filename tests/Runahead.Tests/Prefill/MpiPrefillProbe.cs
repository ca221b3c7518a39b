using System.Globalization;
using System.Text;
using Runahead.Distributed;
using Runahead.Generation;
using Runahead.Models;
using Runahead.Prefill;

namespace Runahead.Tests.Prefill;

/// <summary>
/// A rank program for the MPI test: runs every strategy and partition shape on one prompt through the real
/// <see cref="RankJobExecutor"/> and replies (on the last rank) with each run's logits and greedy continuation as text,
/// which `runahead worker --transport mpi` prints on rank 0. Request: "newTokens;id,id,...".
/// </summary>
public sealed class MpiPrefillProbe : IRankProgram
{
    private Model? _model;
    private RankJobExecutor? _executor;

    public Task InitializeAsync(RankContext context, CancellationToken ct)
    {
        _model = Model.Load(context.ModelPath!, new ModelLoadOptions { Threads = context.ThreadsPerRank });
        _executor = new RankJobExecutor(_model, context.Communicator);
        return Task.CompletedTask;
    }

    public async Task<byte[]> RunJobAsync(RankContext context, ReadOnlyMemory<byte> request, CancellationToken ct)
    {
        var parts = Encoding.UTF8.GetString(request.Span).Split(';');
        int newTokens = int.Parse(parts[0], CultureInfo.InvariantCulture);
        var prompt = parts[1].Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
        var text = new StringBuilder();
        foreach (var strategy in new[] { PrefillStrategyKind.Tsp, PrefillStrategyKind.TspCausal, PrefillStrategyKind.Kvr })
            foreach (var (name, spec) in PrefillReference.Partitions(prompt.Length, context.WorldSize))
            {
                var job = new PrefillJob
                {
                    Strategy = strategy, Chunks = spec.Resolve(prompt.Length, context.WorldSize).Chunks.ToArray(), PromptIds = prompt,
                    MaxNewTokens = newTokens, Sampling = SamplingOptions.Greedy, ReturnLogits = true,
                };
                var reply = PrefillJobReply.Decode(await _executor!.RunAsync(job.Encode(), (_, _) => ValueTask.CompletedTask, ct));
                if (reply.Logits == null) continue;
                text.Append(strategy.Name()).Append(' ').Append(name).Append('|')
                    .Append(string.Join(',', reply.Logits.Select(v => v.ToString("R", CultureInfo.InvariantCulture)))).Append('|')
                    .Append(string.Join(',', reply.Generated)).Append('#');
            }
        return Encoding.UTF8.GetBytes(text.ToString());
    }

    public void Dispose() => _model?.Dispose();
}
