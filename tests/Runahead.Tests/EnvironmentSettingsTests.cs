namespace Runahead.Tests;

public class EnvironmentSettingsTests
{
    [Theory]
    [InlineData(null, true)]
    [InlineData("", true)]
    [InlineData(" 1 ", true)]
    [InlineData("ON", true)]
    [InlineData("true", true)]
    [InlineData("0", false)]
    [InlineData("off", false)]
    [InlineData("False", false)]
    public void SwitchReadsTheUsualSpellings(string? value, bool expected) =>
        Assert.Equal(expected, EnvironmentSettings.Switch("RUNAHEAD_X", value, defaultValue: true));

    [Fact]
    public void SwitchNamesTheVariableOnATypo()
    {
        var e = Assert.Throws<RunaheadException>(() => EnvironmentSettings.Switch("RUNAHEAD_X", "no", defaultValue: true));
        Assert.Equal("RUNAHEAD_X: expected 0, off, false, 1, on or true (or unset), got 'no'", e.Message);
    }

    [Fact]
    public void MistypedGroupProjectionsStopsTheCliWithOneLine() =>
        // Loads elsewhere in this process that see the bad value keep the default (grouped), which changes no result.
        AssertCliStopsOnTypo(EnvironmentSettings.GroupProjectionsVariable, "nope",
            $"runahead: {EnvironmentSettings.GroupProjectionsVariable}: expected 0, off, false, 1, on or true (or unset), got 'nope'");

    /// <summary>With <paramref name="variable"/> set to <paramref name="value"/>, a CLI command fails with exactly <paramref name="expectedError"/>.</summary>
    internal static void AssertCliStopsOnTypo(string variable, string value, string expectedError)
    {
        string? saved = Environment.GetEnvironmentVariable(variable);
        try
        {
            Environment.SetEnvironmentVariable(variable, value);
            var stdout = new StringWriter();
            var stderr = new StringWriter();
            int rc = Runahead.Cli.Program.Run(["bench", "gemm", "--m", "4", "--n", "32", "--k", "32", "--repeats", "1"], stdout, stderr);
            Assert.Equal(1, rc);
            Assert.Equal(expectedError, stderr.ToString().Trim());
            Assert.Equal("", stdout.ToString());
        }
        finally
        {
            Environment.SetEnvironmentVariable(variable, saved);
        }
    }
}
