namespace Runahead;

/// <summary>
/// An error caused by the user's input (a file, an option, a prompt): the CLI prints <see cref="Exception.Message"/>
/// as one line and exits non-zero, without a stack trace. Messages name the file or option and what is wrong.
/// </summary>
public class RunaheadException : Exception
{
    public RunaheadException(string message) : base(message) { }
    public RunaheadException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>A model or tokenizer file is malformed, truncated, hostile or unsupported.</summary>
public sealed class InvalidModelFileException : RunaheadException
{
    public string FilePath { get; }
    public InvalidModelFileException(string path, string problem)
        : base($"{path}: {problem}") => FilePath = path;
}
