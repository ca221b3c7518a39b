using Runahead.Distributed;
using Runahead.Formats;
using Runahead.Formats.Synthetic;
using Runahead.Generation;
using Runahead.Models;
using Runahead.Prefill;
using Runahead.Tests.Prefill;

namespace Runahead.Tests.Models;

/// <summary>
/// A synthesized BF16 "tiny" model in a temporary folder whose packed-weight cache folder the worker processes inherit
/// through RUNAHEAD_SHARED_WEIGHTS_DIR (restored, and the folder deleted, on dispose), plus the KV-Runahead run over 3
/// shared-memory worker ranks that the worker-rank tests compare with one process.
/// </summary>
internal sealed class WorkerRanksScenario : IDisposable
{
    public const int Ranks = 3;
    public const int Generate = 4;

    private readonly DirectoryInfo _dir;
    private readonly string? _oldCacheDir;

    public WorkerRanksScenario(ulong seed)
    {
        _dir = Directory.CreateTempSubdirectory("runahead-workerranks-");
        _oldCacheDir = Environment.GetEnvironmentVariable("RUNAHEAD_SHARED_WEIGHTS_DIR");
        ModelPath = Path.Combine(_dir.FullName, "ranks.gguf");
        SyntheticModel.Write(ModelShapes.Get("tiny"), TensorType.BF16, ModelPath, seed);
        CacheFolder = Path.Combine(_dir.FullName, "packed");
        Environment.SetEnvironmentVariable("RUNAHEAD_SHARED_WEIGHTS_DIR", CacheFolder);
    }

    public string ModelPath { get; }
    public string CacheFolder { get; }

    /// <summary>KVR (even chunks) over <see cref="Ranks"/> worker processes, prefill plus <see cref="Generate"/> greedy tokens.</summary>
    public async Task<PrefillRun> RunKvrOnWorkersAsync(int[] prompt, CancellationToken ct)
    {
        using var host = await RankJobHosts.CreateAsync(RankTransport.SharedMemory, ModelPath, Ranks, 1, null, null, ct);
        return (await new PrefillClient(host).RunAsync(prompt, PrefillStrategyKind.Kvr, PartitionSpec.Even, Generate,
            SamplingOptions.Greedy, null, true, null, ct))!;
    }

    public void Dispose()
    {
        Environment.SetEnvironmentVariable("RUNAHEAD_SHARED_WEIGHTS_DIR", _oldCacheDir);
        _dir.Delete(true);
    }
}
