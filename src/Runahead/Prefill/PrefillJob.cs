using System.Buffers.Binary;
using Runahead.Generation;

namespace Runahead.Prefill;

/// <summary>
/// One prompt as the coordinator hands it to every rank: the strategy, the split, the prompt ids and what the last
/// rank does after the prefill (decode up to <see cref="MaxNewTokens"/> tokens, streaming each to the client).
/// Encoded as little-endian binary; <see cref="Decode"/> checks every count against the bytes present.
/// </summary>
public sealed record PrefillJob
{
    private const int Magic = 0x4A52_4B50;   // "PKRJ"
    private const int MaxTokens = 1 << 24;

    public required PrefillStrategyKind Strategy { get; init; }
    public required int[] Chunks { get; init; }
    public required int[] PromptIds { get; init; }

    /// <summary>Tokens the last rank generates after the prompt (the first one is the prefill's); 0: prefill only.</summary>
    public int MaxNewTokens { get; init; }

    public SamplingOptions Sampling { get; init; } = SamplingOptions.Greedy;
    public int[] StopIds { get; init; } = [];

    /// <summary>Whether the last rank returns the prefill's logits (tests compare them; generation does not need them).</summary>
    public bool ReturnLogits { get; init; }

    public Partition Partition(string source = "job") => Prefill.Partition.FromChunks(Chunks, PromptIds.Length, Chunks.Length, source);

    public byte[] Encode()
    {
        var bytes = new byte[4 * 4 + 1 + 4 * Chunks.Length + 4 + 4 * 4 + 1 + 8 + 4 + 4 * StopIds.Length + 1 + 4 + 4 * PromptIds.Length];
        var w = new SpanWriter(bytes);
        w.Int(Magic);
        w.Byte((byte)Strategy);
        w.Ints(Chunks);
        w.Int(MaxNewTokens);
        w.Float(Sampling.Temperature);
        w.Int(Sampling.TopK);
        w.Float(Sampling.TopP);
        w.Float(Sampling.RepeatPenalty);
        w.Int(Sampling.RepeatLastN);
        w.Byte(Sampling.Seed.HasValue ? (byte)1 : (byte)0);
        w.Long((long)(Sampling.Seed ?? 0));
        w.Ints(StopIds);
        w.Byte(ReturnLogits ? (byte)1 : (byte)0);
        w.Ints(PromptIds);
        return bytes[..w.Position];
    }

    public static PrefillJob Decode(ReadOnlySpan<byte> bytes)
    {
        var r = new SpanReader(bytes);
        if (r.Int() != Magic) throw new InvalidDataException("prefill job: bad magic");
        var strategy = (PrefillStrategyKind)r.Byte();
        if (strategy > PrefillStrategyKind.Kvr) throw new InvalidDataException($"prefill job: unknown strategy {(int)strategy}");
        var chunks = r.Ints(4096);
        int maxNew = r.Int();
        var sampling = new SamplingOptions
        {
            Temperature = r.Float(), TopK = r.Int(), TopP = r.Float(), RepeatPenalty = r.Float(), RepeatLastN = r.Int(),
        };
        bool hasSeed = r.Byte() != 0;
        long seed = r.Long();
        if (hasSeed) sampling = sampling with { Seed = (ulong)seed };
        var stops = r.Ints(4096);
        bool logits = r.Byte() != 0;
        var prompt = r.Ints(MaxTokens);
        if (!r.AtEnd) throw new InvalidDataException("prefill job: trailing bytes");
        if (maxNew < 0) throw new InvalidDataException("prefill job: negative token budget");
        return new PrefillJob
        {
            Strategy = strategy, Chunks = chunks, MaxNewTokens = maxNew, Sampling = sampling, StopIds = stops,
            ReturnLogits = logits, PromptIds = prompt,
        };
    }

    internal ref struct SpanWriter(Span<byte> buffer)
    {
        private readonly Span<byte> _buffer = buffer;
        public int Position { get; private set; }
        public void Byte(byte v) => _buffer[Position++] = v;
        public void Int(int v) { BinaryPrimitives.WriteInt32LittleEndian(_buffer[Position..], v); Position += 4; }
        public void Long(long v) { BinaryPrimitives.WriteInt64LittleEndian(_buffer[Position..], v); Position += 8; }
        public void Float(float v) { BinaryPrimitives.WriteSingleLittleEndian(_buffer[Position..], v); Position += 4; }
        public void Ints(ReadOnlySpan<int> v) { Int(v.Length); foreach (var x in v) Int(x); }
        public void Floats(ReadOnlySpan<float> v) { Int(v.Length); foreach (var x in v) Float(x); }
        public void Bytes(ReadOnlySpan<byte> v) { Int(v.Length); v.CopyTo(_buffer[Position..]); Position += v.Length; }
    }

    internal ref struct SpanReader(ReadOnlySpan<byte> buffer)
    {
        private readonly ReadOnlySpan<byte> _buffer = buffer;
        private int _position;

        private ReadOnlySpan<byte> Take(int n)
        {
            if (n < 0 || _position + n > _buffer.Length) throw new InvalidDataException("message truncated");
            var s = _buffer.Slice(_position, n);
            _position += n;
            return s;
        }

        public byte Byte() => Take(1)[0];
        public int Int() => BinaryPrimitives.ReadInt32LittleEndian(Take(4));
        public long Long() => BinaryPrimitives.ReadInt64LittleEndian(Take(8));
        public float Float() => BinaryPrimitives.ReadSingleLittleEndian(Take(4));

        public int[] Ints(int max)
        {
            int n = Int();
            if (n < 0 || n > max) throw new InvalidDataException($"count {n} out of range");
            var src = Take(checked(n * 4));
            var v = new int[n];
            for (int i = 0; i < n; i++) v[i] = BinaryPrimitives.ReadInt32LittleEndian(src[(i * 4)..]);
            return v;
        }

        public float[] Floats(int max)
        {
            int n = Int();
            if (n < 0 || n > max) throw new InvalidDataException($"count {n} out of range");
            var src = Take(checked(n * 4));
            var v = new float[n];
            for (int i = 0; i < n; i++) v[i] = BinaryPrimitives.ReadSingleLittleEndian(src[(i * 4)..]);
            return v;
        }

        public ReadOnlySpan<byte> Bytes(int max)
        {
            int n = Int();
            if (n < 0 || n > max) throw new InvalidDataException($"count {n} out of range");
            return Take(n);
        }

        public bool AtEnd => _position == _buffer.Length;
    }
}
