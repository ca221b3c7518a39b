using System.Runtime.Intrinsics.X86;

namespace Runahead.Numerics.Jit;

/// <summary>
/// The generated vdpbf16ps micro-kernel (see <see cref="Bf16KernelGenerator"/>) and whether this process uses it for
/// BF16 weights. The kernel exists only when the CPU has AVX512_BF16 (with AVX512F/BW, so the OS saves zmm state), the
/// OS is Linux x64, the code could be placed in read-execute pages and a self-test product matched the scalar
/// reference. Whether it is used is then measured (<see cref="Bf16PathProbe"/>): on AMD Zen 5 the kernel is twice
/// the F32 FMA rate, but Intel server cores issue two 512-bit FMAs per cycle and vdpbf16ps on one port, so there it
/// loses to widening BF16 to F32. RUNAHEAD_BF16_DOT=0|off|false forces widening, =1|on|force the kernel (skipping the
/// timing, not the self-test). Decided once, at first use, before any weight is packed; never an error.
/// </summary>
internal static unsafe class Bf16Dot
{
    /// <summary>Activation rows per kernel call: 28 accumulators + 2 weight + 2 broadcast registers = all 32 zmm.</summary>
    public const int MR = 14;
    public const string EnvironmentVariable = "RUNAHEAD_BF16_DOT";

    /// <summary>
    /// The kernel must beat widening by this much in the probe to be chosen: the probe is a few milliseconds on one
    /// thread and may be disturbed by other load, and near parity widening is the safer choice (exact F32 activations).
    /// </summary>
    public const double RequiredSpeedup = 1.15;

    private static readonly Lazy<State> s_state = new(Initialize, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>
    /// Tests set this to pack BF16 weights for the widening path as if the kernel were unavailable (and to run pairs
    /// panels packed before through the widening fallback).
    /// </summary>
    internal static bool ForceWidening;

    // Set by Adopt: the decision of a job's rank 0, which every rank follows (null: this process's own decision).
    private static bool? s_adopted;

    /// <summary>Whether BF16 weights packed now use the pairs layout and the generated kernel.</summary>
    public static bool Enabled => !ForceWidening && (s_adopted ?? s_state.Value.Selected);

    /// <summary>
    /// Makes this process pack BF16 weights as another rank of its job decided (ranks started by mpiexec measure on
    /// their own and could decide differently under load; all ranks must use one layout and one numeric path).
    /// </summary>
    public static void Adopt(bool useKernel)
    {
        if (useKernel && !KernelAvailable)
            throw new RunaheadException($"rank 0 runs BF16 weights on the vdpbf16ps kernel, which this process cannot ({Status}); set {EnvironmentVariable}=0 for the job");
        s_adopted = useKernel == s_state.Value.Selected ? null : useKernel;
    }

    /// <summary>Whether the kernel exists in this process (regardless of the selection and <see cref="ForceWidening"/>).</summary>
    public static bool KernelAvailable => s_state.Value.Kernel != null;

    /// <summary>"on: " or "off: " and why (the measured ratio, the switch, the missing CPU feature, ...).</summary>
    public static string Status => s_adopted is bool adopted && adopted != s_state.Value.Selected
        ? (adopted ? "on: " : "off: ") + "as rank 0 of the job decided (this process: " + s_state.Value.Reason + ")"
        : (s_state.Value.Selected ? "on: " : "off: ") + s_state.Value.Reason;

    /// <summary>Widening time / kernel time in the start-up probe; null when not measured (forced or no kernel).</summary>
    public static double? MeasuredSpeedup => s_state.Value.Speedup;

    /// <summary>Wall time of the whole decision (self-test and probe, including JIT of the probed code).</summary>
    public static TimeSpan DecisionTime => s_state.Value.Elapsed;

    /// <summary>
    /// The value of <see cref="EnvironmentVariable"/> a worker process of this job must get so that it packs BF16 weights
    /// in the same layout as this process (ranks measuring on their own could decide differently under load).
    /// </summary>
    public static string WorkerSetting => Enabled ? "1" : "0";

    /// <summary>
    /// C[MR, 32] (+)= A B: <paramref name="a"/> bf16-pair dwords in the grouped layout of <see cref="Bf16KernelGenerator"/>, <paramref name="b"/> [kPairs][32] pair dwords,
    /// C rows <paramref name="ldcBytes"/> apart. Only call when <see cref="KernelAvailable"/>.
    /// </summary>
    public static void Kernel(uint* a, uint* b, nint kPairs, float* c, nint ldcBytes, bool accumulate) =>
        s_state.Value.Kernel(a, b, kPairs, c, ldcBytes, accumulate ? 1 : 0);

    /// <summary>Runs the start-up probe again (tests); only when <see cref="KernelAvailable"/>.</summary>
    internal static (double KernelSeconds, double WideningSeconds) MeasureAgain() => Bf16PathProbe.Measure(s_state.Value.Kernel);

    /// <summary>The CPU and OS support the instruction (not whether the kernel was made).</summary>
    public static bool CpuSupportsAvx512Bf16()
    {
        if (!X86Base.IsSupported || !Avx512F.IsSupported || !Avx512BW.IsSupported) return false;
        var (eax, _, _, _) = X86Base.CpuId(7, 0);
        if (eax < 1) return false; // leaf 7 has no sub-leaf 1
        var (features, _, _, _) = X86Base.CpuId(7, 1);
        return (features & (1 << 5)) != 0;
    }

    /// <summary>
    /// RUNAHEAD_BF16_DOT: "0", "off" or "false" force widening; "1", "on" or "force" force the kernel; unset or empty
    /// measure. Anything else is a one-line error naming the variable (a typo must not silently measure).
    /// </summary>
    internal static Bf16DotMode ModeFrom(string? value)
    {
        string v = value?.Trim() ?? "";
        if (v.Length == 0) return Bf16DotMode.Measure;
        if (v == "0" || v.Equals("off", StringComparison.OrdinalIgnoreCase) || v.Equals("false", StringComparison.OrdinalIgnoreCase))
            return Bf16DotMode.Widen;
        if (v == "1" || v.Equals("on", StringComparison.OrdinalIgnoreCase) || v.Equals("force", StringComparison.OrdinalIgnoreCase))
            return Bf16DotMode.Kernel;
        throw new RunaheadException($"{EnvironmentVariable}: expected 0, off, false, 1, on or force (or unset to measure), got '{value}'");
    }

    /// <summary>
    /// Throws the one-line <see cref="RunaheadException"/> for a mistyped <see cref="EnvironmentVariable"/>; the CLI calls
    /// it at start-up so a typo stops the command instead of silently widening deep inside weight packing.
    /// </summary>
    public static void ValidateEnvironment() => ModeFrom(Environment.GetEnvironmentVariable(EnvironmentVariable));

    /// <summary>The rule applied to the probe's best times: the kernel only when at least <see cref="RequiredSpeedup"/> times faster.</summary>
    internal static (bool UseKernel, string Reason) Decide(double kernelSeconds, double wideningSeconds)
    {
        if (!(kernelSeconds > 0) || !(wideningSeconds > 0) || double.IsInfinity(kernelSeconds) || double.IsInfinity(wideningSeconds))
            return (false, "probe timing unusable");
        double speedup = wideningSeconds / kernelSeconds;
        string ratio = speedup.ToString("0.00", System.Globalization.CultureInfo.InvariantCulture);
        return speedup >= RequiredSpeedup
            ? (true, $"measured {ratio}x widening")
            : (false, $"measured {ratio}x widening, needs {RequiredSpeedup.ToString("0.00", System.Globalization.CultureInfo.InvariantCulture)}x");
    }

    // SuppressGCTransition: a call is about a microsecond of arithmetic (<= 256 k pairs) that never blocks or calls
    // back, so the cooperative-to-preemptive switch of a normal unmanaged call is pure overhead.
    private sealed class State(delegate* unmanaged[SuppressGCTransition]<uint*, uint*, nint, float*, nint, nint, void> kernel,
        bool selected, string reason, double? speedup = null)
    {
        public readonly delegate* unmanaged[SuppressGCTransition]<uint*, uint*, nint, float*, nint, nint, void> Kernel = kernel;
        public readonly bool Selected = selected && kernel != null;
        public readonly string Reason = reason;
        public readonly double? Speedup = speedup;
        public TimeSpan Elapsed;
    }

    private static State Initialize()
    {
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        var state = Choose();
        state.Elapsed = System.Diagnostics.Stopwatch.GetElapsedTime(start);
        return state;
    }

    private static State Choose()
    {
        string? setting = Environment.GetEnvironmentVariable(EnvironmentVariable);
        Bf16DotMode mode;
        try
        {
            mode = ModeFrom(setting);
        }
        catch (RunaheadException e)
        {
            // Decided lazily deep inside weight packing, so not an exception: widen (the safe path) and say why.
            return new State(null, false, e.Message);
        }
        if (mode == Bf16DotMode.Widen) return new State(null, false, $"forced by {EnvironmentVariable}={setting!.Trim()}");
        if (!CpuSupportsAvx512Bf16()) return new State(null, false, "the CPU has no AVX512_BF16");
        try
        {
            byte* code = ExecutableCode.TryCreate(Bf16KernelGenerator.Generate(MR), out var failure);
            if (code == null) return new State(null, false, failure ?? "no executable memory");
            var kernel = (delegate* unmanaged[SuppressGCTransition]<uint*, uint*, nint, float*, nint, nint, void>)code;
            string? mismatch = SelfTest(kernel);
            if (mismatch is not null) return new State(null, false, "self-test failed: " + mismatch);
            if (mode == Bf16DotMode.Kernel) return new State(kernel, true, $"forced by {EnvironmentVariable}={setting!.Trim()}");
            var (kernelSeconds, wideningSeconds) = Bf16PathProbe.Measure(kernel);
            var (use, reason) = Decide(kernelSeconds, wideningSeconds);
            return new State(kernel, use, reason, wideningSeconds / kernelSeconds);
        }
        catch (Exception e)
        {
            return new State(null, false, $"{e.GetType().Name}: {e.Message}");
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

/// <summary>How RUNAHEAD_BF16_DOT asks the BF16 path to be chosen.</summary>
internal enum Bf16DotMode
{
    /// <summary>Unset: time the kernel against widening (<see cref="Bf16PathProbe"/>).</summary>
    Measure,

    /// <summary>0, off, false: widen BF16 to F32 and use the F32 kernel.</summary>
    Widen,

    /// <summary>1, on, force: the generated kernel whenever it exists and passes its self-test.</summary>
    Kernel,
}
