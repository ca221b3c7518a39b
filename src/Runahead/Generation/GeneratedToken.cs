namespace Runahead.Generation;

/// <summary>One generated token.</summary>
/// <param name="Id">Token id; -1 for a final piece that carries only text held back at the end (an incomplete character).</param>
/// <param name="Text">The text this token completes (may be empty while a UTF-8 character is incomplete, or hold
/// text held back from earlier tokens).</param>
/// <param name="Index">0 for the first generated token.</param>
/// <param name="Elapsed">Time from the prompt ids being handed in to this token's id being known.</param>
public sealed record GeneratedToken(int Id, string Text, int Index, TimeSpan Elapsed);
