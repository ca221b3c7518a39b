namespace Runahead.Prefill;

/// <summary>
/// How a prompt of <see cref="Tokens"/> tokens is split into contiguous chunks, one per rank: rank i owns global
/// positions [<see cref="Start"/>(i), <see cref="End"/>(i)), i.e. [S_{i-1}, S_i) in the paper's notation.
/// Every chunk holds at least one token.
/// </summary>
public sealed class Partition
{
    private readonly int[] _chunks;
    private readonly int[] _ends;

    private Partition(int[] chunks)
    {
        _chunks = chunks;
        _ends = new int[chunks.Length];
        int sum = 0;
        for (int i = 0; i < chunks.Length; i++)
        {
            sum += chunks[i];
            _ends[i] = sum;
        }
    }

    public int Ranks => _chunks.Length;
    public int Tokens => _ends[^1];
    public IReadOnlyList<int> Chunks => _chunks;

    public int Chunk(int rank) => _chunks[rank];
    public int Start(int rank) => rank == 0 ? 0 : _ends[rank - 1];
    public int End(int rank) => _ends[rank];

    /// <summary>
    /// KVR-E / TSP: chunks differ by at most one token. The remainder goes to the earliest ranks because later ranks
    /// attend to longer prefixes and are already the slowest.
    /// </summary>
    public static Partition Even(int tokens, int ranks)
    {
        CheckShape(tokens, ranks);
        var chunks = new int[ranks];
        int baseSize = tokens / ranks, extra = tokens % ranks;
        for (int i = 0; i < ranks; i++) chunks[i] = baseSize + (i < extra ? 1 : 0);
        return new Partition(chunks);
    }

    /// <summary>An explicit split; <paramref name="source"/> names the option or planner the numbers came from.</summary>
    public static Partition FromChunks(ReadOnlySpan<int> chunks, int tokens, int ranks, string source = "--partition")
    {
        CheckShape(tokens, ranks);
        if (chunks.Length != ranks)
            throw new RunaheadException($"{source}: {chunks.Length} chunk sizes given for {ranks} ranks; give exactly one per rank");
        long sum = 0;
        for (int i = 0; i < chunks.Length; i++)
        {
            if (chunks[i] < 1)
                throw new RunaheadException($"{source}: chunk {i} has {chunks[i]} tokens; every rank needs at least 1");
            sum += chunks[i];
        }
        if (sum != tokens)
            throw new RunaheadException($"{source}: chunk sizes sum to {sum} but the prompt has {tokens} tokens");
        return new Partition(chunks.ToArray());
    }

    private static void CheckShape(int tokens, int ranks)
    {
        if (ranks < 1) throw new RunaheadException($"--ranks: {ranks} ranks; need at least 1");
        if (tokens < ranks)
            throw new RunaheadException($"the prompt has {tokens} tokens, fewer than the {ranks} ranks; every rank needs at least one token");
    }

    public override string ToString() => string.Join(',', _chunks);
}
