using System.Text.Json;
using System.Text.Json.Serialization;

namespace LsKd.Experiments.Study;

/// <summary>Reading a study configuration written as JSON (camelCase keys, comments and trailing commas allowed):
/// an unreadable file, an unknown key or a wrong type is one line naming the file and the key.</summary>
public static class ConfigFile
{
    public static readonly JsonSerializerOptions Options = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        WriteIndented = true,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
    };

    public static T Read<T>(string path) where T : class
    {
        string text;
        try { text = File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new UsageException($"--config: cannot read {path}: {e.Message}"); }
        try
        {
            return JsonSerializer.Deserialize<T>(text, Options) ?? throw new UsageException($"{path}: empty configuration");
        }
        catch (JsonException e)
        {
            // System.Text.Json names the offending member and its path; keep that, drop the type names.
            string what = e.Message.Contains("could not be mapped", StringComparison.Ordinal)
                ? $"unknown key {e.Message.Split('\'').ElementAtOrDefault(1) ?? "?"} at {e.Path}"
                : JsonErrors.Describe(e);
            throw new UsageException($"{path}: {what}");
        }
    }
}
