using System.Numerics;
using System.Runtime.InteropServices;
using System.Text;

namespace Runahead.Models;

/// <summary>
/// A stable 64-bit hash (four independent multiply-rotate lanes, in the manner of xxHash64) for the packed-weight
/// cache: fast enough to check every panel byte on open (several GB/s per core), unlike a cryptographic hash, and the
/// same in every process (unlike <see cref="HashCode"/>, which is seeded per process). Detects corruption, not tampering.
/// </summary>
internal static unsafe class PanelHash
{
    private const ulong P1 = 0x9E3779B185EBCA87, P2 = 0xC2B2AE3D27D4EB4F, P3 = 0x165667B19E3779F9, P4 = 0x85EBCA77C2B2AE63;

    public static ulong Of(ReadOnlySpan<byte> data)
    {
        fixed (byte* p = data) return Of(p, data.Length);
    }

    public static ulong OfString(string s) => Of(Encoding.UTF8.GetBytes(s));

    public static ulong Of(byte* data, long length)
    {
        ulong a = unchecked(P1 + P2), b = P2, c = 0, d = unchecked(0 - P1);
        ulong* w = (ulong*)data;
        long words = length / 8, i = 0;
        for (; i + 4 <= words; i += 4)
        {
            a = Round(a, w[i]);
            b = Round(b, w[i + 1]);
            c = Round(c, w[i + 2]);
            d = Round(d, w[i + 3]);
        }
        ulong h = BitOperations.RotateLeft(a, 1) + BitOperations.RotateLeft(b, 7) + BitOperations.RotateLeft(c, 12) + BitOperations.RotateLeft(d, 18);
        h = Merge(Merge(Merge(Merge(h, a), b), c), d) + (ulong)length;
        for (; i < words; i++) h = BitOperations.RotateLeft(h ^ Round(0, w[i]), 27) * P1 + P4;
        for (long j = words * 8; j < length; j++) h = BitOperations.RotateLeft(h ^ (data[j] * P1), 11) * P2;
        return Avalanche(h);
    }

    public static ulong Combine(ulong seed, ulong value) => Avalanche(Merge(seed + P3, value));

    private static ulong Round(ulong acc, ulong input) => BitOperations.RotateLeft(acc + input * P2, 31) * P1;

    private static ulong Merge(ulong acc, ulong lane) => (acc ^ Round(0, lane)) * P1 + P4;

    private static ulong Avalanche(ulong h)
    {
        h ^= h >> 33;
        h *= P2;
        h ^= h >> 29;
        h *= P3;
        return h ^ (h >> 32);
    }
}
