namespace Runahead.Numerics;

/// <summary>
/// A persistent pool of compute threads (no thread start per call). <see cref="For"/> splits [0, count) among the
/// threads and the caller, and returns when all parts are done.
/// NOTE (skeleton): this first version delegates to Parallel.For; the kernels issue replaces it with dedicated
/// threads and a spin/park barrier.
/// </summary>
public sealed class ComputePool : IDisposable
{
    public int Threads { get; }

    public ComputePool(int threads)
    {
        if (threads < 1) throw new ArgumentOutOfRangeException(nameof(threads), "threads must be >= 1");
        Threads = threads;
    }

    public static ComputePool Single { get; } = new(1);

    /// <summary>Runs body(i) for i in [0, count).</summary>
    public void For(int count, Action<int> body)
    {
        if (Threads == 1 || count <= 1)
        {
            for (int i = 0; i < count; i++) body(i);
            return;
        }
        Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = Threads }, body);
    }

    public void Dispose() { }
}
