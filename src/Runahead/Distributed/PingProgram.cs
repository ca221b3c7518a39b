using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Runahead.Distributed;

/// <summary>
/// A built-in rank program that checks a transport end to end and measures the KV-Runahead hand-off: a message of the
/// requested size travels rank 0 -> 1 -> ... -> P-1, each rank forwarding what it received (contents verified). The
/// request is "BYTES REPEATS"; the last rank's reply reports the median time per hop. `runahead worker ping` runs it.
/// </summary>
public sealed class PingProgram : IRankProgram
{
    public Task InitializeAsync(RankContext context, CancellationToken ct) => Task.CompletedTask;

    public async Task<byte[]> RunJobAsync(RankContext context, ReadOnlyMemory<byte> request, CancellationToken ct)
    {
        var words = Encoding.UTF8.GetString(request.Span).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (words.Length != 2 || !long.TryParse(words[0], out long bytes) || !int.TryParse(words[1], out int repeats)
            || bytes < 4 || bytes > int.MaxValue || repeats < 1)
            throw new RunaheadException($"ping: bad request '{Encoding.UTF8.GetString(request.Span)}' (expected BYTES REPEATS)");
        var comm = context.Communicator;
        var data = new float[bytes / 4];
        var perHop = new List<double>();
        for (int repeat = 0; repeat < repeats; repeat++)
        {
            await comm.BarrierAsync(ct).ConfigureAwait(false);
            var sw = Stopwatch.StartNew();
            if (comm.PrevRank < 0)
            {
                data[0] = repeat;
                data[^1] = -repeat;
            }
            else
            {
                using var m = await comm.ReceiveAsync(comm.PrevRank, 0, ct).ConfigureAwait(false);
                if (m.Data.Length != data.Length || m.Data[0] != repeat || m.Data[^1] != -repeat)
                    throw new RankFailedException(comm.PrevRank, $"ping: rank {comm.Rank} received a corrupted message from rank {comm.PrevRank}");
                m.Data.CopyTo(data);
            }
            if (comm.NextRank >= 0) await comm.SendAsync(comm.NextRank, 0, data, ct).ConfigureAwait(false);
            else if (comm.WorldSize > 1) perHop.Add(sw.Elapsed.TotalSeconds / (comm.WorldSize - 1));
        }
        if (comm.NextRank >= 0 || perHop.Count == 0) return Encoding.UTF8.GetBytes($"rank {comm.Rank}: ok");
        perHop.Sort();
        double median = perHop[perHop.Count / 2];
        return Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture,
            $"{comm.WorldSize} ranks, {bytes} bytes, {repeats} repeats: median {median * 1e3:0.000} ms per hop ({bytes / median / 1e9:0.00} GB/s), best {perHop[0] * 1e3:0.000} ms"));
    }

    public void Dispose() { }
}
