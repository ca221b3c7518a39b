namespace Runahead;

/// <summary>The engine's environment variables that change behaviour, checked up front by the CLI.</summary>
public static class EnvironmentSettings
{
    /// <summary>
    /// Throws a one-line <see cref="RunaheadException"/> naming the variable when one holds a value the engine does not
    /// understand (today RUNAHEAD_BF16_DOT), so a typo stops the command instead of being noticed deep inside loading.
    /// </summary>
    public static void Validate() => Numerics.Jit.Bf16Dot.ValidateEnvironment();
}
