using LsKd.Nets;

namespace LsKd.Experiments.Study;

/// <summary>
/// One writer per study folder: an exclusive lock on &lt;folder&gt;/.lskd.lock (flock through .NET's FileShare.None,
/// released by the kernel when the process dies, so a killed sweep never leaves a stale lock). Re-entrant within a
/// process. Whoever takes the lock first removes the temporary files a killed writer left behind
/// (".&lt;name&gt;.&lt;pid&gt;.&lt;guid&gt;.tmp" from <see cref="AtomicFile"/>).
/// </summary>
public sealed class StudyLock : IDisposable
{
    public const string FileName = ".lskd.lock";
    static readonly Dictionary<string, (FileStream Stream, int Holders)> s_held = [];
    readonly string _dir;
    bool _released;

    StudyLock(string dir) => _dir = dir;

    public static StudyLock Acquire(string dir)
    {
        string full = Path.GetFullPath(dir);
        lock (s_held)
        {
            if (s_held.TryGetValue(full, out var held))
            {
                s_held[full] = (held.Stream, held.Holders + 1);
                return new StudyLock(full);
            }
            FileStream stream;
            try
            {
                Directory.CreateDirectory(full);
                stream = new FileStream(Path.Combine(full, FileName), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (UnauthorizedAccessException e) { throw new UsageException($"--out: cannot write to {full}: {e.Message}"); }
            catch (IOException) when (File.Exists(Path.Combine(full, FileName)))
            {
                throw new UsageException($"--out: {full} is in use by another lskd process (it holds {FileName}); wait for it to finish or choose another --out");
            }
            catch (IOException e) { throw new UsageException($"--out: cannot write to {full}: {e.Message}"); }
            stream.SetLength(0);
            stream.Write(System.Text.Encoding.UTF8.GetBytes($"pid {Environment.ProcessId} on {Environment.MachineName} since {DateTime.UtcNow:O}\n"));
            stream.Flush();
            s_held[full] = (stream, 1);
            RemoveStrayTemporaries(full);
            return new StudyLock(full);
        }
    }

    /// <summary>Deletes ".*.tmp" files under dir: only a writer that died leaves them, and no writer is running now.</summary>
    static void RemoveStrayTemporaries(string dir)
    {
        foreach (var file in Directory.EnumerateFiles(dir, ".*.tmp", SearchOption.AllDirectories))
        {
            try { File.Delete(file); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        }
    }

    public void Dispose()
    {
        if (_released) return;
        _released = true;
        lock (s_held)
        {
            var (stream, holders) = s_held[_dir];
            if (holders > 1) { s_held[_dir] = (stream, holders - 1); return; }
            s_held.Remove(_dir);
            stream.Dispose();
        }
    }
}
