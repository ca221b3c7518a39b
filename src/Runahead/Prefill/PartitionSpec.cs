using System.Globalization;

namespace Runahead.Prefill;

public enum PartitionKind
{
    /// <summary>KVR-E: even split.</summary>
    Even,

    /// <summary>An explicit list of chunk sizes.</summary>
    Explicit,

    /// <summary>KVR-S: the split a search found for this very (model, host, ranks, tokens).</summary>
    Searched,

    /// <summary>KVR-P: interpolated from a table of searched splits.</summary>
    Predicted,
}

/// <summary>
/// The value of <c>--partition</c> before the prompt length is known: "even", "searched", "predicted" or a comma list
/// of chunk sizes ("4200,3100,1800"). <see cref="Resolve"/> turns it into a <see cref="Partition"/> for one prompt.
/// </summary>
public sealed record PartitionSpec(PartitionKind Kind, int[]? ExplicitChunks = null)
{
    public static PartitionSpec Even { get; } = new(PartitionKind.Even);

    public static PartitionSpec Parse(string? text)
    {
        var value = (text ?? "even").Trim();
        switch (value.ToLowerInvariant())
        {
            case "" or "even": return Even;
            case "searched": return new PartitionSpec(PartitionKind.Searched);
            case "predicted": return new PartitionSpec(PartitionKind.Predicted);
        }
        var parts = value.Split(',', StringSplitOptions.TrimEntries);
        var chunks = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out chunks[i]))
                throw new RunaheadException(
                    $"--partition: '{value}' is neither even, searched, predicted nor a comma list of token counts ('{parts[i]}' is not a count)");
        }
        return new PartitionSpec(PartitionKind.Explicit, chunks);
    }

    /// <summary>
    /// The split for a prompt of <paramref name="tokens"/> tokens over <paramref name="ranks"/> ranks.
    /// <paramref name="planner"/> answers searched/predicted (the planning layer's partition table for this model and
    /// host); it returns null, or is null, when there is no table.
    /// </summary>
    public Partition Resolve(int tokens, int ranks, Func<PartitionKind, int, int, int[]?>? planner = null)
    {
        switch (Kind)
        {
            case PartitionKind.Even:
                return Partition.Even(tokens, ranks);
            case PartitionKind.Explicit:
                return Partition.FromChunks(ExplicitChunks!, tokens, ranks);
            default:
                if (ranks == 1) return Partition.Even(tokens, 1);
                var word = Kind == PartitionKind.Searched ? "searched" : "predicted";
                var planned = planner?.Invoke(Kind, tokens, ranks)
                    ?? throw new RunaheadException(
                        $"--partition {word}: no partition table for this model/host; run `runahead calibrate --out F` and pass --calibration F (or a table from `runahead simulate --save-table` as --partition-table), or use --partition even or an explicit list");
                return Partition.FromChunks(planned, tokens, ranks, $"--partition {word} (planner)");
        }
    }

    public override string ToString() => Kind switch
    {
        PartitionKind.Explicit => string.Join(',', ExplicitChunks!),
        _ => Kind.ToString().ToLowerInvariant(),
    };
}
