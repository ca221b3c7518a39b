using System.Runtime.CompilerServices;
using Runahead.Models;

namespace Runahead.Numerics;

/// <summary>
/// Splits a row-wise op into contiguous token (or element) ranges on a <see cref="ComputePool"/>. Spans cannot
/// cross to pool threads, so the callers pin them and this carries raw pointers; one instance per calling thread.
/// </summary>
internal sealed unsafe class ParallelOps : IParallelWork
{
    private enum Kind { RmsNorm, LayerNorm, SwiGlu, Gelu, Rope }

    // Below this many elements per call the pool's hand-off costs more than it saves.
    internal const int MinParallelElements = 1 << 15;

    [ThreadStatic] private static ParallelOps? t_instance;

    private Kind _kind;
    private float* _a, _b, _c, _d;
    private int _rows, _width, _rowsPerItem, _heads, _headDim, _startPos;
    private long _length;
    private float _eps, _theta;
    private RopeStyle _style;

    private static ParallelOps Instance => t_instance ??= new ParallelOps();

    public static void RmsNorm(float* x, float* weight, float* output, int tokens, int width, float eps, ComputePool pool)
    {
        var w = Instance;
        w._kind = Kind.RmsNorm; w._a = x; w._b = weight; w._c = output; w._width = width; w._eps = eps;
        w.Run(tokens, pool);
    }

    /// <param name="bias">Null for no bias.</param>
    public static void LayerNorm(float* x, float* weight, float* bias, float* output, int tokens, int width, float eps, ComputePool pool)
    {
        var w = Instance;
        w._kind = Kind.LayerNorm; w._a = x; w._b = weight; w._c = output; w._d = bias; w._width = width; w._eps = eps;
        w.Run(tokens, pool);
    }

    public static void SwiGlu(float* gate, float* up, int length, ComputePool pool) => Elementwise(Kind.SwiGlu, gate, up, length, pool);

    public static void Gelu(float* x, int length, ComputePool pool) => Elementwise(Kind.Gelu, x, null, length, pool);

    private static void Elementwise(Kind kind, float* a, float* b, int length, ComputePool pool)
    {
        // Treated as rows of 4096 elements so items split on vector-friendly boundaries.
        const int chunk = 4096;
        var w = Instance;
        w._kind = kind; w._a = a; w._b = b; w._width = chunk; w._c = null;
        w._length = length;
        w.Run((length + chunk - 1) / chunk, pool);
    }

    public static void Rope(float* x, int tokens, int heads, int headDim, int startPos, float theta, RopeStyle style, ComputePool pool)
    {
        var w = Instance;
        w._kind = Kind.Rope; w._a = x; w._heads = heads; w._headDim = headDim; w._startPos = startPos; w._theta = theta; w._style = style;
        w._width = heads * headDim;
        w.Run(tokens, pool);
    }

    private void Run(int rows, ComputePool pool)
    {
        _rows = rows;
        int items = Math.Min(rows, 4 * pool.Threads);
        _rowsPerItem = (rows + items - 1) / Math.Max(1, items);
        try
        {
            pool.For((rows + _rowsPerItem - 1) / Math.Max(1, _rowsPerItem), this);
        }
        finally
        {
            _a = _b = _c = _d = null;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Run(int item, int worker)
    {
        int r0 = item * _rowsPerItem, n = Math.Min(_rowsPerItem, _rows - r0);
        if (n <= 0) return;
        switch (_kind)
        {
            case Kind.RmsNorm:
                Ops.RmsNorm(new ReadOnlySpan<float>(_a + (long)r0 * _width, n * _width), new ReadOnlySpan<float>(_b, _width),
                    new Span<float>(_c + (long)r0 * _width, n * _width), n, _width, _eps);
                break;
            case Kind.LayerNorm:
                Ops.LayerNorm(new ReadOnlySpan<float>(_a + (long)r0 * _width, n * _width), new ReadOnlySpan<float>(_b, _width),
                    _d == null ? ReadOnlySpan<float>.Empty : new ReadOnlySpan<float>(_d, _width),
                    new Span<float>(_c + (long)r0 * _width, n * _width), n, _width, _eps);
                break;
            case Kind.SwiGlu:
            case Kind.Gelu:
            {
                long start = (long)r0 * _width;
                int length = (int)Math.Min((long)n * _width, _length - start);
                var a = new Span<float>(_a + start, length);
                if (_kind == Kind.SwiGlu) Ops.SwiGlu(a, new ReadOnlySpan<float>(_b + start, length));
                else Ops.Gelu(a);
                break;
            }
            case Kind.Rope:
                Ops.Rope(new Span<float>(_a + (long)r0 * _width, n * _width), n, _heads, _headDim, _startPos + r0, _theta, _style);
                break;
        }
    }
}
