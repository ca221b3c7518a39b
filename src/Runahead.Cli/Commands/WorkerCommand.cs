using System.CommandLine;
using System.Globalization;
using System.Text;
using Runahead.Distributed;

namespace Runahead.Cli.Commands;

/// <summary>
/// `runahead worker`: one rank. Started by a coordinator's rank pool it takes its settings and jobs from stdin and
/// answers on stdout (its own console output goes to stderr); see Distributed/WorkerHost. Under mpiexec
/// (`--transport mpi`) every process runs one job of a named rank program and rank 0 prints the replies.
/// `runahead worker ping` checks a transport end to end and measures the hand-off between ranks.
/// </summary>
public static class WorkerCommand
{
    public static Command Build()
    {
        var cmd = new Command("worker", "Internal: a rank process started by the coordinator (or by mpiexec with --transport mpi)");
        var rank = new Option<int>("--rank") { Description = "Rank number (informative, shown by ps; the coordinator sends the real one)" };
        var transport = new Option<string>("--transport") { Description = "stdio (started by a coordinator) or mpi (started by mpiexec)", DefaultValueFactory = _ => "stdio" };
        var program = new Option<string?>("--program") { Description = "mpi: full name of the IRankProgram type to run" };
        var programAssembly = new Option<string?>("--program-assembly") { Description = "mpi: assembly file holding --program (default: Runahead.Core)" };
        var programArgs = new Option<string>("--program-args") { Description = "mpi: text handed to the program", DefaultValueFactory = _ => "" };
        var request = new Option<string>("--request") { Description = "mpi: the job's request text", DefaultValueFactory = _ => "" };
        var model = new Option<string?>("--model") { Description = "mpi: model file every rank loads" };
        var threads = new Option<int>("--threads-per-rank") { Description = "Compute threads per rank", DefaultValueFactory = _ => 1 };
        var ranks = new Option<int>("--ranks") { Description = "mpi: expected number of ranks (default: what mpiexec started)" };
        var links = LinkOptions.Create();
        foreach (var o in new Option[] { rank, transport, program, programAssembly, programArgs, request, model, threads, ranks }) cmd.Options.Add(o);
        links.AddTo(cmd);
        cmd.Subcommands.Add(BuildPing());
        cmd.SetAction(async (parse, ct) =>
        {
            var mode = parse.GetValue(transport);
            if (mode == "mpi")
            {
                var typeName = parse.GetValue(program) ?? throw new RunaheadException("--program: required with --transport mpi");
                int worldSize = parse.GetValue(ranks) > 0 ? parse.GetValue(ranks) : MpiLibrary.LauncherSize;
                if (worldSize < 1) throw new RunaheadException("--transport mpi: not started by mpiexec (no PMI_SIZE / OMPI_COMM_WORLD_SIZE); run it as `mpiexec -n P runahead worker --transport mpi ...`");
                var options = new RankPoolOptions
                {
                    WorldSize = worldSize,
                    ProgramType = RankProgramLoader.ResolveType(parse.GetValue(programAssembly) ?? "", typeName),
                    Transport = RankTransport.Mpi,
                    ModelPath = parse.GetValue(model),
                    ThreadsPerRank = parse.GetValue(threads),
                    ProgramArguments = parse.GetValue(programArgs) ?? "",
                    Links = links.Build(parse, worldSize),
                };
                return await RunOneJob(options, Encoding.UTF8.GetBytes(parse.GetValue(request) ?? ""), parse.InvocationConfiguration.Output, ct);
            }
            if (mode != "stdio") throw new RunaheadException($"--transport: '{mode}' is not stdio or mpi");
            var protocolOut = Console.OpenStandardOutput();
            var protocolIn = Console.OpenStandardInput();
            // Anything a rank program prints must not corrupt the control frames.
            Console.SetOut(Console.Error);
            return await WorkerHost.RunAsync(protocolIn, protocolOut, Console.Error, ct);
        });
        return cmd;
    }

    private static Command BuildPing()
    {
        var cmd = new Command("ping", "Pass a message through every rank (0 -> 1 -> ... -> P-1): checks a transport and measures the hand-off");
        var ranks = new Option<int>("--ranks") { Description = "Number of ranks (mpi: default what mpiexec started)", DefaultValueFactory = _ => 2 };
        var transport = new Option<string>("--transport") { Description = "shm (worker processes), inproc (threads) or mpi (under mpiexec)", DefaultValueFactory = _ => "shm" };
        var size = new Option<string>("--bytes") { Description = "Message size, e.g. 64KiB, 16MiB, 1GB", DefaultValueFactory = _ => "16MiB" };
        var repeats = new Option<int>("--repeats") { Description = "Messages per rank", DefaultValueFactory = _ => 10 };
        var links = LinkOptions.Create();
        foreach (var o in new Option[] { ranks, transport, size, repeats }) cmd.Options.Add(o);
        links.AddTo(cmd);
        cmd.SetAction(async (parse, ct) =>
        {
            var kind = parse.GetValue(transport) switch
            {
                "shm" => RankTransport.SharedMemory,
                "inproc" => RankTransport.InProcess,
                "mpi" => RankTransport.Mpi,
                var other => throw new RunaheadException($"--transport: '{other}' is not shm, inproc or mpi"),
            };
            int worldSize = parse.GetValue(ranks);
            if (kind == RankTransport.Mpi && parse.GetResult(ranks) is null or { Implicit: true } && MpiLibrary.LauncherSize > 0) worldSize = MpiLibrary.LauncherSize;
            long bytes = ParseBytes(parse.GetValue(size) ?? "", "--bytes");
            if (bytes < 4 || bytes > int.MaxValue) throw new RunaheadException($"--bytes: {bytes} outside 4 B .. 2 GiB");
            int n = parse.GetValue(repeats);
            if (n < 1) throw new RunaheadException("--repeats: must be at least 1");
            var options = new RankPoolOptions
            {
                WorldSize = worldSize,
                ProgramType = typeof(PingProgram),
                Transport = kind,
                Links = links.Build(parse, worldSize),
                RingBytes = Math.Max(1L << 20, Math.Min(bytes * 2 + (1 << 16), 256L << 20)),
            };
            return await RunOneJob(options, Encoding.UTF8.GetBytes($"{bytes} {n}"), parse.InvocationConfiguration.Output, ct);
        });
        return cmd;
    }

    /// <summary>User errors (bad options, a failed rank) become one line on stderr and exit code 1, never a stack trace.</summary>
    private static async Task<int> RunOneJob(RankPoolOptions options, byte[] request, TextWriter output, CancellationToken ct)
    {
        await using var pool = await RankPool.StartAsync(options, ct);
        var result = await pool.RunJobAsync(request, (r, m) =>
        {
            lock (output) output.WriteLine($"[rank {r}] {Encoding.UTF8.GetString(m.Span)}");
        }, ct);
        if (!pool.IsClient) return 0;
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"startup {pool.StartupTime.TotalMilliseconds:0} ms, job {result.Elapsed.TotalMilliseconds:0.0} ms"));
        for (int r = 0; r < result.Replies.Count; r++)
            output.WriteLine($"rank {r}: {Encoding.UTF8.GetString(result.Replies[r] ?? [])}");
        return 0;
    }

    /// <summary>"16MiB", "1.5GB", "4096" -> bytes.</summary>
    internal static long ParseBytes(string text, string option)
    {
        var t = text.Trim();
        int i = 0;
        while (i < t.Length && (char.IsDigit(t[i]) || t[i] == '.')) i++;
        if (!double.TryParse(t[..i], NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || value < 0)
            throw new RunaheadException($"{option}: '{text}' is not a size (examples: 4096, 64KiB, 16MiB, 1GB)");
        double scale = t[i..].Trim() switch
        {
            "" or "B" => 1,
            "KB" or "kB" => 1e3,
            "MB" => 1e6,
            "GB" => 1e9,
            "KiB" => 1024,
            "MiB" => 1024.0 * 1024,
            "GiB" => 1024.0 * 1024 * 1024,
            _ => throw new RunaheadException($"{option}: '{text}' has no known unit (B, KB, MB, GB, KiB, MiB, GiB)"),
        };
        return (long)(value * scale);
    }

    /// <summary>The link-emulation options shared by the worker commands.</summary>
    private sealed class LinkOptions
    {
        private readonly Option<string?> _bandwidth = new("--link-bandwidth") { Description = "Bandwidth of every link, e.g. 10GB/s, 500MB/s, inf" };
        private readonly Option<string?> _latency = new("--link-latency") { Description = "Latency of every link, e.g. 5us, 1ms" };
        private readonly Option<string?> _matrix = new("--links") { Description = "File with a P x P bandwidth matrix (row = sender)" };
        private readonly Option<string[]> _sidecar = new("--sidecar") { Description = "Background bursts SRC->DST:SHARE%:BURST/PERIOD, e.g. 1->2:50%:2ms/10ms (repeatable)" };
        private readonly Option<int> _seed = new("--sidecar-seed") { Description = "Seed placing the sidecar bursts", DefaultValueFactory = _ => 1 };

        public static LinkOptions Create() => new();

        public void AddTo(Command cmd)
        {
            foreach (var o in new Option[] { _bandwidth, _latency, _matrix, _sidecar, _seed }) cmd.Options.Add(o);
        }

        public LinkShaper? Build(ParseResult parse, int worldSize) => LinkShaper.FromOptions(worldSize,
            parse.GetValue(_bandwidth), parse.GetValue(_latency), parse.GetValue(_matrix), parse.GetValue(_sidecar), parse.GetValue(_seed));
    }
}
