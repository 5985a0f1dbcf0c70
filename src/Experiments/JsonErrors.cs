using System.Text.Json;
using System.Text.RegularExpressions;

namespace LsKd.Experiments;

/// <summary>System.Text.Json's messages as one readable clause: where (JSON path, line) and what was expected, with
/// .NET type names turned into JSON words ("could not be converted to System.Single" becomes "expected a number").</summary>
public static partial class JsonErrors
{
    public static string Describe(JsonException e)
    {
        string where = (e.Path is { Length: > 0 } p ? $"at {p}" : "") + (e.LineNumber is { } line ? $" (line {line + 1})" : "");
        var converted = ConvertedTo().Match(e.Message);
        if (converted.Success) return $"invalid value {where}: expected {JsonWord(converted.Groups[1].Value)}".Replace("  ", " ");
        string first = e.Message.Split(" Path:")[0].Split(" LineNumber:")[0].TrimEnd('.', ' ');
        return $"{first} {where}".Trim();
    }

    static string JsonWord(string type) => type switch
    {
        "System.Single" or "System.Double" or "System.Int32" or "System.Int64" or "System.UInt64" or "System.Decimal" => "a number",
        "System.String" => "a string",
        "System.Boolean" => "true or false",
        _ when type.EndsWith("[]", StringComparison.Ordinal) => $"an array of {JsonWord(type[..^2]).Replace("a ", "").Replace("an ", "")}s",
        _ when type.StartsWith("System.Nullable`1[[", StringComparison.Ordinal) => JsonWord(type[19..type.IndexOf(',')]) + " or null",
        _ => $"an object ({type.Split('.', '+')[^1]})",
    };

    [GeneratedRegex(@"could not be converted to ([\w.`\[\], =+]+?)\. Path:")]
    private static partial Regex ConvertedTo();
}
