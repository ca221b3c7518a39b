using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Runahead.Distributed;

/// <summary>What every rank answered to one job, by rank (empty on MPI ranks other than 0).</summary>
public sealed record RankJobResult(IReadOnlyList<byte[]> Replies, TimeSpan Elapsed);

/// <summary>
/// The coordinator's handle on P ranks: started once (process start and model load are timed separately, see
/// <see cref="StartupTime"/>), then serves many jobs. With <see cref="RankTransport.SharedMemory"/> each rank is a
/// `runahead worker` process; the pool supervises them and fails fast: a rank that dies or fails makes the current
/// and every later job throw a <see cref="RankFailedException"/> naming it, the other workers exit, and the shared
/// segment is removed. A failed pool must be disposed and started again.
/// </summary>
public sealed class RankPool : IDisposable, IAsyncDisposable
{
    private static readonly TimeSpan ShutdownGrace = TimeSpan.FromSeconds(2);

    private readonly RankPoolOptions _options;
    private readonly SemaphoreSlim _jobLock = new(1, 1);
    private readonly TaskCompletionSource _failed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly object _stateLock = new();
    private RankFailedException? _failure;
    private JobState? _current;
    private int _jobId;
    private int _disposed;

    // SharedMemory transport
    private SharedMemorySegment? _segment;
    private WorkerProcess[] _workers = [];
    private PosixSignalRegistration?[] _signals = [];

    // Mpi transport: this process is one rank; rank 0 is the client
    private MpiCommunicator? _mpi;
    private const int ControlTag = CommunicatorBase.MaxTag + 1;
    private const byte MpiEmit = 1, MpiReply = 2, MpiError = 3;

    // InProcess transport
    private InProcessGroup? _group;
    private IRankProgram[] _programs = [];
    private RankContext[] _contexts = [];

    private RankPool(RankPoolOptions options) => _options = options;

    public int WorldSize => _options.WorldSize;

    public RankTransport Transport => _options.Transport;

    /// <summary>From <see cref="StartAsync"/> until every rank was ready: process start, attach and model load.</summary>
    public TimeSpan StartupTime { get; private set; }

    /// <summary>Per rank, the time its <see cref="IRankProgram.InitializeAsync"/> took (model load).</summary>
    public IReadOnlyList<TimeSpan> InitializeTimes { get; private set; } = [];

    /// <summary>Worker process ids by rank (empty for in-process ranks).</summary>
    public IReadOnlyList<int> ProcessIds { get; private set; } = [];

    /// <summary>
    /// False on MPI ranks other than 0: every process of an MPI job runs the same command and calls
    /// <see cref="RunJobAsync"/>, but only the client (rank 0) gets the replies and should print results.
    /// </summary>
    public bool IsClient => _mpi == null || _mpi.Rank == 0;

    /// <summary>The segment's file while workers attach (it is deleted once all have mapped it).</summary>
    public string? SegmentPath => _segment?.FilePath;

    /// <summary>Starts the ranks and waits until each has initialised its program.</summary>
    public static async Task<RankPool> StartAsync(RankPoolOptions options, CancellationToken ct = default)
    {
        options.Validate();
        var pool = new RankPool(options);
        var sw = Stopwatch.StartNew();
        try
        {
            switch (options.Transport)
            {
                case RankTransport.InProcess:
                    await pool.StartInProcessAsync(ct).ConfigureAwait(false);
                    break;
                case RankTransport.SharedMemory:
                    await pool.StartWorkersAsync(ct).ConfigureAwait(false);
                    break;
                case RankTransport.Mpi:
                    await pool.StartMpiAsync(ct).ConfigureAwait(false);
                    break;
                default:
                    throw new ArgumentOutOfRangeException(nameof(options), $"unknown transport {options.Transport}");
            }
        }
        catch
        {
            pool.Dispose();
            throw;
        }
        pool.StartupTime = sw.Elapsed;
        return pool;
    }

    /// <summary>
    /// Hands <paramref name="request"/> to every rank and waits for all replies. <paramref name="onEmit"/> sees each
    /// rank's streamed messages as they arrive (on a pool thread). Cancelling a job tears the pool down.
    /// </summary>
    public async Task<RankJobResult> RunJobAsync(ReadOnlyMemory<byte> request, Action<int, ReadOnlyMemory<byte>>? onEmit = null, CancellationToken ct = default)
    {
        await _jobLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            ThrowIfFailed();
            var job = new JobState(Interlocked.Increment(ref _jobId), WorldSize, onEmit);
            lock (_stateLock) _current = job;
            var sw = Stopwatch.StartNew();
            try
            {
                if (_mpi != null) await RunMpiJobAsync(job, request, ct).ConfigureAwait(false);
                else if (_group != null) await RunInProcessJobAsync(job, request, ct).ConfigureAwait(false);
                else await RunWorkerJobAsync(job, request, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                Fail(-1, "the client cancelled the job");
                throw;
            }
            // MPI ranks other than 0 are not the client: they have no replies to hand out.
            return new RankJobResult(IsClient ? job.Replies : [], sw.Elapsed);
        }
        finally
        {
            lock (_stateLock) _current = null;
            _jobLock.Release();
        }
    }

    private void ThrowIfFailed()
    {
        ObjectDisposedException.ThrowIf(_disposed != 0 && _failure == null, this);
        var f = _failure;
        if (f != null) throw new RankFailedException(f.FailedRank, f.Message);
    }

    /// <summary>Records the first failure, stops every rank and wakes whoever waits on the pool.</summary>
    private void Fail(int rank, string message)
    {
        lock (_stateLock)
        {
            if (_failure != null) return;
            _failure = new RankFailedException(rank, message);
        }
        if (_segment != null && _disposed == 0) _segment.Abort(rank, message);
        _group?.Fail(rank, message);
        // A failed MPI job cannot finalise cleanly; exiting without MPI_Finalize lets mpiexec end the other ranks.
        _mpi?.MarkBroken();
        _failed.TrySetResult();
        if (_workers.Length > 0) _ = Task.Run(StopWorkersAsync);
    }

    // ---------------------------------------------------------------- in-process ranks

    private async Task StartInProcessAsync(CancellationToken ct)
    {
        _group = new InProcessGroup(WorldSize, _options.Links, _options.ReceiveTimeout);
        _programs = new IRankProgram[WorldSize];
        _contexts = new RankContext[WorldSize];
        var times = new TimeSpan[WorldSize];
        for (int r = 0; r < WorldSize; r++)
        {
            int rank = r;
            _programs[r] = (IRankProgram)Activator.CreateInstance(_options.ProgramType)!;
            _contexts[r] = new RankContext(_group[r], LaunchSettings(r), (message, _) =>
            {
                JobState? job;
                lock (_stateLock) job = _current;
                job?.OnEmit?.Invoke(rank, message);
                return ValueTask.CompletedTask;
            });
        }
        var inits = new Task[WorldSize];
        for (int r = 0; r < WorldSize; r++)
        {
            int rank = r;
            inits[r] = Task.Run(async () =>
            {
                var sw = Stopwatch.StartNew();
                try
                {
                    await _programs[rank].InitializeAsync(_contexts[rank], ct).ConfigureAwait(false);
                }
                catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
                {
                    // Named like a worker process's failure, so callers see one shape whatever the transport.
                    Fail(e is RankFailedException rf ? rf.FailedRank : rank, e is RankFailedException ? e.Message : $"rank {rank} failed: {e.Message}");
                }
                times[rank] = sw.Elapsed;
            }, ct);
        }
        await Task.WhenAll(inits).ConfigureAwait(false);
        ThrowIfFailed();
        InitializeTimes = times;
    }

    private async Task RunInProcessJobAsync(JobState job, ReadOnlyMemory<byte> request, CancellationToken ct)
    {
        var tasks = new Task[WorldSize];
        for (int r = 0; r < WorldSize; r++)
        {
            int rank = r;
            tasks[r] = Task.Run(async () =>
            {
                try
                {
                    job.Replies[rank] = await _programs[rank].RunJobAsync(_contexts[rank], request, ct).ConfigureAwait(false);
                }
                catch (RankFailedException e)
                {
                    Fail(e.FailedRank, e.Message);
                }
                catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
                {
                    Fail(rank, $"rank {rank} failed: {e.Message}");
                }
            }, ct);
        }
        await Task.WhenAll(tasks).ConfigureAwait(false);
        ct.ThrowIfCancellationRequested();
        ThrowIfFailed();
    }

    // ---------------------------------------------------------------- MPI ranks

    private async Task StartMpiAsync(CancellationToken ct)
    {
        _mpi = MpiCommunicator.Start(_options.ReceiveTimeout, _options.Links);
        if (_mpi.WorldSize != WorldSize)
            throw new RunaheadException($"--ranks {WorldSize}, but mpiexec started {_mpi.WorldSize} processes");
        int rank = _mpi.Rank;
        _programs = [(IRankProgram)Activator.CreateInstance(_options.ProgramType)!];
        _contexts = [new RankContext(_mpi, LaunchSettings(rank), async (message, token) =>
        {
            if (rank == 0)
            {
                JobState? job;
                lock (_stateLock) job = _current;
                job?.OnEmit?.Invoke(0, message);
                return;
            }
            await _mpi.SendReservedAsync(0, ControlTag, Prefixed(MpiEmit, message.Span), token).ConfigureAwait(false);
        })];
        var sw = Stopwatch.StartNew();
        await _programs[0].InitializeAsync(_contexts[0], ct).ConfigureAwait(false);
        var mine = new[] { (float)sw.Elapsed.TotalSeconds };
        var all = new float[WorldSize];
        var counts = new int[WorldSize];
        Array.Fill(counts, 1);
        await _mpi.AllGatherAsync(mine, all, counts, ct).ConfigureAwait(false);
        InitializeTimes = Array.ConvertAll(all, s => TimeSpan.FromSeconds(s));
    }

    private async Task RunMpiJobAsync(JobState job, ReadOnlyMemory<byte> request, CancellationToken ct)
    {
        var mpi = _mpi!;
        int rank = mpi.Rank;
        if (rank == 0)
        {
            for (int r = 1; r < WorldSize; r++) await mpi.SendReservedAsync(r, ControlTag, request, ct).ConfigureAwait(false);
        }
        else
        {
            // The client's request wins over our own copy of the command line.
            using var m = await mpi.ReceiveReservedAsync(0, ControlTag, ct).ConfigureAwait(false);
            request = m.Bytes.ToArray();
        }
        using var jobCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var collector = rank == 0 ? CollectMpiRepliesAsync(job, jobCts) : Task.CompletedTask;
        try
        {
            var reply = await _programs[0].RunJobAsync(_contexts[0], request, jobCts.Token).ConfigureAwait(false);
            if (rank == 0) job.SetReply(0, reply);
            else await mpi.SendReservedAsync(0, ControlTag, Prefixed(MpiReply, reply), ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (jobCts.IsCancellationRequested && !ct.IsCancellationRequested)
        {
            // The collector saw another rank's failure and stopped us; it reports that failure below.
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            var (failed, message) = e is RankFailedException rf ? (rf.FailedRank, rf.Message) : (rank, $"rank {rank} failed: {e.Message}");
            if (rank != 0)
            {
                var text = System.Text.Encoding.UTF8.GetBytes(message);
                var payload = new byte[4 + text.Length];
                BitConverter.TryWriteBytes(payload, failed);
                text.CopyTo(payload, 4);
                await mpi.SendReservedAsync(0, ControlTag, Prefixed(MpiError, payload), CancellationToken.None).ConfigureAwait(false);
                // Give rank 0 a moment to report it, then end the MPI job: nothing else unblocks the other ranks.
                await Task.Delay(TimeSpan.FromSeconds(1), CancellationToken.None).ConfigureAwait(false);
                mpi.AbortJob(ExitCodeForFailure);
            }
            jobCts.Cancel();
            Fail(failed, message);
        }
        if (rank == 0)
        {
            try
            {
                await collector.ConfigureAwait(false);
            }
            catch (RankFailedException e)
            {
                Fail(e.FailedRank, e.Message);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
            }
        }
        ThrowIfFailed();
    }

    private const int ExitCodeForFailure = 3;

    /// <summary>On rank 0: streams other ranks' emits to the client and collects their replies or errors.</summary>
    private async Task CollectMpiRepliesAsync(JobState job, CancellationTokenSource jobCts)
    {
        var mpi = _mpi!;
        var tasks = new List<Task>();
        for (int r = 1; r < WorldSize; r++)
        {
            int source = r;
            tasks.Add(Task.Run(async () =>
            {
                while (true)
                {
                    using var m = await mpi.ReceiveReservedAsync(source, ControlTag, jobCts.Token).ConfigureAwait(false);
                    var body = m.Bytes[1..];
                    switch (m.Bytes[0])
                    {
                        case MpiEmit:
                            job.OnEmit?.Invoke(source, body.ToArray());
                            break;
                        case MpiReply:
                            job.SetReply(source, body.ToArray());
                            return;
                        default:
                            int failed = BitConverter.ToInt32(body);
                            var message = System.Text.Encoding.UTF8.GetString(body[4..]);
                            jobCts.Cancel();
                            throw new RankFailedException(failed, message);
                    }
                }
            }));
        }
        await Task.WhenAll(tasks).ConfigureAwait(false);
    }

    private static byte[] Prefixed(byte kind, ReadOnlySpan<byte> body)
    {
        var b = new byte[1 + body.Length];
        b[0] = kind;
        body.CopyTo(b.AsSpan(1));
        return b;
    }

    // ---------------------------------------------------------------- worker processes

    private async Task StartWorkersAsync(CancellationToken ct)
    {
        _segment = SharedMemorySegment.Create(WorldSize, _options.EffectiveRingBytes);
        RegisterCleanupHandlers();
        var (file, prefix) = ResolveWorkerExecutable(_options.WorkerExecutable);
        _workers = new WorkerProcess[WorldSize];
        for (int r = 0; r < WorldSize; r++)
        {
            var worker = new WorkerProcess(this, r, file, prefix);
            _workers[r] = worker;
            worker.Start();
        }
        ProcessIds = Array.ConvertAll(_workers, w => w.Pid);
        for (int r = 0; r < WorldSize; r++)
            await _workers[r].Channel.WriteAsync(ControlKind.Launch, 0, LaunchSettings(r).Serialize(), ct).ConfigureAwait(false);

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(_options.StartupTimeout);
        var ready = Task.WhenAll(Array.ConvertAll(_workers, w => w.Ready.Task));
        try
        {
            await Task.WhenAny(ready, _failed.Task).WaitAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            int slow = Array.FindIndex(_workers, w => !w.Ready.Task.IsCompleted);
            Fail(slow, $"rank {slow} was not ready within {_options.StartupTimeout.TotalSeconds:0} s");
        }
        ThrowIfFailed();
        InitializeTimes = Array.ConvertAll(_workers, w => TimeSpan.FromSeconds(w.Ready.Task.Result));
        // Every worker has mapped the segment: the file is no longer needed, and no later crash can leave it behind.
        _segment.Delete();
    }

    private async Task RunWorkerJobAsync(JobState job, ReadOnlyMemory<byte> request, CancellationToken ct)
    {
        try
        {
            foreach (var w in _workers)
                await w.Channel.WriteAsync(ControlKind.Job, job.Id, request, ct).ConfigureAwait(false);
        }
        catch (IOException)
        {
            // A worker's pipe broke: its exit report names it in a moment.
            await _failed.Task.WaitAsync(TimeSpan.FromSeconds(5), ct).ConfigureAwait(false);
        }
        await Task.WhenAny(job.Completion.Task, _failed.Task).WaitAsync(ct).ConfigureAwait(false);
        ThrowIfFailed();
    }

    private void OnFrame(WorkerProcess worker, ControlFrame frame)
    {
        switch (frame.Kind)
        {
            case ControlKind.Ready:
                worker.Ready.TrySetResult(frame.Payload.Length == 8 ? BitConverter.ToDouble(frame.Payload) : 0);
                break;
            case ControlKind.Emit:
            case ControlKind.Reply:
                JobState? job;
                lock (_stateLock) job = _current;
                if (job == null || job.Id != frame.JobId) break;
                if (frame.Kind == ControlKind.Emit) job.OnEmit?.Invoke(worker.Rank, frame.Payload);
                else job.SetReply(worker.Rank, frame.Payload);
                break;
            case ControlKind.Error:
                var (failed, message) = ControlChannel.ParseError(frame.Payload);
                Fail(failed, message);
                break;
        }
    }

    private async Task OnWorkerExitedAsync(WorkerProcess worker)
    {
        if (_disposed != 0) return;
        // Prefer the worker's own error report, which it writes before exiting.
        await worker.OutputDone.WaitAsync(TimeSpan.FromSeconds(1)).ConfigureAwait(false);
        int code;
        try
        {
            code = worker.Process.ExitCode;
        }
        catch (InvalidOperationException)
        {
            code = -1;
        }
        var why = code > 128 && code < 160 ? $"was killed by signal {code - 128}" : $"exited with code {code}";
        var tail = worker.LastErrorLine;
        Fail(worker.Rank, $"rank {worker.Rank} (pid {worker.Pid}) {why}" + (tail == null ? "" : $": {tail}"));
    }

    private async Task StopWorkersAsync()
    {
        foreach (var w in _workers) await w.RequestShutdownAsync().ConfigureAwait(false);
        var deadline = Task.Delay(ShutdownGrace);
        foreach (var w in _workers)
            await Task.WhenAny(w.Process.WaitForExitAsync(), deadline).ConfigureAwait(false);
        foreach (var w in _workers) w.Kill();
    }

    private RankLaunchSettings LaunchSettings(int rank) => new()
    {
        Rank = rank,
        WorldSize = WorldSize,
        ProgramAssemblyPath = RankProgramLoader.AssemblyPathOf(_options.ProgramType),
        ProgramTypeName = _options.ProgramType.FullName!,
        ProgramArguments = _options.ProgramArguments,
        ModelPath = _options.ModelPath,
        ThreadsPerRank = _options.ThreadsPerRank,
        ReceiveTimeout = _options.ReceiveTimeout,
        LinkSpec = _options.Links?.ToSpec(),
        SegmentPath = _segment?.FilePath ?? "",
        Token = _segment?.Token ?? [],
        CoordinatorPid = Environment.ProcessId,
    };

    /// <summary>
    /// The `runahead` binary for workers: explicit, else this process when it is runahead, else the apphost or
    /// runahead.dll beside this assembly (how tests find it).
    /// </summary>
    internal static (string File, string[] Prefix) ResolveWorkerExecutable(string? explicitPath)
    {
        static (string, string[]) Launcher(string path) => path.EndsWith(".dll", StringComparison.OrdinalIgnoreCase)
            ? (DotnetHost(), [path])
            : (path, []);
        if (!string.IsNullOrEmpty(explicitPath))
        {
            if (!File.Exists(explicitPath)) throw new RunaheadException($"worker executable {explicitPath} not found");
            return Launcher(explicitPath);
        }
        var self = Environment.ProcessPath;
        if (self != null && Path.GetFileNameWithoutExtension(self) == "runahead") return (self, []);
        foreach (var name in new[] { "runahead", "runahead.exe", "runahead.dll" })
        {
            var candidate = Path.Combine(AppContext.BaseDirectory, name);
            if (File.Exists(candidate)) return Launcher(candidate);
        }
        throw new RunaheadException($"cannot find the runahead executable for worker processes beside {AppContext.BaseDirectory}");
    }

    private static string DotnetHost()
    {
        var self = Environment.ProcessPath;
        if (self != null && Path.GetFileNameWithoutExtension(self) == "dotnet") return self;
        var root = Environment.GetEnvironmentVariable("DOTNET_ROOT");
        if (!string.IsNullOrEmpty(root) && File.Exists(Path.Combine(root, "dotnet"))) return Path.Combine(root, "dotnet");
        return "dotnet";
    }

    private void RegisterCleanupHandlers()
    {
        // Ctrl-C / SIGTERM: stop the workers and remove the segment; the default action then ends the process.
        if (!OperatingSystem.IsWindows())
        {
            _signals =
            [
                PosixSignalRegistration.Create(PosixSignal.SIGINT, _ => EmergencyCleanup()),
                PosixSignalRegistration.Create(PosixSignal.SIGTERM, _ => EmergencyCleanup()),
                PosixSignalRegistration.Create(PosixSignal.SIGQUIT, _ => EmergencyCleanup()),
            ];
        }
        AppDomain.CurrentDomain.ProcessExit += OnProcessExit;
    }

    private void OnProcessExit(object? sender, EventArgs e) => EmergencyCleanup();

    private void EmergencyCleanup()
    {
        foreach (var w in _workers) w.Kill();
        _segment?.Delete();
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        foreach (var s in _signals) s?.Dispose();
        AppDomain.CurrentDomain.ProcessExit -= OnProcessExit;
        if (_workers.Length > 0)
        {
            try
            {
                StopWorkersAsync().Wait(ShutdownGrace + TimeSpan.FromSeconds(1));
            }
            catch (AggregateException)
            {
            }
            foreach (var w in _workers) w.Dispose();
        }
        _segment?.Dispose();
        foreach (var p in _programs) p?.Dispose();
        _mpi?.Dispose();
        _group?.Dispose();
        lock (_stateLock) _failure ??= new RankFailedException(-1, "the rank pool was disposed");
        _failed.TrySetResult();
    }

    public ValueTask DisposeAsync()
    {
        Dispose();
        return ValueTask.CompletedTask;
    }

    private sealed class JobState(int id, int worldSize, Action<int, ReadOnlyMemory<byte>>? onEmit)
    {
        private int _remaining = worldSize;

        public int Id { get; } = id;
        public byte[][] Replies { get; } = new byte[worldSize][];
        public Action<int, ReadOnlyMemory<byte>>? OnEmit { get; } = onEmit;
        public TaskCompletionSource Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void SetReply(int rank, byte[] reply)
        {
            if (Interlocked.Exchange(ref Replies[rank], reply) != null) return;
            if (Interlocked.Decrement(ref _remaining) == 0) Completion.TrySetResult();
        }
    }

    /// <summary>One `runahead worker` child: pipes, its stderr tail for error messages, its exit.</summary>
    private sealed class WorkerProcess : IDisposable
    {
        private const int TailLines = 20;
        private readonly RankPool _pool;
        private readonly Queue<string> _tail = new();
        private int _shutdownSent;

        public WorkerProcess(RankPool pool, int rank, string file, string[] prefix)
        {
            _pool = pool;
            Rank = rank;
            var psi = new ProcessStartInfo(file)
            {
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            foreach (var a in prefix) psi.ArgumentList.Add(a);
            psi.ArgumentList.Add("worker");
            psi.ArgumentList.Add("--rank");
            psi.ArgumentList.Add(rank.ToString(System.Globalization.CultureInfo.InvariantCulture));
            psi.Environment["DOTNET_gcServer"] = "0";
            // Every rank must pack BF16 weights in the coordinator's layout (single- and multi-rank results agree only
            // on the same path); a worker measuring on its own could decide otherwise under load.
            psi.Environment[Numerics.Jit.Bf16Dot.EnvironmentVariable] = Numerics.Jit.Bf16Dot.WorkerSetting;
            Process = new Process { StartInfo = psi, EnableRaisingEvents = true };
        }

        public int Rank { get; }
        public Process Process { get; }
        public int Pid { get; private set; }
        public ControlChannel Channel { get; private set; } = null!;
        public TaskCompletionSource<double> Ready { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public Task OutputDone { get; private set; } = Task.CompletedTask;

        public string? LastErrorLine
        {
            get
            {
                lock (_tail) return _tail.Count == 0 ? null : _tail.Last();
            }
        }

        public void Start()
        {
            Process.Exited += (_, _) => _ = _pool.OnWorkerExitedAsync(this);
            try
            {
                Process.Start();
            }
            catch (System.ComponentModel.Win32Exception e)
            {
                throw new RunaheadException($"cannot start worker {Process.StartInfo.FileName}: {e.Message}");
            }
            Pid = Process.Id;
            Channel = new ControlChannel(Process.StandardOutput.BaseStream, Process.StandardInput.BaseStream);
            OutputDone = Task.Run(ReadFramesAsync);
            _ = Task.Run(ReadErrorsAsync);
        }

        private async Task ReadFramesAsync()
        {
            try
            {
                while (await Channel.ReadAsync(CancellationToken.None).ConfigureAwait(false) is { } frame)
                    _pool.OnFrame(this, frame);
            }
            catch (Exception e) when (e is IOException or InvalidDataException or ObjectDisposedException)
            {
            }
        }

        private async Task ReadErrorsAsync()
        {
            try
            {
                while (await Process.StandardError.ReadLineAsync().ConfigureAwait(false) is { } line)
                {
                    lock (_tail)
                    {
                        _tail.Enqueue(line);
                        if (_tail.Count > TailLines) _tail.Dequeue();
                    }
                    var log = _pool._options.WorkerLog;
                    if (log != null)
                        lock (log) log.WriteLine($"[rank {Rank}] {line}");
                }
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException)
            {
            }
        }

        public async Task RequestShutdownAsync()
        {
            if (Interlocked.Exchange(ref _shutdownSent, 1) != 0 || HasExited) return;
            try
            {
                using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(500));
                await Channel.WriteAsync(ControlKind.Shutdown, 0, ReadOnlyMemory<byte>.Empty, cts.Token).ConfigureAwait(false);
                Process.StandardInput.Close();
            }
            catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or InvalidOperationException)
            {
            }
        }

        private bool HasExited
        {
            get
            {
                try
                {
                    return Process.HasExited;
                }
                catch (InvalidOperationException)
                {
                    return true;
                }
            }
        }

        public void Kill()
        {
            try
            {
                if (!HasExited) Process.Kill(entireProcessTree: true);
            }
            catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception or NotSupportedException)
            {
            }
        }

        public void Dispose()
        {
            Kill();
            Process.Dispose();
        }
    }
}
