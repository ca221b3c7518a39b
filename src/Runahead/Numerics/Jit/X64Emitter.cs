namespace Runahead.Numerics.Jit;

/// <summary>General-purpose 64-bit registers by their encoding number.</summary>
internal enum Gpr
{
    Rax = 0, Rcx = 1, Rdx = 2, Rbx = 3, Rsp = 4, Rbp = 5, Rsi = 6, Rdi = 7,
    R8 = 8, R9 = 9, R10 = 10, R11 = 11, R12 = 12, R13 = 13, R14 = 14, R15 = 15,
}

/// <summary>A memory operand [base + disp] (no index register: the kernel never needs one).</summary>
internal readonly record struct Mem(Gpr Base, int Disp = 0);

/// <summary>A jump target; bound once, referenced by any number of jumps before or after.</summary>
internal sealed class Label
{
    internal int Position = -1;
    internal readonly List<int> PendingRel32 = [];
}

/// <summary>
/// Writes the few x86-64 instruction forms the BF16 micro-kernel needs, one method per form. Vector instructions are
/// EVEX-encoded (512-bit, all 32 zmm registers); memory operands use the shortest displacement GNU as would pick,
/// including EVEX's compressed disp8 (scaled by the operand size N), so the bytes compare one to one with `as`.
/// </summary>
internal sealed class X64Emitter
{
    private readonly List<byte> _code = [];

    public int Length => _code.Count;

    public byte[] ToArray()
    {
        foreach (var b in _bound)
            if (b.PendingRel32.Count > 0) throw new InvalidOperationException("a jump targets a label that was never bound");
        return [.. _code];
    }

    private readonly List<Label> _bound = [];

    // EVEX fields: pp (implied prefix) and mm (opcode map).
    private const int PpNone = 0, Pp66 = 1, PpF3 = 2;
    private const int Map0F = 1, Map0F38 = 2;

    /// <summary>vmovups zmm, [mem]</summary>
    public void VmovupsLoad(int zmm, Mem m) => EvexMem(Map0F, PpNone, 0x10, zmm, 0, m, n: 64, broadcast: false);

    /// <summary>vmovups [mem], zmm</summary>
    public void VmovupsStore(Mem m, int zmm) => EvexMem(Map0F, PpNone, 0x11, zmm, 0, m, n: 64, broadcast: false);

    /// <summary>vaddps zmm, zmm, [mem]</summary>
    public void VaddpsMem(int dst, int src1, Mem m) => EvexMem(Map0F, PpNone, 0x58, dst, src1, m, n: 64, broadcast: false);

    /// <summary>vpxord zmm, zmm, zmm (AVX512F; vxorps zmm would need AVX512DQ)</summary>
    public void Vpxord(int dst, int src1, int src2) => EvexReg(Map0F, Pp66, 0xEF, dst, src1, src2);

    /// <summary>vpbroadcastd zmm, dword [mem]</summary>
    public void VpbroadcastdMem(int zmm, Mem m) => EvexMem(Map0F38, Pp66, 0x58, zmm, 0, m, n: 4, broadcast: false);

    /// <summary>vdpbf16ps zmm, zmm, zmm</summary>
    public void Vdpbf16ps(int dst, int src1, int src2) => EvexReg(Map0F38, PpF3, 0x52, dst, src1, src2);

    /// <summary>vdpbf16ps zmm, zmm, [mem]</summary>
    public void Vdpbf16psMem(int dst, int src1, Mem m) => EvexMem(Map0F38, PpF3, 0x52, dst, src1, m, n: 64, broadcast: false);

    /// <summary>vdpbf16ps zmm, zmm, dword [mem]{1to16}</summary>
    public void Vdpbf16psBroadcast(int dst, int src1, Mem m) => EvexMem(Map0F38, PpF3, 0x52, dst, src1, m, n: 4, broadcast: true);

    /// <summary>mov r64, r64</summary>
    public void Mov(Gpr dst, Gpr src) => RexRegReg(0x89, (int)src, (int)dst);

    /// <summary>add r64, r64</summary>
    public void Add(Gpr dst, Gpr src) => RexRegReg(0x01, (int)src, (int)dst);

    /// <summary>sub r64, r64</summary>
    public void Sub(Gpr dst, Gpr src) => RexRegReg(0x29, (int)src, (int)dst);

    /// <summary>add r64, imm (imm8 form when it fits, as `as` does)</summary>
    public void Add(Gpr dst, int imm) => AluImm(0, dst, imm);

    /// <summary>sub r64, imm</summary>
    public void Sub(Gpr dst, int imm) => AluImm(5, dst, imm);

    /// <summary>cmp r64, imm</summary>
    public void Cmp(Gpr dst, int imm) => AluImm(7, dst, imm);

    /// <summary>test r64, r64</summary>
    public void Test(Gpr a, Gpr b) => RexRegReg(0x85, (int)b, (int)a);

    /// <summary>dec r64</summary>
    public void Dec(Gpr r) => RexRegReg(0xFF, 1, (int)r);

    /// <summary>jnz label</summary>
    public void Jnz(Label target) => Jcc(0x5, target);

    /// <summary>jl label (signed less)</summary>
    public void Jl(Label target) => Jcc(0xC, target);

    /// <summary>jge label (signed greater or equal)</summary>
    public void Jge(Label target) => Jcc(0xD, target);

    /// <summary>jz label</summary>
    public void Jz(Label target) => Jcc(0x4, target);

    /// <summary>vzeroupper (VEX C5 F8 77): leaves no dirty upper state for SSE code after us.</summary>
    public void Vzeroupper() => Emit(0xC5, 0xF8, 0x77);

    /// <summary>ret</summary>
    public void Ret() => Emit(0xC3);

    public void Bind(Label label)
    {
        if (label.Position >= 0) throw new InvalidOperationException("label bound twice");
        label.Position = _code.Count;
        foreach (int at in label.PendingRel32) WriteInt32(at, label.Position - (at + 4));
        label.PendingRel32.Clear();
        _bound.Add(label);
    }

    /// <summary>Backward jumps take rel8 when in reach; forward jumps always rel32 (patched on Bind).</summary>
    private void Jcc(int condition, Label target)
    {
        if (target.Position >= 0)
        {
            int rel8 = target.Position - (_code.Count + 2);
            if (rel8 >= sbyte.MinValue)
            {
                Emit((byte)(0x70 | condition), (byte)(sbyte)rel8);
                return;
            }
            Emit(0x0F, (byte)(0x80 | condition));
            EmitInt32(target.Position - (_code.Count + 4));
            return;
        }
        Emit(0x0F, (byte)(0x80 | condition));
        target.PendingRel32.Add(_code.Count);
        EmitInt32(0);
        if (!_bound.Contains(target)) _bound.Add(target);
    }

    /// <summary>REX.W op /r with both operands registers: ModRM.reg = <paramref name="reg"/>, ModRM.rm = <paramref name="rm"/>.</summary>
    private void RexRegReg(byte opcode, int reg, int rm)
    {
        Emit((byte)(0x48 | ((reg >> 3) & 1) << 2 | ((rm >> 3) & 1)), opcode, (byte)(0xC0 | (reg & 7) << 3 | (rm & 7)));
    }

    /// <summary>The 0x81/0x83 group: /ext selects add (0), sub (5), cmp (7).</summary>
    private void AluImm(int ext, Gpr dst, int imm)
    {
        int rm = (int)dst;
        if (imm is >= sbyte.MinValue and <= sbyte.MaxValue)
        {
            RexRegReg(0x83, ext, rm);
            Emit((byte)(sbyte)imm);
            return;
        }
        if (dst == Gpr.Rax)
        {
            // The accumulator's short form (what `as` picks): REX.W 05/2D/3D id.
            Emit(0x48, (byte)(ext << 3 | 5));
        }
        else
        {
            RexRegReg(0x81, ext, rm);
        }
        EmitInt32(imm);
    }

    /// <summary>
    /// EVEX with three register operands. Prefix 62 P0 P1 P2:
    /// P0 = R X B R' 0 0 m m (R, X, B, R' stored inverted; for a register r/m, X extends it to zmm16-31),
    /// P1 = W vvvv 1 p p (vvvv inverted), P2 = z L'L b V' a a a (L'L = 10 for 512 bits, V' inverted).
    /// </summary>
    private void EvexReg(int map, int pp, byte opcode, int reg, int vvvv, int rm)
    {
        CheckZmm(reg); CheckZmm(vvvv); CheckZmm(rm);
        EmitEvex(map, pp, reg, vvvv, rmExtB: (rm >> 3) & 1, rmExtX: (rm >> 4) & 1, broadcast: false);
        Emit(opcode, (byte)(0xC0 | (reg & 7) << 3 | (rm & 7)));
    }

    /// <summary>EVEX with a [base + disp] memory operand of element/vector size <paramref name="n"/> (the disp8 scale).</summary>
    private void EvexMem(int map, int pp, byte opcode, int reg, int vvvv, Mem m, int n, bool broadcast)
    {
        CheckZmm(reg); CheckZmm(vvvv);
        int b = (int)m.Base;
        EmitEvex(map, pp, reg, vvvv, rmExtB: (b >> 3) & 1, rmExtX: 0, broadcast);
        Emit(opcode);
        EmitModRmMem(reg & 7, m, n);
    }

    private void EmitEvex(int map, int pp, int reg, int vvvv, int rmExtB, int rmExtX, bool broadcast)
    {
        int r = (reg >> 3) & 1, rPrime = (reg >> 4) & 1;
        byte p0 = (byte)((r ^ 1) << 7 | (rmExtX ^ 1) << 6 | (rmExtB ^ 1) << 5 | (rPrime ^ 1) << 4 | map);
        byte p1 = (byte)(0 << 7 | ((~vvvv) & 0xF) << 3 | 1 << 2 | pp);
        byte p2 = (byte)(0b10 << 5 | (broadcast ? 1 : 0) << 4 | (((vvvv >> 4) & 1) ^ 1) << 3);
        Emit(0x62, p0, p1, p2);
    }

    /// <summary>ModRM (+SIB for rsp/r12 bases) and the shortest displacement: none, disp8 (EVEX-scaled by n) or disp32.</summary>
    private void EmitModRmMem(int regLow, Mem m, int n)
    {
        int b = (int)m.Base & 7;
        bool needsSib = b == 4;
        int mod;
        int disp8 = 0;
        if (m.Disp == 0 && b != 5) mod = 0;
        else if (m.Disp % n == 0 && m.Disp / n is >= sbyte.MinValue and <= sbyte.MaxValue) { mod = 1; disp8 = m.Disp / n; }
        else mod = 2;
        Emit((byte)(mod << 6 | regLow << 3 | (needsSib ? 4 : b)));
        if (needsSib) Emit(0x24);
        if (mod == 1) Emit((byte)(sbyte)disp8);
        else if (mod == 2) EmitInt32(m.Disp);
    }

    private static void CheckZmm(int r)
    {
        if ((uint)r > 31) throw new ArgumentOutOfRangeException(nameof(r), $"zmm{r} does not exist");
    }

    private void Emit(params ReadOnlySpan<byte> bytes)
    {
        foreach (byte b in bytes) _code.Add(b);
    }

    private void EmitInt32(int v) => Emit((byte)v, (byte)(v >> 8), (byte)(v >> 16), (byte)(v >> 24));

    private void WriteInt32(int at, int v)
    {
        _code[at] = (byte)v; _code[at + 1] = (byte)(v >> 8); _code[at + 2] = (byte)(v >> 16); _code[at + 3] = (byte)(v >> 24);
    }
}
