using System.Text;
using Runahead.Distributed;

namespace Runahead.Tests.Distributed;

/// <summary>
/// Rank programs for the pool tests (worker processes load them from this test assembly). Requests are UTF-8 words:
/// "chain N" passes N along the ranks, each adding its rank; "stall R" makes rank R emit "stalling" and wait for ever
/// while the others wait on it; "throw R" makes rank R throw.
/// </summary>
public sealed class ChainProgram : IRankProgram
{
    public Task InitializeAsync(RankContext context, CancellationToken ct) => Task.CompletedTask;

    public async Task<byte[]> RunJobAsync(RankContext context, ReadOnlyMemory<byte> request, CancellationToken ct)
    {
        var words = Encoding.UTF8.GetString(request.Span).Split(' ');
        var comm = context.Communicator;
        int arg = int.Parse(words[1]);
        switch (words[0])
        {
            case "stall" when comm.Rank == arg:
                await context.EmitAsync(Encoding.UTF8.GetBytes("stalling"), ct);
                await Task.Delay(Timeout.Infinite, ct);
                break;
            case "stall":
                await comm.BarrierAsync(ct);
                break;
            case "throw" when comm.Rank == arg:
                throw new InvalidOperationException("deliberate failure");
            case "throw":
                await comm.BarrierAsync(ct);
                break;
        }
        float value = words[0] == "chain" ? arg : 0;
        if (comm.PrevRank >= 0)
        {
            using var m = await comm.ReceiveAsync(comm.PrevRank, 0, ct);
            value = m.Data[0];
        }
        value += comm.Rank;
        if (comm.NextRank >= 0) await comm.SendAsync(comm.NextRank, 0, new[] { value }, ct);
        else await context.EmitAsync(Encoding.UTF8.GetBytes($"last {value}"), ct);
        return Encoding.UTF8.GetBytes($"{comm.Rank}:{value}:{context.ProgramArguments}");
    }

    public void Dispose() { }
}

/// <summary>
/// Measures paced delivery across processes: rank 0 stamps each message with its send time (Stopwatch timestamps are
/// CLOCK_MONOTONIC, comparable between processes of one host), rank 1 replies with the best send-to-visible time.
/// Request: "BYTES COUNT".
/// </summary>
public sealed class PacedDeliveryProgram : IRankProgram
{
    public Task InitializeAsync(RankContext context, CancellationToken ct) => Task.CompletedTask;

    public async Task<byte[]> RunJobAsync(RankContext context, ReadOnlyMemory<byte> request, CancellationToken ct)
    {
        var words = Encoding.UTF8.GetString(request.Span).Split(' ');
        int bytes = int.Parse(words[0]), count = int.Parse(words[1]);
        var comm = context.Communicator;
        var data = new byte[bytes];
        double best = double.MaxValue;
        for (int i = 0; i < count; i++)
        {
            await comm.BarrierAsync(ct);
            if (comm.Rank == 0)
            {
                BitConverter.TryWriteBytes(data, System.Diagnostics.Stopwatch.GetTimestamp());
                await comm.SendBytesAsync(1, 0, data, ct);
            }
            else if (comm.Rank == 1)
            {
                using var m = await comm.ReceiveAsync(0, 0, ct);
                long sent = BitConverter.ToInt64(m.Bytes);
                double took = (double)(System.Diagnostics.Stopwatch.GetTimestamp() - sent) / System.Diagnostics.Stopwatch.Frequency;
                if (i > 0) best = Math.Min(best, took); // the first message also faults in the ring's pages
            }
        }
        return Encoding.UTF8.GetBytes(best.ToString("R", System.Globalization.CultureInfo.InvariantCulture));
    }

    public void Dispose() { }
}

/// <summary>Fails to initialise on rank 1 (as when a rank cannot load the model).</summary>
public sealed class FailingInitProgram : IRankProgram
{
    public Task InitializeAsync(RankContext context, CancellationToken ct) =>
        context.Rank == 1 ? throw new RunaheadException("model.gguf: cannot load on this rank") : Task.CompletedTask;

    public Task<byte[]> RunJobAsync(RankContext context, ReadOnlyMemory<byte> request, CancellationToken ct) => Task.FromResult(Array.Empty<byte>());

    public void Dispose() { }
}
