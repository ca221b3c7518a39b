using System.Diagnostics;
using System.Threading.Channels;

namespace Runahead.Distributed;

/// <summary>
/// The rank side of a <see cref="RankPool"/>: reads its launch settings and jobs from the coordinator's pipe, runs the
/// rank program, and answers with replies, emitted messages and errors. Exits (never hangs) when the coordinator goes
/// away, when another rank fails, or when its own job fails.
/// </summary>
public static class WorkerHost
{
    public const int ExitOk = 0;
    public const int ExitJobFailed = 3;
    public const int ExitCoordinatorGone = 4;
    public const int ExitBadLaunch = 5;

    private static readonly TimeSpan LaunchTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan WatchInterval = TimeSpan.FromMilliseconds(100);

    /// <summary>Serves jobs over <paramref name="input"/>/<paramref name="output"/> until told to stop; returns the exit code.</summary>
    public static async Task<int> RunAsync(Stream input, Stream output, TextWriter log, CancellationToken ct)
    {
        var channel = new ControlChannel(input, output);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        // All frames go through a queue fed by one reader, so end of stream is noticed even in the middle of a job.
        var frames = Channel.CreateUnbounded<ControlFrame>();
        var reader = Task.Run(async () =>
        {
            try
            {
                while (await channel.ReadAsync(stop.Token).ConfigureAwait(false) is { } frame)
                    await frames.Writer.WriteAsync(frame, stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or OperationCanceledException or InvalidDataException or ObjectDisposedException)
            {
            }
            frames.Writer.TryComplete();
        });

        RankLaunchSettings settings;
        using (var launchWait = CancellationTokenSource.CreateLinkedTokenSource(stop.Token))
        {
            launchWait.CancelAfter(LaunchTimeout);
            try
            {
                var first = await frames.Reader.ReadAsync(launchWait.Token).ConfigureAwait(false);
                if (first.Kind != ControlKind.Launch) throw new RunaheadException("worker: first control frame is not a launch");
                settings = RankLaunchSettings.Deserialize(first.Payload);
            }
            catch (Exception e) when (e is OperationCanceledException or ChannelClosedException)
            {
                log.WriteLine("runahead worker: no launch settings from a coordinator on stdin");
                return ExitBadLaunch;
            }
            catch (RunaheadException e)
            {
                log.WriteLine("runahead " + e.Message);
                return ExitBadLaunch;
            }
        }

        SharedMemoryCommunicator communicator;
        try
        {
            var segment = SharedMemorySegment.Attach(settings.SegmentPath, settings.Token, settings.WorldSize);
            var shaper = settings.LinkSpec == null ? null : LinkShaper.FromSpec(settings.LinkSpec);
            communicator = new SharedMemoryCommunicator(segment, settings.Rank, shaper, settings.ReceiveTimeout, ownsSegment: true);
            segment.Dispose(); // the communicator holds the mapping from here on
        }
        catch (RunaheadException e)
        {
            await TryReport(channel, 0, settings.Rank, e.Message).ConfigureAwait(false);
            log.WriteLine("runahead " + e.Message);
            return ExitBadLaunch;
        }

        using (communicator)
        {
            // The coordinator's death closes our stdin; a pid watch also covers a coordinator whose pipe someone inherited.
            using var watch = new Timer(_ =>
            {
                if (settings.CoordinatorPid > 0 && !NativeMethods.ProcessAlive(settings.CoordinatorPid)) stop.Cancel();
            }, null, WatchInterval, WatchInterval);
            int currentJob = 0;
            var context = new RankContext(communicator, settings, (m, token) => channel.WriteAsync(ControlKind.Emit, currentJob, m, token));
            IRankProgram program;
            try
            {
                program = RankProgramLoader.Create(settings.ProgramAssemblyPath, settings.ProgramTypeName);
                var sw = Stopwatch.StartNew();
                await program.InitializeAsync(context, stop.Token).ConfigureAwait(false);
                await channel.WriteAsync(ControlKind.Ready, 0, BitConverter.GetBytes(sw.Elapsed.TotalSeconds), stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException || !stop.IsCancellationRequested)
            {
                return await Fail(channel, communicator, 0, e, log).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return ExitCoordinatorGone;
            }

            using (program)
            {
                while (true)
                {
                    ControlFrame frame;
                    try
                    {
                        frame = await NextFrame(frames.Reader, communicator, stop.Token).ConfigureAwait(false);
                    }
                    catch (RankFailedException e)
                    {
                        // Another rank failed while we were idle: report it and leave.
                        await TryReport(channel, 0, e.FailedRank, e.Message).ConfigureAwait(false);
                        return ExitJobFailed;
                    }
                    catch (Exception e) when (e is OperationCanceledException or ChannelClosedException)
                    {
                        return ExitCoordinatorGone;
                    }
                    if (frame.Kind == ControlKind.Shutdown) return ExitOk;
                    if (frame.Kind != ControlKind.Job) continue;
                    currentJob = frame.JobId;
                    try
                    {
                        var reply = await program.RunJobAsync(context, frame.Payload, stop.Token).ConfigureAwait(false);
                        await channel.WriteAsync(ControlKind.Reply, frame.JobId, reply, stop.Token).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException) when (stop.IsCancellationRequested)
                    {
                        return ExitCoordinatorGone;
                    }
                    catch (Exception e)
                    {
                        return await Fail(channel, communicator, frame.JobId, e, log).ConfigureAwait(false);
                    }
                }
            }
        }
    }

    /// <summary>Waits for a frame while watching the abort word, so an idle rank also notices a peer's death.</summary>
    private static async Task<ControlFrame> NextFrame(ChannelReader<ControlFrame> frames, SharedMemoryCommunicator communicator, CancellationToken ct)
    {
        var read = frames.ReadAsync(ct).AsTask();
        while (true)
        {
            var done = await Task.WhenAny(read, Task.Delay(WatchInterval, ct)).ConfigureAwait(false);
            if (done == read) return await read.ConfigureAwait(false);
            ct.ThrowIfCancellationRequested();
            communicator.ThrowIfAborted();
        }
    }

    private static async Task<int> Fail(ControlChannel channel, SharedMemoryCommunicator communicator, int jobId, Exception e, TextWriter log)
    {
        int rank = communicator.Rank;
        int failed;
        string message;
        if (e is RankFailedException rf)
        {
            failed = rf.FailedRank;
            message = rf.Message;
        }
        else
        {
            // This rank is the root cause: tell the peers through the segment before telling the coordinator.
            failed = rank;
            message = $"rank {rank} failed: {e.Message}";
            communicator.Abort(message);
            if (e is not RunaheadException) log.WriteLine(e.ToString());
        }
        log.WriteLine($"runahead worker rank {rank}: {message}");
        await TryReport(channel, jobId, failed, message).ConfigureAwait(false);
        return ExitJobFailed;
    }

    private static async Task TryReport(ControlChannel channel, int jobId, int failedRank, string message)
    {
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            await channel.WriteAsync(ControlKind.Error, jobId, ControlChannel.ErrorPayload(failedRank, message), cts.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException)
        {
            // The coordinator is gone; nobody is left to tell.
        }
    }
}
