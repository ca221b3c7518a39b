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
    public void MistypedGroupProjectionsStopsTheCliWithOneLine()
    {
        string? saved = Environment.GetEnvironmentVariable(EnvironmentSettings.GroupProjectionsVariable);
        try
        {
            // Loads elsewhere in this process that see the bad value keep the default (grouped), which changes no result.
            Environment.SetEnvironmentVariable(EnvironmentSettings.GroupProjectionsVariable, "nope");
            var stdout = new StringWriter();
            var stderr = new StringWriter();
            int rc = Runahead.Cli.Program.Run(["bench", "gemm", "--m", "4", "--n", "32", "--k", "32", "--repeats", "1"], stdout, stderr);
            Assert.Equal(1, rc);
            Assert.Equal($"runahead: {EnvironmentSettings.GroupProjectionsVariable}: expected 0, off, false, 1, on or true (or unset), got 'nope'",
                stderr.ToString().Trim());
            Assert.Equal("", stdout.ToString());
        }
        finally
        {
            Environment.SetEnvironmentVariable(EnvironmentSettings.GroupProjectionsVariable, saved);
        }
    }
}
