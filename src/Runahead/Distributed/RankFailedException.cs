namespace Runahead.Distributed;

/// <summary>
/// A peer rank died, was aborted, or stayed silent past the deadline. <see cref="FailedRank"/> names it (-1 when the
/// failing party is the coordinator) so every surviving rank and the client can report which one failed.
/// </summary>
public class RankFailedException : RunaheadException
{
    public int FailedRank { get; }

    public RankFailedException(int failedRank, string message) : base(message) => FailedRank = failedRank;

    public RankFailedException(int failedRank, string message, Exception inner) : base(message, inner) => FailedRank = failedRank;
}

/// <summary>A receive or collective passed <see cref="ICommunicator.ReceiveTimeout"/> waiting on <see cref="RankFailedException.FailedRank"/>.</summary>
public sealed class RankTimeoutException : RankFailedException
{
    public RankTimeoutException(int peer, string message) : base(peer, message) { }
}
