using System.Diagnostics.CodeAnalysis;
using System.Reflection;
using System.Runtime.Loader;

namespace Runahead.Distributed;

/// <summary>Creates a rank program in a worker process from the assembly file and type name the coordinator sent.</summary>
public static class RankProgramLoader
{
    [UnconditionalSuppressMessage("Trimming", "IL2072", Justification = "ResolveType keeps the constructor.")]
    internal static IRankProgram Create(string assemblyPath, string typeName) =>
        (IRankProgram)(Activator.CreateInstance(ResolveType(assemblyPath, typeName))
            ?? throw new RunaheadException($"worker: cannot create {typeName}"));

    /// <summary>The program type named by assembly file (empty: Runahead.Core) and full type name.</summary>
    [UnconditionalSuppressMessage("Trimming", "IL2026", Justification = "Rank programs are named by the coordinator running the same build; runahead is not trimmed.")]
    [UnconditionalSuppressMessage("Trimming", "IL2057", Justification = "As above.")]
    [UnconditionalSuppressMessage("Trimming", "IL2073", Justification = "As above.")]
    [return: DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicParameterlessConstructor)]
    public static Type ResolveType(string assemblyPath, string typeName)
    {
        if (string.IsNullOrEmpty(assemblyPath)) assemblyPath = typeof(IRankProgram).Assembly.Location;
        Assembly? assembly = null;
        var name = Path.GetFileNameWithoutExtension(assemblyPath);
        foreach (var loaded in AssemblyLoadContext.Default.Assemblies)
            if (string.Equals(loaded.GetName().Name, name, StringComparison.Ordinal)) { assembly = loaded; break; }
        if (assembly == null)
        {
            if (!File.Exists(assemblyPath)) throw new RunaheadException($"worker: rank program assembly {assemblyPath} not found");
            assembly = AssemblyLoadContext.Default.LoadFromAssemblyPath(Path.GetFullPath(assemblyPath));
        }
        var type = assembly.GetType(typeName, throwOnError: false)
            ?? throw new RunaheadException($"worker: no type {typeName} in {assemblyPath}");
        if (!typeof(IRankProgram).IsAssignableFrom(type) || type.IsAbstract)
            throw new RunaheadException($"worker: {typeName} is not a concrete IRankProgram");
        return type;
    }
}
