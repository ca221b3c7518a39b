namespace Runahead.Numerics.Jit;

/// <summary>
/// Generates the BF16 GEMM micro-kernel C[MR, 32] (+)= A[MR, 2kp] B[2kp, 32] with F32 accumulation, System V ABI:
/// <code>
/// void kernel(uint* a,       // rdi: [kp][MR] dwords, each one row's bf16 pair (k, k+1)
///             uint* b,       // rsi: [kp][32] dwords, each one column's bf16 pair (k, k+1)
///             long kPairs,   // rdx
///             float* c,      // rcx: row-major, 64-byte rows of 32 floats at stride ldc
///             long ldcBytes, // r8
///             long accumulate) // r9: nonzero adds to C, zero overwrites it
/// </code>
/// Registers: zmm0..zmm(2MR-1) accumulate row r's columns 0-15 (zmm 2r) and 16-31 (zmm 2r+1); zmm28/29 hold the
/// weight pair-rows, zmm30/31 alternate as the broadcast activation pair. All zmm and the GPRs used are caller-saved
/// in System V, so nothing is spilled. Each vdpbf16ps does 16 lanes x 2 multiply-adds.
/// </summary>
internal static class Bf16KernelGenerator
{
    public const int MaxMR = 14;
    private const int BLo = 28, BHi = 29, Bcast0 = 30;

    public static byte[] Generate(int mr)
    {
        if (mr < 1 || mr > MaxMR) throw new ArgumentOutOfRangeException(nameof(mr), $"MR {mr} is outside [1, {MaxMR}]");
        var e = new X64Emitter();
        var loop = new Label();
        var store = new Label();
        var write = new Label();

        // Accumulators start at zero; accumulation into C happens once at the end.
        for (int i = 0; i < 2 * mr; i++) e.Vpxord(i, i, i);                 // vpxord zmm_i, zmm_i, zmm_i
        e.Test(Gpr.Rdx, Gpr.Rdx);                                           // test rdx, rdx
        e.Jz(store);                                                        // jz .store

        e.Bind(loop);                                                       // .loop:
        e.VmovupsLoad(BLo, new Mem(Gpr.Rsi));                               //   vmovups zmm28, [rsi]
        e.VmovupsLoad(BHi, new Mem(Gpr.Rsi, 64));                           //   vmovups zmm29, [rsi+64]
        for (int r = 0; r < mr; r++)
        {
            int x = Bcast0 + (r & 1);
            e.VpbroadcastdMem(x, new Mem(Gpr.Rdi, 4 * r));                  //   vpbroadcastd zmm30|31, [rdi+4r]
            e.Vdpbf16ps(2 * r, BLo, x);                                     //   vdpbf16ps zmm(2r), zmm28, zmm30|31
            e.Vdpbf16ps(2 * r + 1, BHi, x);                                 //   vdpbf16ps zmm(2r+1), zmm29, zmm30|31
        }
        e.Add(Gpr.Rdi, 4 * mr);                                             //   add rdi, 4*MR
        e.Add(Gpr.Rsi, 128);                                                //   add rsi, 128
        e.Dec(Gpr.Rdx);                                                     //   dec rdx
        e.Jnz(loop);                                                        //   jnz .loop

        e.Bind(store);                                                      // .store:
        e.Test(Gpr.R9, Gpr.R9);                                             //   test r9, r9
        e.Jz(write);                                                        //   jz .write
        e.Mov(Gpr.Rax, Gpr.Rcx);                                            //   mov rax, rcx
        for (int r = 0; r < mr; r++)
        {
            e.VaddpsMem(2 * r, 2 * r, new Mem(Gpr.Rax));                    //   vaddps zmm(2r), zmm(2r), [rax]
            e.VaddpsMem(2 * r + 1, 2 * r + 1, new Mem(Gpr.Rax, 64));        //   vaddps zmm(2r+1), zmm(2r+1), [rax+64]
            e.Add(Gpr.Rax, Gpr.R8);                                         //   add rax, r8
        }
        e.Bind(write);                                                      // .write:
        for (int r = 0; r < mr; r++)
        {
            e.VmovupsStore(new Mem(Gpr.Rcx), 2 * r);                        //   vmovups [rcx], zmm(2r)
            e.VmovupsStore(new Mem(Gpr.Rcx, 64), 2 * r + 1);                //   vmovups [rcx+64], zmm(2r+1)
            e.Add(Gpr.Rcx, Gpr.R8);                                         //   add rcx, r8
        }
        e.Vzeroupper();                                                     // vzeroupper
        e.Ret();                                                            // ret
        return e.ToArray();
    }
}
