namespace LsKd.Kernels.Gpu; public static class Placeholder {}
