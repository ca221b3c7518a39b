using System.Runtime.InteropServices;

namespace Runahead.Numerics;

/// <summary>
/// Optional OpenBLAS, loaded at run time only to compare against (`runahead bench gemm --compare openblas`);
/// nothing in the engine depends on it.
/// </summary>
public sealed unsafe class OpenBlas
{
    private const int RowMajor = 101, NoTrans = 111, Trans = 112;
    private static readonly string[] Candidates = ["libopenblas.so.0", "libopenblas.so", "libopenblas.dylib", "libopenblas.dll", "openblas"];

    private readonly delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void> _sgemm;
    private readonly delegate* unmanaged<int, void> _setThreads;

    public string LibraryName { get; }

    private OpenBlas(nint handle, string name)
    {
        LibraryName = name;
        _sgemm = (delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void>)
            NativeLibrary.GetExport(handle, "cblas_sgemm");
        _setThreads = NativeLibrary.TryGetExport(handle, "openblas_set_num_threads", out var st)
            ? (delegate* unmanaged<int, void>)st : null;
    }

    /// <summary>Loads OpenBLAS, or throws a <see cref="RunaheadException"/> that says how to install it.</summary>
    public static OpenBlas Load()
    {
        foreach (var name in Candidates)
        {
            if (NativeLibrary.TryLoad(name, out var handle))
            {
                if (!NativeLibrary.TryGetExport(handle, "cblas_sgemm", out _))
                    throw new RunaheadException($"--compare openblas: {name} has no cblas_sgemm export");
                return new OpenBlas(handle, name);
            }
        }
        throw new RunaheadException("--compare openblas: OpenBLAS not found (looked for libopenblas.so.0 / libopenblas.so); " +
            "install it, e.g. `apt-get install libopenblas0-pthread`");
    }

    public void SetThreads(int threads)
    {
        if (_setThreads != null) _setThreads(threads);
    }

    /// <summary>y[M, N] = x[M, K] w[N, K]^T, the same contract as <see cref="LinearWeight.Forward"/>.</summary>
    public void Sgemm(ReadOnlySpan<float> x, ReadOnlySpan<float> w, Span<float> y, int m, int n, int k)
    {
        if (x.Length < (long)m * k || w.Length < (long)n * k || y.Length < (long)m * n) throw new ArgumentException("sgemm buffers too short");
        fixed (float* xp = x)
        fixed (float* wp = w)
        fixed (float* yp = y)
        {
            _sgemm(RowMajor, NoTrans, Trans, m, n, k, 1f, xp, k, wp, k, 0f, yp, n);
        }
    }
}
