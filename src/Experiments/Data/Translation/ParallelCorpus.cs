using System.Security.Cryptography;
using System.Text;

namespace LsKd.Experiments.Data.Translation;

/// <summary>An English sentence and its translation.</summary>
public sealed record SentencePair(string Source, string Target);

/// <summary>What a corpus was built from, recorded with every result so that runs from different corpora are never
/// mixed: the catalogues (domain, file size), pairs per split and the SHA-256 of the extracted pairs.</summary>
public sealed record CorpusManifest(string Name, string Pair, string[] Domains, int Train, int Valid, int Test, string Sha256, Dictionary<string, int> PairsPerDomain,
    string[]? Packages = null);

/// <summary>
/// English-to-X sentence pairs from the gettext catalogues of Debian packages (/usr/share/locale/X/LC_MESSAGES):
/// real human translations of program messages. Entries are filtered (untranslated, format strings with % or
/// braces, several lines, tabs, too short or too long, no letter) and kept once per source string (the first
/// domain in the sorted list wins), then split 90/5/5 by a hash of the source, so a source never lands in two splits
/// and the split does not depend on the order of the catalogues.
/// </summary>
public static class ParallelCorpus
{
    public const string DefaultLocaleRoot = "/usr/share/locale";
    public const int MaxCharacters = 120;

    /// <summary>The catalogues a corpus reads: those present for both German and Russian on the Debian machines this
    /// project runs on (about 25,000 pairs per language after filtering; docs/STUDY.md). A catalogue that is not
    /// installed is skipped and the manifest records which ones were read.</summary>
    public static readonly string[] DefaultDomains =
    [
        "Linux-PAM", "PackageKit", "adduser", "appstream", "apt", "at-spi2-core", "avahi", "bash", "bfd", "binutils",
        "coreutils", "diffutils", "dpkg", "dpkg-dev", "findutils", "gas", "gdk-pixbuf", "gettext-runtime",
        "gettext-tools", "git", "glib20", "gnupg2", "gprof", "grep", "gsettings-desktop-schemas",
        "gst-plugins-base-1.0", "gstreamer-1.0", "gtk20", "gtk20-properties", "initdb-15", "iso_15924", "iso_3166",
        "iso_3166-1", "iso_3166-2", "iso_3166-3", "iso_3166_2", "iso_4217", "iso_639", "iso_639-2", "iso_639-3",
        "iso_639-5", "iso_639_3", "iso_639_5", "ld", "libapt-pkg6.0", "libc", "libexif-12", "libgphoto2_port-12",
        "libidn2", "libpq5-15", "make", "man-db", "man-db-gnulib", "mit-krb5", "opcodes", "pg_amcheck-15",
        "pg_archivecleanup-15", "pg_basebackup-15", "pg_checksums-15", "pg_config-15", "pg_controldata-15",
        "pg_ctl-15", "pg_dump-15", "pg_resetwal-15", "pg_rewind-15", "pg_test_fsync-15", "pg_test_timing-15",
        "pg_upgrade-15", "pg_verifybackup-15", "pg_waldump-15", "pgscripts-15", "plpgsql-15", "postgres-15", "psmisc",
        "psql-15", "python-apt", "sed", "shadow", "shared-mime-info", "software-properties", "systemd", "tar", "wget",
        "wget-gnulib", "xdg-user-dirs", "xkeyboard-config",
    ];

    /// <summary>The Debian 12 package that ships each default catalogue (dpkg -S), recorded in the manifest;
    /// scripts/install-deps.sh installs the same list.</summary>
    public static readonly Dictionary<string, string> DomainPackages = new()
    {
        ["Linux-PAM"] = "libpam-runtime", ["PackageKit"] = "packagekit", ["adduser"] = "adduser",
        ["appstream"] = "appstream", ["apt"] = "apt", ["at-spi2-core"] = "at-spi2-common",
        ["avahi"] = "libavahi-common-data", ["bash"] = "bash", ["coreutils"] = "coreutils",
        ["diffutils"] = "diffutils", ["dpkg"] = "dpkg", ["dpkg-dev"] = "libdpkg-perl",
        ["findutils"] = "findutils", ["gdk-pixbuf"] = "libgdk-pixbuf2.0-common", ["gettext-runtime"] = "gettext-base",
        ["gettext-tools"] = "gettext", ["git"] = "git", ["glib20"] = "libglib2.0-data",
        ["gnupg2"] = "gnupg-l10n", ["gprof"] = "binutils-common", ["grep"] = "grep",
        ["gsettings-desktop-schemas"] = "gsettings-desktop-schemas", ["gst-plugins-base-1.0"] = "libgstreamer-plugins-base1.0-0", ["gstreamer-1.0"] = "libgstreamer1.0-0",
        ["gtk20"] = "libgtk2.0-common", ["gtk20-properties"] = "libgtk2.0-common", ["initdb-15"] = "postgresql-15",
        ["iso_15924"] = "iso-codes", ["iso_3166"] = "iso-codes", ["iso_3166-1"] = "iso-codes",
        ["iso_3166-2"] = "iso-codes", ["iso_3166-3"] = "iso-codes", ["iso_3166_2"] = "iso-codes",
        ["iso_4217"] = "iso-codes", ["iso_639"] = "iso-codes", ["iso_639-2"] = "iso-codes",
        ["iso_639-3"] = "iso-codes", ["iso_639-5"] = "iso-codes", ["iso_639_3"] = "iso-codes",
        ["iso_639_5"] = "iso-codes", ["ld"] = "binutils-common", ["libapt-pkg6.0"] = "libapt-pkg6.0",
        ["libc"] = "libc-l10n", ["libexif-12"] = "libexif12", ["libgphoto2_port-12"] = "libgphoto2-port12",
        ["libidn2"] = "libidn2-0", ["libpq5-15"] = "libpq5", ["make"] = "make",
        ["man-db"] = "man-db", ["man-db-gnulib"] = "man-db", ["mit-krb5"] = "krb5-locales",
        ["opcodes"] = "binutils-common", ["pg_amcheck-15"] = "postgresql-client-15", ["pg_archivecleanup-15"] = "postgresql-15",
        ["pg_basebackup-15"] = "postgresql-client-15", ["pg_checksums-15"] = "postgresql-15", ["pg_config-15"] = "postgresql-client-15",
        ["pg_controldata-15"] = "postgresql-15", ["pg_ctl-15"] = "postgresql-15", ["pg_dump-15"] = "postgresql-client-15",
        ["pg_resetwal-15"] = "postgresql-15", ["pg_rewind-15"] = "postgresql-15", ["pg_test_fsync-15"] = "postgresql-15",
        ["pg_test_timing-15"] = "postgresql-15", ["pg_upgrade-15"] = "postgresql-15", ["pg_verifybackup-15"] = "postgresql-client-15",
        ["pg_waldump-15"] = "postgresql-15", ["pgscripts-15"] = "postgresql-client-15", ["plpgsql-15"] = "postgresql-15",
        ["postgres-15"] = "postgresql-15", ["psmisc"] = "psmisc", ["psql-15"] = "postgresql-client-15",
        ["python-apt"] = "python-apt-common", ["sed"] = "sed", ["shadow"] = "login",
        ["shared-mime-info"] = "shared-mime-info", ["software-properties"] = "software-properties-common", ["systemd"] = "systemd",
        ["tar"] = "tar", ["wget"] = "wget", ["wget-gnulib"] = "wget",
        ["xdg-user-dirs"] = "xdg-user-dirs", ["xkeyboard-config"] = "xkb-data",
    };

    /// <summary>Why an entry is left out, or null when it is kept.</summary>
    public static string? Reject(string source, string target)
    {
        if (target.Length == 0) return "untranslated";
        if (source == target) return "untranslated";
        if (source.Length < 2 || target.Length < 2) return "too short";
        if (source.Length > MaxCharacters || target.Length > MaxCharacters) return "too long";
        if (source.Contains('%') || target.Contains('%') || source.Contains('{') || source.Contains('}') || target.Contains('{') || target.Contains('}')) return "format string";
        if (source.Contains('\n') || target.Contains('\n') || source.Contains('\t') || target.Contains('\t') || source.Contains('\r') || target.Contains('\r')) return "several lines";
        if (!source.Any(char.IsLetter) || !target.Any(char.IsLetter)) return "no letter";
        return null;
    }

    /// <summary>0 = train, 1 = valid, 2 = test, from the first 8 bytes of SHA-256 of the normalised source (about
    /// 90/5/5): variants of one message that differ only in case, punctuation, spacing or mnemonic marks ("_Open",
    /// "&amp;Open", "open.") land in the same split, so the test split does not leak into training.</summary>
    public static int SplitOf(string source)
    {
        ulong h = BitConverter.ToUInt64(SHA256.HashData(Encoding.UTF8.GetBytes(Normalise(source))), 0);
        int bucket = (int)(h % 100);
        return bucket < 90 ? 0 : bucket < 95 ? 1 : 2;
    }

    /// <summary>The source as the split sees it: letters and digits only, lower case.</summary>
    public static string Normalise(string source) => new(source.Where(char.IsLetterOrDigit).Select(char.ToLowerInvariant).ToArray());

    /// <summary>Reads the catalogues of <paramref name="language"/> (e.g. de, ru) under the locale root; a missing
    /// catalogue is skipped (its package may not be installed), a corrupt one is an error naming the file.</summary>
    public static (List<SentencePair>[] Splits, CorpusManifest Manifest) FromCatalogues(string language, string localeRoot = DefaultLocaleRoot, string[]? domains = null)
    {
        domains ??= DefaultDomains;
        string dir = Path.Combine(localeRoot, language, "LC_MESSAGES");
        if (!Directory.Exists(dir))
            throw new DataException($"{dir}: no message catalogues for '{language}' (install the packages with scripts/install-deps.sh, or pass --locale-root)");
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var pairs = new List<SentencePair>();
        var perDomain = new Dictionary<string, int>();
        foreach (var domain in domains.OrderBy(d => d, StringComparer.Ordinal))
        {
            string path = Path.Combine(dir, domain + ".mo");
            if (!File.Exists(path)) continue;
            int kept = 0;
            foreach (var e in MoCatalog.Read(path).Entries)
            {
                string target = e.Translations[0];
                if (Reject(e.Source, target) != null || !seen.Add(e.Source)) continue;
                pairs.Add(new SentencePair(e.Source, target));
                kept++;
            }
            perDomain[domain] = kept;
        }
        if (pairs.Count == 0)
            throw new DataException($"{dir}: no sentence pairs after filtering the catalogues ({string.Join(", ", domains.Take(5))}, ...); install them with scripts/install-deps.sh");
        var packages = perDomain.Keys.Select(d => DomainPackages.GetValueOrDefault(d, "?")).Distinct().Order(StringComparer.Ordinal).ToArray();
        var (splits, manifest) = Build($"gettext-{language}", $"en-{language}", perDomain, pairs);
        return (splits, manifest with { Packages = packages });
    }

    /// <summary>Splits pairs by the hash of their source and writes the manifest.</summary>
    public static (List<SentencePair>[] Splits, CorpusManifest Manifest) Build(string name, string pair, Dictionary<string, int> perSource, List<SentencePair> pairs)
    {
        var splits = new[] { new List<SentencePair>(), new List<SentencePair>(), new List<SentencePair>() };
        foreach (var p in pairs.OrderBy(p => p.Source, StringComparer.Ordinal)) splits[SplitOf(p.Source)].Add(p);
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        for (int s = 0; s < 3; s++)
            foreach (var p in splits[s]) sha.AppendData(Encoding.UTF8.GetBytes($"{s}\t{p.Source}\t{p.Target}\n"));
        var manifest = new CorpusManifest(name, pair, perSource.Keys.ToArray(), splits[0].Count, splits[1].Count, splits[2].Count,
            Convert.ToHexStringLower(sha.GetHashAndReset()), perSource);
        return (splits, manifest);
    }
}

/// <summary>A character vocabulary from a training split: ids 0-3 are PAD, BOS, EOS and UNK, then the characters in
/// ordinal order.</summary>
public sealed class CharVocabulary : ITokenizer
{
    public const int Unk = 3;
    readonly Dictionary<char, int> _ids;

    public CharVocabulary(IEnumerable<string> texts)
    {
        Symbols = texts.SelectMany(t => t).Distinct().OrderBy(c => c).ToArray();
        _ids = Symbols.Select((c, i) => (c, i)).ToDictionary(x => x.c, x => x.i + 4);
    }

    public char[] Symbols { get; }
    public int Size => Symbols.Length + 4;

    public int[] Encode(string text) => text.Select(c => _ids.TryGetValue(c, out int id) ? id : Unk).ToArray();

    public string Decode(IEnumerable<int> ids) =>
        new(ids.Where(i => i >= 4 || i == Unk).Select(i => i == Unk ? '\uFFFD' : i - 4 < Symbols.Length ? Symbols[i - 4] : '\uFFFD').ToArray());
}
