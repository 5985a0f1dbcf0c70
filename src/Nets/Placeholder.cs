namespace LsKd.Nets; internal static class Placeholder {}
