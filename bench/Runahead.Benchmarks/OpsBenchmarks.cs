using BenchmarkDotNet.Attributes;
using Runahead.Models;
using Runahead.Numerics;

namespace Runahead.Benchmarks;

/// <summary>Row-wise ops on [tokens, 2048] activations (TinyLlama width), fast version and reference.</summary>
[MemoryDiagnoser]
public class OpsBenchmarks
{
    private const int Width = 2048, Heads = 32, HeadDim = 64, Ffn = 5632;
    private float[] _x = [], _w = [], _out = [], _gate = [], _up = [];

    [Params(512)]
    public int Tokens { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _x = BenchData.Floats(Tokens * Width, 1);
        _w = BenchData.Floats(Width, 2);
        _out = new float[_x.Length];
        _gate = BenchData.Floats(Tokens * Ffn, 3);
        _up = BenchData.Floats(Tokens * Ffn, 4);
    }

    [Benchmark] public void RmsNorm() => Ops.RmsNorm(_x, _w, _out, Tokens, Width, 1e-5f);
    [Benchmark] public void RmsNormReference() => OpsReference.RmsNorm(_x, _w, _out, Tokens, Width, 1e-5f);
    [Benchmark] public void LayerNorm() => Ops.LayerNorm(_x, _w, _w, _out, Tokens, Width, 1e-5f);
    [Benchmark] public void RopeInterleaved() => Ops.Rope(_out, Tokens, Heads, HeadDim, 100, 10000f, RopeStyle.Interleaved);
    [Benchmark] public void RopeNeoX() => Ops.Rope(_out, Tokens, Heads, HeadDim, 100, 10000f, RopeStyle.NeoX);
    [Benchmark] public void RopeReference() => OpsReference.Rope(_out, Tokens, Heads, HeadDim, 100, 10000f, RopeStyle.Interleaved);

    // SwiGLU and GELU overwrite their input; the input drifts between invocations but stays finite, which is all
    // a throughput measurement needs.
    [Benchmark] public void SwiGlu() => Ops.SwiGlu(_gate, _up);
    [Benchmark] public void Gelu() => Ops.Gelu(_gate);
    [Benchmark] public void Softmax() => Ops.Softmax(_x.AsSpan(0, Width));
}
