namespace Runahead;

/// <summary>The engine's environment variables that change behaviour, checked up front by the CLI.</summary>
public static class EnvironmentSettings
{
    /// <summary>
    /// Throws a one-line <see cref="RunaheadException"/> naming the variable when one holds a value the engine does not
    /// understand (RUNAHEAD_BF16_DOT, RUNAHEAD_GROUP_PROJECTIONS), so a typo stops the command instead of being noticed
    /// deep inside loading.
    /// </summary>
    public static void Validate()
    {
        Numerics.Jit.Bf16Dot.ValidateEnvironment();
        GroupProjections();
    }

    public const string GroupProjectionsVariable = "RUNAHEAD_GROUP_PROJECTIONS";

    /// <summary>
    /// RUNAHEAD_GROUP_PROJECTIONS: unset, empty, "1", "on" or "true" group Q/K/V and gate/up products (the default);
    /// "0", "off" or "false" run them one by one (for measuring). Anything else is a one-line error naming the variable.
    /// </summary>
    public static bool GroupProjections() => Switch(GroupProjectionsVariable, Environment.GetEnvironmentVariable(GroupProjectionsVariable), defaultValue: true);

    internal static bool Switch(string name, string? value, bool defaultValue)
    {
        string v = value?.Trim() ?? "";
        if (v.Length == 0) return defaultValue;
        if (v == "1" || v.Equals("on", StringComparison.OrdinalIgnoreCase) || v.Equals("true", StringComparison.OrdinalIgnoreCase)) return true;
        if (v == "0" || v.Equals("off", StringComparison.OrdinalIgnoreCase) || v.Equals("false", StringComparison.OrdinalIgnoreCase)) return false;
        throw new RunaheadException($"{name}: expected 0, off, false, 1, on or true (or unset), got '{value}'");
    }
}
