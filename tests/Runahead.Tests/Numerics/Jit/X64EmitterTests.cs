using Runahead.Numerics.Jit;

namespace Runahead.Tests.Numerics.Jit;

/// <summary>
/// Every instruction form the BF16 kernel uses, against the bytes GNU as 2.40 (`as --64`, Intel syntax) produced for
/// the same instruction, disassembled with objdump. Registers above 15, disp8*N compression, disp32, the rsp/r12 SIB
/// and the rbp/r13 zero displacement are all covered.
/// </summary>
public class X64EmitterTests
{
    public static TheoryData<string, string> Forms() => new()
    {
        { "vmovups zmm28, [rsi]", "62 61 7c 48 10 26" },
        { "vmovups zmm29, [rsi+64]", "62 61 7c 48 10 6e 01" },
        { "vmovups zmm3, [rax+0x1000]", "62 f1 7c 48 10 58 40" },
        { "vmovups zmm17, [r12+128]", "62 c1 7c 48 10 4c 24 02" },
        { "vmovups zmm5, [rbp]", "62 f1 7c 48 10 6d 00" },
        { "vmovups [rcx], zmm0", "62 f1 7c 48 11 01" },
        { "vmovups [rcx+64], zmm27", "62 61 7c 48 11 59 01" },
        { "vmovups [r13+4], zmm9", "62 51 7c 48 11 8d 04 00 00 00" },
        { "vaddps zmm0, zmm0, [rax]", "62 f1 7c 48 58 00" },
        { "vaddps zmm27, zmm27, [rax+64]", "62 61 24 40 58 58 01" },
        { "vaddps zmm20, zmm8, [r9+0x40000]", "62 c1 3c 48 58 a1 00 00 04 00" },
        { "vpxord zmm0, zmm0, zmm0", "62 f1 7d 48 ef c0" },
        { "vpxord zmm27, zmm27, zmm27", "62 01 25 40 ef db" },
        { "vpxord zmm9, zmm17, zmm30", "62 11 75 40 ef ce" },
        { "vpbroadcastd zmm30, [rdi]", "62 62 7d 48 58 37" },
        { "vpbroadcastd zmm31, [rdi+52]", "62 62 7d 48 58 7f 0d" },
        { "vpbroadcastd zmm2, [r11+1000]", "62 d2 7d 48 58 93 e8 03 00 00" },
        { "vdpbf16ps zmm0, zmm28, zmm30", "62 92 1e 40 52 c6" },
        { "vdpbf16ps zmm27, zmm29, zmm31", "62 02 16 40 52 df" },
        { "vdpbf16ps zmm9, zmm1, zmm12", "62 52 76 48 52 cc" },
        { "vdpbf16ps zmm16, zmm15, [rsi+64]", "62 e2 06 48 52 46 01" },
        { "vdpbf16ps zmm1, zmm28, [rdi+8]{1to16}", "62 f2 1e 50 52 4f 02" },
        { "vdpbf16ps zmm25, zmm3, [r8+1024]{1to16}", "62 42 66 58 52 88 00 04 00 00" },
        { "mov rax, rcx", "48 89 c8" },
        { "mov r10, rdi", "49 89 fa" },
        { "add rax, r8", "4c 01 c0" },
        { "add rcx, r8", "4c 01 c1" },
        { "add rdi, 56", "48 83 c7 38" },
        { "add rsi, 128", "48 81 c6 80 00 00 00" },
        { "add rax, 4096", "48 05 00 10 00 00" },
        { "add r11, -8", "49 83 c3 f8" },
        { "sub rdx, r9", "4c 29 ca" },
        { "sub rdi, 1", "48 83 ef 01" },
        { "cmp r10, 300", "49 81 fa 2c 01 00 00" },
        { "test rdx, rdx", "48 85 d2" },
        { "test r9, r9", "4d 85 c9" },
        { "dec rdx", "48 ff ca" },
        { "dec r10", "49 ff ca" },
        { "vzeroupper", "c5 f8 77" },
        { "ret", "c3" },
    };

    [Theory]
    [MemberData(nameof(Forms))]
    public void EncodingMatchesGnuAs(string instruction, string expectedHex)
    {
        var e = new X64Emitter();
        Emit(e, instruction);
        Assert.Equal(expectedHex, Hex(e.ToArray()));
    }

    [Fact]
    public void JumpsUseRel8BackwardAndPatchedRel32Forward()
    {
        // GNU as on: top: dec rdx; jnz top; jge top; {disp32} jz end; {disp32} jl end; ret; end: ret
        var e = new X64Emitter();
        var top = new Label();
        var end = new Label();
        e.Bind(top);
        e.Dec(Gpr.Rdx);
        e.Jnz(top);
        e.Jge(top);
        e.Jz(end);
        e.Jl(end);
        e.Ret();
        e.Bind(end);
        e.Ret();
        Assert.Equal("48 ff ca 75 fb 7d f9 0f 84 07 00 00 00 0f 8c 01 00 00 00 c3 c3", Hex(e.ToArray()));
    }

    [Fact]
    public void FarBackwardJumpTakesRel32()
    {
        var e = new X64Emitter();
        var top = new Label();
        e.Bind(top);
        for (int i = 0; i < 100; i++) e.Dec(Gpr.Rdx);
        e.Jge(top);
        var code = e.ToArray();
        // 0f 8d rel32, relative to the end of the 6-byte jump: -(300 + 6).
        Assert.Equal("0f 8d " + Hex(BitConverter.GetBytes(-306)), Hex(code[300..]));
    }

    [Fact]
    public void UnboundLabelIsAnError()
    {
        var e = new X64Emitter();
        e.Jz(new Label());
        Assert.Throws<InvalidOperationException>(() => e.ToArray());
    }

    [Fact]
    public void KernelHasSixteenPairMainLoopAndOnePairTail()
    {
        var code = Bf16KernelGenerator.Generate(Bf16Dot.MR);
        // 2 MR dpbf16 per k pair (16 in the main loop, 1 in the tail): each is 62 P0 P1 P2 52 with map 0F38 and F3.
        int dots = 0;
        for (int i = 0; i + 4 < code.Length; i++)
            if (code[i] == 0x62 && code[i + 4] == 0x52 && (code[i + 2] & 3) == 2 && (code[i + 1] & 3) == 2) dots++;
        Assert.Equal(2 * Bf16Dot.MR * (Bf16KernelGenerator.Group + 1), dots);
        Assert.Equal(new byte[] { 0xc5, 0xf8, 0x77, 0xc3 }, code[^4..]);
        Assert.Throws<ArgumentOutOfRangeException>(() => Bf16KernelGenerator.Generate(15));
    }

    private static string Hex(byte[] bytes) => string.Join(' ', bytes.Select(b => b.ToString("x2")));

    private static void Emit(X64Emitter e, string instruction)
    {
        switch (instruction)
        {
            case "vmovups zmm28, [rsi]": e.VmovupsLoad(28, new Mem(Gpr.Rsi)); break;
            case "vmovups zmm29, [rsi+64]": e.VmovupsLoad(29, new Mem(Gpr.Rsi, 64)); break;
            case "vmovups zmm3, [rax+0x1000]": e.VmovupsLoad(3, new Mem(Gpr.Rax, 0x1000)); break;
            case "vmovups zmm17, [r12+128]": e.VmovupsLoad(17, new Mem(Gpr.R12, 128)); break;
            case "vmovups zmm5, [rbp]": e.VmovupsLoad(5, new Mem(Gpr.Rbp)); break;
            case "vmovups [rcx], zmm0": e.VmovupsStore(new Mem(Gpr.Rcx), 0); break;
            case "vmovups [rcx+64], zmm27": e.VmovupsStore(new Mem(Gpr.Rcx, 64), 27); break;
            case "vmovups [r13+4], zmm9": e.VmovupsStore(new Mem(Gpr.R13, 4), 9); break;
            case "vaddps zmm0, zmm0, [rax]": e.VaddpsMem(0, 0, new Mem(Gpr.Rax)); break;
            case "vaddps zmm27, zmm27, [rax+64]": e.VaddpsMem(27, 27, new Mem(Gpr.Rax, 64)); break;
            case "vaddps zmm20, zmm8, [r9+0x40000]": e.VaddpsMem(20, 8, new Mem(Gpr.R9, 0x40000)); break;
            case "vpxord zmm0, zmm0, zmm0": e.Vpxord(0, 0, 0); break;
            case "vpxord zmm27, zmm27, zmm27": e.Vpxord(27, 27, 27); break;
            case "vpxord zmm9, zmm17, zmm30": e.Vpxord(9, 17, 30); break;
            case "vpbroadcastd zmm30, [rdi]": e.VpbroadcastdMem(30, new Mem(Gpr.Rdi)); break;
            case "vpbroadcastd zmm31, [rdi+52]": e.VpbroadcastdMem(31, new Mem(Gpr.Rdi, 52)); break;
            case "vpbroadcastd zmm2, [r11+1000]": e.VpbroadcastdMem(2, new Mem(Gpr.R11, 1000)); break;
            case "vdpbf16ps zmm0, zmm28, zmm30": e.Vdpbf16ps(0, 28, 30); break;
            case "vdpbf16ps zmm27, zmm29, zmm31": e.Vdpbf16ps(27, 29, 31); break;
            case "vdpbf16ps zmm9, zmm1, zmm12": e.Vdpbf16ps(9, 1, 12); break;
            case "vdpbf16ps zmm16, zmm15, [rsi+64]": e.Vdpbf16psMem(16, 15, new Mem(Gpr.Rsi, 64)); break;
            case "vdpbf16ps zmm1, zmm28, [rdi+8]{1to16}": e.Vdpbf16psBroadcast(1, 28, new Mem(Gpr.Rdi, 8)); break;
            case "vdpbf16ps zmm25, zmm3, [r8+1024]{1to16}": e.Vdpbf16psBroadcast(25, 3, new Mem(Gpr.R8, 1024)); break;
            case "mov rax, rcx": e.Mov(Gpr.Rax, Gpr.Rcx); break;
            case "mov r10, rdi": e.Mov(Gpr.R10, Gpr.Rdi); break;
            case "add rax, r8": e.Add(Gpr.Rax, Gpr.R8); break;
            case "add rcx, r8": e.Add(Gpr.Rcx, Gpr.R8); break;
            case "add rdi, 56": e.Add(Gpr.Rdi, 56); break;
            case "add rsi, 128": e.Add(Gpr.Rsi, 128); break;
            case "add rax, 4096": e.Add(Gpr.Rax, 4096); break;
            case "add r11, -8": e.Add(Gpr.R11, -8); break;
            case "sub rdx, r9": e.Sub(Gpr.Rdx, Gpr.R9); break;
            case "sub rdi, 1": e.Sub(Gpr.Rdi, 1); break;
            case "cmp r10, 300": e.Cmp(Gpr.R10, 300); break;
            case "test rdx, rdx": e.Test(Gpr.Rdx, Gpr.Rdx); break;
            case "test r9, r9": e.Test(Gpr.R9, Gpr.R9); break;
            case "dec rdx": e.Dec(Gpr.Rdx); break;
            case "dec r10": e.Dec(Gpr.R10); break;
            case "vzeroupper": e.Vzeroupper(); break;
            case "ret": e.Ret(); break;
            default: throw new ArgumentException($"no emitter call for {instruction}");
        }
    }
}
