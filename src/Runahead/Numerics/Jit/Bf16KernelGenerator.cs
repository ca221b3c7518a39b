namespace Runahead.Numerics.Jit;

/// <summary>
/// Generates the BF16 GEMM micro-kernel C[MR, 32] (+)= A[MR, 2kp] B[2kp, 32] with F32 accumulation, System V ABI:
/// <code>
/// void kernel(uint* a,       // rdi: activation pairs in groups of 16 k pairs: [kp/16][MR][16] dwords
///             uint* b,       // rsi: [kp][32] dwords, each one column's bf16 pair (k, k+1)
///             long kPairs,   // rdx
///             float* c,      // rcx: row-major, rows of 32 floats at stride ldc
///             long ldcBytes, // r8
///             long accumulate) // r9: nonzero adds to C, zero overwrites it
/// </code>
/// A dword holds one row's bf16 pair (k, k+1); grouping 16 pairs per row lets the packing store 16 pairs of a row
/// with one vector store, and the main loop (16 pairs unrolled) finds pair j of row r at the fixed displacement
/// 64 r + 4 j. The tail loop takes the last kp mod 16 pairs one at a time at [rdi + 64 r], rdi advancing by 4.
/// Registers: zmm(2r) and zmm(2r+1) accumulate row r's columns 0-15 and 16-31; zmm28/29 hold the weight pair-rows,
/// zmm30/31 alternate as the broadcast activation pair. All zmm and the GPRs used are caller-saved in System V, so
/// nothing is spilled. Each vdpbf16ps does 16 lanes x 2 multiply-adds.
/// </summary>
internal static class Bf16KernelGenerator
{
    public const int MaxMR = 14;
    /// <summary>k pairs per group of the activation layout (and per main-loop iteration).</summary>
    public const int Group = 16;
    private const int BLo = 28, BHi = 29, Bcast0 = 30;

    /// <summary>Index (in dwords) of row <paramref name="r"/>'s pair <paramref name="p"/> in an activation micro-panel.</summary>
    public static int ActivationIndex(int p, int r, int mr) => p / Group * mr * Group + r * Group + p % Group;

    public static byte[] Generate(int mr)
    {
        if (mr < 1 || mr > MaxMR) throw new ArgumentOutOfRangeException(nameof(mr), $"MR {mr} is outside [1, {MaxMR}]");
        var e = new X64Emitter();
        var main = new Label();
        var tail = new Label();
        var tailLoop = new Label();
        var store = new Label();
        var write = new Label();

        // Accumulators start at zero; accumulation into C happens once at the end.
        for (int i = 0; i < 2 * mr; i++) e.Vpxord(i, i, i);                 // vpxord zmm_i, zmm_i, zmm_i
        e.Cmp(Gpr.Rdx, Group);                                              // cmp rdx, 16
        e.Jl(tail);                                                         // jl .tail

        e.Bind(main);                                                       // .main:
        for (int j = 0; j < Group; j++)
            OnePair(e, mr, bOffset: 128 * j, aOffset: 4 * j);               //   16 x one pair (below)
        e.Add(Gpr.Rdi, mr * Group * 4);                                     //   add rdi, MR*64
        e.Add(Gpr.Rsi, Group * 128);                                        //   add rsi, 2048
        e.Sub(Gpr.Rdx, Group);                                              //   sub rdx, 16
        e.Cmp(Gpr.Rdx, Group);                                              //   cmp rdx, 16
        e.Jge(main);                                                        //   jge .main

        e.Bind(tail);                                                       // .tail:
        e.Test(Gpr.Rdx, Gpr.Rdx);                                           //   test rdx, rdx
        e.Jz(store);                                                        //   jz .store
        e.Bind(tailLoop);                                                   // .tailLoop:
        OnePair(e, mr, bOffset: 0, aOffset: 0);                             //   one pair
        e.Add(Gpr.Rdi, 4);                                                  //   add rdi, 4
        e.Add(Gpr.Rsi, 128);                                                //   add rsi, 128
        e.Dec(Gpr.Rdx);                                                     //   dec rdx
        e.Jnz(tailLoop);                                                    //   jnz .tailLoop

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

    /// <summary>One k pair for all rows: 2 weight loads, MR broadcasts, 2 MR dot products.</summary>
    private static void OnePair(X64Emitter e, int mr, int bOffset, int aOffset)
    {
        e.VmovupsLoad(BLo, new Mem(Gpr.Rsi, bOffset));                      // vmovups zmm28, [rsi+b]
        e.VmovupsLoad(BHi, new Mem(Gpr.Rsi, bOffset + 64));                 // vmovups zmm29, [rsi+b+64]
        for (int r = 0; r < mr; r++)
        {
            int x = Bcast0 + (r & 1);
            e.VpbroadcastdMem(x, new Mem(Gpr.Rdi, Group * 4 * r + aOffset)); // vpbroadcastd zmm30|31, [rdi+64r+a]
            e.Vdpbf16ps(2 * r, BLo, x);                                     // vdpbf16ps zmm(2r), zmm28, zmm30|31
            e.Vdpbf16ps(2 * r + 1, BHi, x);                                 // vdpbf16ps zmm(2r+1), zmm29, zmm30|31
        }
    }
}
