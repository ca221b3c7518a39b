using System.Runtime.Intrinsics.X86;

namespace Runahead.Numerics.Jit;

/// <summary>
/// The generated vdpbf16ps micro-kernel (see <see cref="Bf16KernelGenerator"/>) and whether this process may use it.
/// It is used only when the CPU has AVX512_BF16 (with AVX512F/BW, so the OS saves zmm state), the OS is Linux x64,
/// RUNAHEAD_BF16_DOT is not "0", the code could be placed in read-execute pages, and a self-test product matched the
/// scalar reference; otherwise BF16 weights keep the widening path. Decided once, at first use, never an error.
/// </summary>
internal static unsafe class Bf16Dot
{
    /// <summary>Activation rows per kernel call: 28 accumulators + 2 weight + 2 broadcast registers = all 32 zmm.</summary>
    public const int MR = 14;
    public const string EnvironmentVariable = "RUNAHEAD_BF16_DOT";

    private static readonly Lazy<State> s_state = new(Initialize, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>
    /// Tests set this to pack BF16 weights for the widening path as if the kernel were unavailable (and to run pairs
    /// panels packed before through the widening fallback).
    /// </summary>
    internal static bool ForceWidening;

    /// <summary>Whether BF16 weights packed now use the pairs layout and the generated kernel.</summary>
    public static bool Enabled => !ForceWidening && s_state.Value.Kernel != null;

    /// <summary>Whether the kernel exists in this process (regardless of <see cref="ForceWidening"/>).</summary>
    public static bool KernelAvailable => s_state.Value.Kernel != null;

    /// <summary>"on", or "off: " and why.</summary>
    public static string Status => s_state.Value.Kernel != null ? "on" : "off: " + s_state.Value.Reason;

    /// <summary>
    /// C[MR, 32] (+)= A B: <paramref name="a"/> bf16-pair dwords in the grouped layout of <see cref="Bf16KernelGenerator"/>, <paramref name="b"/> [kPairs][32] pair dwords,
    /// C rows <paramref name="ldcBytes"/> apart. Only call when <see cref="KernelAvailable"/>.
    /// </summary>
    public static void Kernel(uint* a, uint* b, nint kPairs, float* c, nint ldcBytes, bool accumulate) =>
        s_state.Value.Kernel(a, b, kPairs, c, ldcBytes, accumulate ? 1 : 0);

    /// <summary>The CPU and OS support the instruction (not whether the kernel was made).</summary>
    public static bool CpuSupportsAvx512Bf16()
    {
        if (!X86Base.IsSupported || !Avx512F.IsSupported || !Avx512BW.IsSupported) return false;
        var (eax, _, _, _) = X86Base.CpuId(7, 0);
        if (eax < 1) return false; // leaf 7 has no sub-leaf 1
        var (features, _, _, _) = X86Base.CpuId(7, 1);
        return (features & (1 << 5)) != 0;
    }

    /// <summary>RUNAHEAD_BF16_DOT: "0", "off" or "false" turn the kernel off; anything else (or unset) leaves it on.</summary>
    internal static bool DisabledBy(string? value) =>
        value is not null && (value.Trim() == "0" || value.Trim().Equals("off", StringComparison.OrdinalIgnoreCase)
            || value.Trim().Equals("false", StringComparison.OrdinalIgnoreCase));

    // SuppressGCTransition: a call is about a microsecond of arithmetic (<= 256 k pairs) that never blocks or calls
    // back, so the cooperative-to-preemptive switch of a normal unmanaged call is pure overhead.
    private sealed class State(delegate* unmanaged[SuppressGCTransition]<uint*, uint*, nint, float*, nint, nint, void> kernel, string reason)
    {
        public readonly delegate* unmanaged[SuppressGCTransition]<uint*, uint*, nint, float*, nint, nint, void> Kernel = kernel;
        public readonly string Reason = reason;
    }

    private static State Initialize()
    {
        if (DisabledBy(Environment.GetEnvironmentVariable(EnvironmentVariable))) return new State(null, $"{EnvironmentVariable}=0");
        if (!CpuSupportsAvx512Bf16()) return new State(null, "the CPU has no AVX512_BF16");
        try
        {
            byte* code = ExecutableCode.TryCreate(Bf16KernelGenerator.Generate(MR), out var failure);
            if (code == null) return new State(null, failure ?? "no executable memory");
            var kernel = (delegate* unmanaged[SuppressGCTransition]<uint*, uint*, nint, float*, nint, nint, void>)code;
            string? mismatch = SelfTest(kernel);
            return mismatch is null ? new State(kernel, "") : new State(null, "self-test failed: " + mismatch);
        }
        catch (Exception e)
        {
            return new State(null, $"{e.GetType().Name}: {e.Message}");
        }
    }

    /// <summary>One small product against the scalar reference (both the overwrite and the accumulate entry); null when it matches.</summary>
    private static string? SelfTest(delegate* unmanaged[SuppressGCTransition]<uint*, uint*, nint, float*, nint, nint, void> kernel)
    {
        const int kPairs = 35, ldc = 40; // two main-loop groups and a 3-pair tail
        var rng = new Random(20260127);
        var a = new uint[(kPairs + Bf16KernelGenerator.Group - 1) / Bf16KernelGenerator.Group * Bf16KernelGenerator.Group * MR];
        var b = new uint[kPairs * 32];
        for (int i = 0; i < a.Length; i++) a[i] = RandomPair(rng);
        for (int i = 0; i < b.Length; i++) b[i] = RandomPair(rng);
        var c = new float[MR * ldc];
        for (int i = 0; i < c.Length; i++) c[i] = (float)(rng.NextDouble() - 0.5);
        var before = (float[])c.Clone();
        fixed (uint* ap = a)
        fixed (uint* bp = b)
        fixed (float* cp = c)
        {
            kernel(ap, bp, kPairs, cp, ldc * 4, 1);
            for (int r = 0; r < MR; r++)
                for (int col = 0; col < ldc; col++)
                {
                    double expected = col < 32 ? before[r * ldc + col] + Bf16Reference.PairDot(a, b, kPairs, MR, r, col) : before[r * ldc + col];
                    if (Math.Abs(c[r * ldc + col] - expected) > 1e-4 * (1 + Math.Abs(expected)))
                        return $"accumulate: C[{r},{col}] = {c[r * ldc + col]}, expected {expected}";
                }
            kernel(ap, bp, kPairs, cp, ldc * 4, 0);
            for (int r = 0; r < MR; r++)
                for (int col = 0; col < 32; col++)
                {
                    double expected = Bf16Reference.PairDot(a, b, kPairs, MR, r, col);
                    if (Math.Abs(c[r * ldc + col] - expected) > 1e-4 * (1 + Math.Abs(expected)))
                        return $"overwrite: C[{r},{col}] = {c[r * ldc + col]}, expected {expected}";
                }
        }
        return null;
    }

    private static uint RandomPair(Random rng) =>
        DType.FloatToBf16((float)(rng.NextDouble() * 2 - 1)) | (uint)DType.FloatToBf16((float)(rng.NextDouble() * 2 - 1)) << 16;
}
