using System.Text;
using Runahead.Text;

namespace Runahead.Tests.Generation;

/// <summary>Id i is the text "w{i} ", except ids 5 and 6, the two UTF-8 bytes of "é"; 0 is BOS (no text).</summary>
internal sealed class FakeTokenizer(int vocab) : ITokenizer
{
    public int VocabSize => vocab;
    public int BosId => 0;
    public int EosId => 1;
    public bool AddBosByDefault => true;

    public int[] Encode(string text, bool addBos)
    {
        var ids = new List<int>();
        if (addBos) ids.Add(BosId);
        foreach (var w in text.Split(' ', StringSplitOptions.RemoveEmptyEntries)) ids.Add(int.Parse(w[1..]) % vocab);
        return ids.ToArray();
    }

    public byte[] TokenBytes(int id) => id switch
    {
        0 => [],
        5 => [0xC3],
        6 => [0xA9],
        _ => Encoding.UTF8.GetBytes($"w{id} "),
    };

    public string Decode(ReadOnlySpan<int> ids)
    {
        var bytes = new List<byte>();
        foreach (var id in ids) bytes.AddRange(TokenBytes(id));
        return Encoding.UTF8.GetString(bytes.ToArray());
    }
}
