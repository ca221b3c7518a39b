using System.Diagnostics;
using Runahead.Generation;

namespace Runahead.Prefill;

/// <summary>
/// The ranks a parallel <see cref="Generator"/> runs on, started (processes launched, the model loaded in each, one
/// warm-up job) before the first prompt so that none of that counts in a TTFT. A job that is cancelled or fails
/// tears the ranks down (a rank may be mid-layer); the next job starts them again.
/// </summary>
public sealed class ParallelRanks : IDisposable
{
    private readonly string _modelPath;
    private readonly int? _contextLength;
    private readonly SemaphoreSlim _startLock = new(1, 1);
    private readonly object _gate = new();
    private IRankJobHost? _host;
    private PrefillClient? _client;
    private bool _disposed;

    private ParallelRanks(string modelPath, ParallelGenerationOptions options, int? contextLength)
    {
        _modelPath = modelPath;
        Options = options;
        _contextLength = contextLength;
        ThreadsPerRank = options.ResolveThreadsPerRank();
    }

    public ParallelGenerationOptions Options { get; }

    public int ThreadsPerRank { get; }

    /// <summary>Rank start, model load and warm-up of the last (re)start.</summary>
    public TimeSpan StartupTime { get; private set; }

    /// <summary>How many times the ranks were started (more than 1 after a cancelled or failed job).</summary>
    public int Starts { get; private set; }

    /// <summary>False on MPI ranks other than 0: they take part in every job but receive no tokens.</summary>
    public bool IsClient { get; private set; } = true;

    /// <summary>Starts the ranks for <paramref name="modelPath"/>; <paramref name="contextLength"/> overrides the file's.</summary>
    public static async Task<ParallelRanks> StartAsync(string modelPath, ParallelGenerationOptions options, int? contextLength = null,
        CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(modelPath);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var ranks = new ParallelRanks(modelPath, options, contextLength);
        try
        {
            await ranks.ClientAsync(ct).ConfigureAwait(false);
            return ranks;
        }
        catch
        {
            ranks.Dispose();
            throw;
        }
    }

    /// <summary>The client of running ranks, starting them first when there are none (first use, or after a broken job).</summary>
    internal async Task<PrefillClient> ClientAsync(CancellationToken ct)
    {
        await _startLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            lock (_gate)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                if (_client != null) return _client;
            }
            var clock = Stopwatch.StartNew();
            var host = await RankJobHosts.CreateAsync(Options.Transport, _modelPath, Options.Ranks, ThreadsPerRank, Options.Links,
                Options.WorkerLog, ct, _contextLength, Options.WorkerExecutable, Options.SharedMemoryRingBytes).ConfigureAwait(false);
            try
            {
                var client = new PrefillClient(host) { Planner = Options.Planner };
                if (Options.WarmUp) await client.WarmUpAsync(Options.Strategy, ct).ConfigureAwait(false);
                lock (_gate)
                {
                    ObjectDisposedException.ThrowIf(_disposed, this);
                    _host = host;
                    _client = client;
                }
                IsClient = client.IsClient;
                StartupTime = clock.Elapsed;
                Starts++;
                return client;
            }
            catch
            {
                host.Dispose();
                throw;
            }
        }
        finally
        {
            _startLock.Release();
        }
    }

    /// <summary>Drops ranks that a cancelled or failed job left unusable; the next job starts new ones.</summary>
    internal void Discard(PrefillClient client)
    {
        IRankJobHost? broken;
        lock (_gate)
        {
            if (!ReferenceEquals(client, _client)) return;
            broken = _host;
            _host = null;
            _client = null;
        }
        broken?.Dispose();
    }

    public void Dispose()
    {
        IRankJobHost? host;
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            host = _host;
            _host = null;
            _client = null;
        }
        host?.Dispose();
    }
}
