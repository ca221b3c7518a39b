using System.Diagnostics;
using Runahead.Distributed;

namespace Runahead.Tests.Distributed;

/// <summary>
/// The `runahead` binary as a process: MPI jobs under mpiexec, workers refusing foreign coordinators, workers leaving
/// when their coordinator dies, Ctrl-C on a client.
/// </summary>
public class WorkerProcessTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    private static string Runahead()
    {
        var path = Path.Combine(AppContext.BaseDirectory, "runahead");
        Assert.True(File.Exists(path), $"runahead apphost missing beside the tests ({path})");
        return path;
    }

    private static string? FindOnPath(string name)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, name);
            if (File.Exists(candidate)) return candidate;
        }
        return null;
    }

    private static string Mpiexec()
    {
        var mpiexec = FindOnPath("mpiexec");
        if (mpiexec == null || !MpiLibrary.IsAvailable)
        {
            const string reason = "mpiexec or the MPI library is not installed (apt-get install mpich)";
            if (Fixtures.InCi) throw new InvalidOperationException("CI=true and " + reason);
            throw new SkipException(reason);
        }
        return mpiexec;
    }

    private static async Task<(int ExitCode, string Output)> Run(string file, IEnumerable<string> args, TimeSpan timeout, (string, string)? env = null)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (env is var (name, value)) psi.Environment[name] = value;
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"{Path.GetFileName(file)} {string.Join(' ', args)} still running after {timeout.TotalSeconds} s");
        }
        return (p.ExitCode, await stdout + await stderr);
    }

    [SkippableFact]
    public async Task MpiexecRunsThePingThroughThreeRanks()
    {
        var (code, output) = await Run(Mpiexec(), ["-n", "3", Runahead(), "worker", "ping", "--transport", "mpi", "--bytes", "1MiB", "--repeats", "3"], TimeSpan.FromSeconds(60));
        Assert.True(code == 0, output);
        Assert.Contains("3 ranks, 1048576 bytes", output);
    }

    [SkippableFact]
    public async Task MpiTransportPassesTheCommunicatorChecks()
    {
        var (code, output) = await Run(Mpiexec(), ["-n", "3", Runahead(), "worker", "--transport", "mpi",
            "--program", typeof(MpiSemanticsProgram).FullName!, "--program-assembly", typeof(MpiSemanticsProgram).Assembly.Location, "--request", "all"],
            TimeSpan.FromSeconds(60));
        Assert.True(code == 0, output);
        for (int r = 0; r < 3; r++) Assert.Contains($"rank {r}: ok", output);
    }

    [SkippableFact]
    public async Task AFailingMpiRankIsNamedAndTheJobEnds()
    {
        var sw = Stopwatch.StartNew();
        var (code, output) = await Run(Mpiexec(), ["-n", "3", Runahead(), "worker", "--transport", "mpi",
            "--program", typeof(ChainProgram).FullName!, "--program-assembly", typeof(ChainProgram).Assembly.Location, "--request", "throw 1"],
            TimeSpan.FromSeconds(30));
        Assert.True(sw.Elapsed < Bound + TimeSpan.FromSeconds(5), $"took {sw.Elapsed}");
        Assert.NotEqual(0, code);
        Assert.Contains("rank 1 failed: deliberate failure", output);
    }

    [SkippableFact]
    public async Task KillingAnMpiRankEndsTheJob()
    {
        // With MPI the launcher supervises the ranks: a killed rank must end the whole job quickly, never hang it.
        var psi = new ProcessStartInfo(Mpiexec()) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "-n", "3", Runahead(), "worker", "--transport", "mpi", "--program", typeof(ChainProgram).FullName!,
                     "--program-assembly", typeof(ChainProgram).Assembly.Location, "--request", "stall 1" })
            psi.ArgumentList.Add(a);
        using var mpiexec = Process.Start(psi)!;
        var stalling = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        mpiexec.OutputDataReceived += (_, e) => { if (e.Data?.Contains("[rank 1] stalling") == true) stalling.TrySetResult(); };
        mpiexec.BeginOutputReadLine();
        _ = mpiexec.StandardError.ReadToEndAsync();
        try
        {
            await stalling.Task.WaitAsync(TimeSpan.FromSeconds(30));
            int rank1 = FindMpiRank(mpiexec.Id, 1);
            Assert.Equal(0, NativeMethods.SendSignal(rank1, 9));
            var sw = Stopwatch.StartNew();
            using var cts = new CancellationTokenSource(Bound);
            await mpiexec.WaitForExitAsync(cts.Token);
            Assert.NotEqual(0, mpiexec.ExitCode);
        }
        finally
        {
            if (!mpiexec.HasExited) mpiexec.Kill(entireProcessTree: true);
        }
    }

    /// <summary>The pid of the `runahead` process that is MPI rank <paramref name="rank"/> below <paramref name="launcher"/>.</summary>
    private static int FindMpiRank(int launcher, int rank)
    {
        foreach (var dir in Directory.GetDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out int pid)) continue;
            try
            {
                if (!File.ReadAllText(Path.Combine(dir, "cmdline")).Contains("worker")) continue;
                if (!File.ReadAllText(Path.Combine(dir, "environ")).Split('\0').Contains($"PMI_RANK={rank}")) continue;
                for (int p = pid, hops = 0; p > 1 && hops < 10; hops++)
                {
                    var stat = File.ReadAllText($"/proc/{p}/stat");
                    p = int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1]);
                    if (p == launcher) return pid;
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
            {
            }
        }
        Assert.Fail($"no MPI rank {rank} below pid {launcher}");
        return -1;
    }

    [SkippableFact]
    public async Task OpenMpiPassesTheCommunicatorChecksToo()
    {
        // Optional: Open MPI beside MPICH (Debian: openmpi-bin); its handles are exported globals, not integers.
        var mpirun = FindOnPath("mpirun.openmpi");
        bool library = System.Runtime.InteropServices.NativeLibrary.TryLoad("libmpi.so.40", out _);
        Skip.If(mpirun == null || !library, "Open MPI (mpirun.openmpi, libmpi.so.40) is not installed");
        var (code, output) = await Run(mpirun!, ["--allow-run-as-root", "--oversubscribe", "-x", "RUNAHEAD_MPI_LIBRARY", "-np", "3", Runahead(), "worker", "--transport", "mpi",
            "--program", typeof(MpiSemanticsProgram).FullName!, "--program-assembly", typeof(MpiSemanticsProgram).Assembly.Location, "--request", "all"],
            TimeSpan.FromSeconds(60), ("RUNAHEAD_MPI_LIBRARY", "libmpi.so.40"));
        Assert.True(code == 0, output);
        for (int r = 0; r < 3; r++) Assert.Contains($"rank {r}: ok", output);
    }

    [Fact]
    public async Task AWorkerWithoutTheTokenCannotAttach()
    {
        using var segment = SharedMemorySegment.Create(2, 1 << 16);
        var settings = SecondRankOf(segment, token: new byte[SharedMemorySegment.TokenBytes]); // not the segment's token
        var (code, output) = await RunWorker(settings);
        Assert.Equal(WorkerHost.ExitBadLaunch, code);
        Assert.Contains("wrong token", output);
    }

    [Fact]
    public async Task AWorkerLeavesWhenItsCoordinatorGoes()
    {
        using var segment = SharedMemorySegment.Create(2, 1 << 16);
        var settings = SecondRankOf(segment);
        // Closing stdin is what the coordinator's death looks like to the worker.
        var (code, _) = await RunWorker(settings, closeAfterReady: true);
        Assert.Equal(WorkerHost.ExitCoordinatorGone, code);
    }

    /// <summary>Launch settings of rank 1 of 2 running the chain program on <paramref name="segment"/>.</summary>
    private static RankLaunchSettings SecondRankOf(SharedMemorySegment segment, byte[]? token = null) => new()
    {
        Rank = 1,
        WorldSize = 2,
        ProgramAssemblyPath = typeof(ChainProgram).Assembly.Location,
        ProgramTypeName = typeof(ChainProgram).FullName!,
        SegmentPath = segment.FilePath,
        Token = token ?? segment.Token,
        CoordinatorPid = Environment.ProcessId,
    };

    private static async Task<(int, string)> RunWorker(RankLaunchSettings settings, bool closeAfterReady = false)
    {
        var psi = new ProcessStartInfo(Runahead()) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("worker");
        using var p = Process.Start(psi)!;
        var channel = new ControlChannel(p.StandardOutput.BaseStream, p.StandardInput.BaseStream);
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await channel.WriteAsync(ControlKind.Launch, 0, settings.Serialize(), cts.Token);
        if (closeAfterReady)
        {
            var frame = await channel.ReadAsync(cts.Token);
            Assert.Equal(ControlKind.Ready, frame?.Kind);
            p.StandardInput.Close();
        }
        var sw = Stopwatch.StartNew();
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill();
            Assert.Fail("worker did not exit");
        }
        Assert.True(sw.Elapsed < Bound, $"worker took {sw.Elapsed} to exit");
        return (p.ExitCode, await stderr);
    }

    [Fact]
    public async Task CtrlCOnTheClientStopsItsWorkersAndLeavesNoSegment()
    {
        var (client, workers) = await StartEndlessPingAsync();
        using var _ = client;
        Assert.Equal(0, NativeMethods.SendSignal(client.Id, NativeMethods.SigInt));
        var sw = Stopwatch.StartNew();
        using (var cts = new CancellationTokenSource(Bound))
            await client.WaitForExitAsync(cts.Token);
        foreach (var pid in workers)
            while (NativeMethods.ProcessAlive(pid))
            {
                Assert.True(sw.Elapsed < Bound, $"worker {pid} still running after Ctrl-C");
                await Task.Delay(50);
            }
        Assert.Empty(Directory.GetFiles("/dev/shm", $"{SharedMemorySegment.NamePrefix}{client.Id}-*"));
    }

    [Fact]
    public async Task KillingTheClientStopsItsWorkers()
    {
        var (client, workers) = await StartEndlessPingAsync();
        using var _ = client;
        client.Kill();
        var sw = Stopwatch.StartNew();
        foreach (var pid in workers)
            while (NativeMethods.ProcessAlive(pid))
            {
                Assert.True(sw.Elapsed < Bound, $"worker {pid} still running after its client was killed");
                await Task.Delay(50);
            }
        // Unlinked as soon as the workers attached, so even SIGKILL leaves nothing behind.
        Assert.Empty(Directory.GetFiles("/dev/shm", $"{SharedMemorySegment.NamePrefix}{client.Id}-*"));
    }

    /// <summary>
    /// A `worker ping` client with 2 workers on a job that never ends, returned once the workers are attached and the
    /// job is starting (the client has deleted its segment).
    /// </summary>
    private static async Task<(Process Client, int[] Workers)> StartEndlessPingAsync()
    {
        var psi = new ProcessStartInfo(Runahead()) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "worker", "ping", "--ranks", "2", "--bytes", "64KiB", "--repeats", "100000000" }) psi.ArgumentList.Add(a);
        var client = Process.Start(psi)!;
        _ = client.StandardOutput.ReadToEndAsync();
        _ = client.StandardError.ReadToEndAsync();
        var workers = await WaitForChildren(client.Id, 2, TimeSpan.FromSeconds(30));
        await WaitUntilSegmentGone(client.Id);
        return (client, workers);
    }

    /// <summary>The client deletes its segment once every worker has mapped it.</summary>
    private static async Task WaitUntilSegmentGone(int client)
    {
        var sw = Stopwatch.StartNew();
        while (Directory.GetFiles("/dev/shm", $"{SharedMemorySegment.NamePrefix}{client}-*").Length > 0)
        {
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(30), "the client's segment was never deleted");
            await Task.Delay(20);
        }
        await Task.Delay(100);
    }

    [Fact]
    public async Task SegmentsOfDeadCoordinatorsAreSweptByTheNextRun()
    {
        // A coordinator killed before its workers attached leaves its file; the next run removes it.
        using var gone = Process.Start(new ProcessStartInfo("true") { UseShellExecute = false })!;
        await gone.WaitForExitAsync();
        var stale = Path.Combine("/dev/shm", $"{SharedMemorySegment.NamePrefix}{gone.Id}-0123456789abcdef");
        File.WriteAllBytes(stale, new byte[16]);
        using var segment = SharedMemorySegment.Create(2, 1 << 16);
        Assert.False(File.Exists(stale));
    }

    /// <summary>Pids of the `runahead worker` children of <paramref name="parent"/> once there are <paramref name="count"/>.</summary>
    private static async Task<int[]> WaitForChildren(int parent, int count, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < timeout)
        {
            var children = new List<int>();
            foreach (var dir in Directory.GetDirectories("/proc"))
            {
                if (!int.TryParse(Path.GetFileName(dir), out int pid)) continue;
                try
                {
                    var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                    var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                    if (int.Parse(fields[1]) == parent && File.ReadAllText(Path.Combine(dir, "cmdline")).Contains("worker")) children.Add(pid);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
                {
                }
            }
            if (children.Count >= count) return children.ToArray();
            await Task.Delay(50);
        }
        Assert.Fail($"no {count} workers under pid {parent} within {timeout.TotalSeconds} s");
        return [];
    }
}
