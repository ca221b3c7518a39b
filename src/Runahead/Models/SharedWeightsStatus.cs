namespace Runahead.Models;

/// <summary>What <see cref="ModelLoadOptions.SharedWeights"/> did for one load.</summary>
/// <param name="Mapped">The linear weights run from the shared read-only cache mapping (false: private packed copies).</param>
/// <param name="CachePath">The cache file (null when no file could be used).</param>
/// <param name="BuiltHere">This load packed the weights and wrote the cache (false: it mapped an existing one).</param>
/// <param name="Note">Why an existing cache file was rebuilt, or why the cache was not used; null when neither happened.</param>
public sealed record SharedWeightsStatus(bool Mapped, string? CachePath, bool BuiltHere, string? Note);
