using LsKd.Nets;
using ScottPlot;
using SkiaSharp;

namespace LsKd.Experiments.Analysis;

/// <summary>A panel's place in a figure, in pixels from the top-left corner.</summary>
public readonly record struct PanelRect(int X, int Y, int Width, int Height);

/// <summary>Figures as PNG grids of ScottPlot panels, text in DejaVu Sans (Debian's fonts-dejavu-core), written
/// atomically. Returns the panels' rectangles so tests can check that every panel was drawn.</summary>
public static class Figures
{
    public const int TitleHeight = 44;
    static readonly Color[] s_palette = new ScottPlot.Palettes.Category10().Colors;

    static Figures()
    {
        if (ScottPlot.Fonts.GetTypeface("DejaVu Sans", false, false) is { } face && face.FamilyName == "DejaVu Sans")
            ScottPlot.Fonts.Default = "DejaVu Sans";
    }

    public static Color ColorOf(int index) => s_palette[index % s_palette.Length];

    /// <summary>Renders a rows x columns grid of panels (null cells stay blank) under a title and saves it as PNG.</summary>
    public static IReadOnlyList<PanelRect> SaveGrid(string path, string title, Plot?[,] panels, int cellWidth = 380, int cellHeight = 330)
    {
        int rows = panels.GetLength(0), cols = panels.GetLength(1);
        int width = cols * cellWidth, height = TitleHeight + rows * cellHeight;
        var rects = new List<PanelRect>();
        using var surface = SKSurface.Create(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul));
        var canvas = surface.Canvas;
        canvas.Clear(SKColors.White);
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
            {
                var plot = panels[r, c];
                if (plot == null) continue;
                // Each panel renders on its own surface: ScottPlot clears the whole canvas it is given.
                var rect = new PanelRect(c * cellWidth, TitleHeight + r * cellHeight, cellWidth, cellHeight);
                using var panel = SKSurface.Create(new SKImageInfo(cellWidth, cellHeight, SKColorType.Rgba8888, SKAlphaType.Premul));
                plot.Render(panel.Canvas, cellWidth, cellHeight);
                using var snapshot = panel.Snapshot();
                canvas.DrawImage(snapshot, rect.X, rect.Y);
                rects.Add(rect);
            }
        using (var font = new SKFont(SKTypeface.FromFamilyName(ScottPlot.Fonts.Default, SKFontStyle.Bold), 20))
        using (var paint = new SKPaint { Color = SKColors.Black, IsAntialias = true })
            canvas.DrawText(title, width / 2f, 30, SKTextAlign.Center, font, paint);
        using var image = surface.Snapshot();
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        var bytes = data.ToArray();
        AtomicFile.Write(path, s => s.Write(bytes));
        return rects;
    }

    /// <summary>A point on a roofline: arithmetic intensity (flop per byte of minimum traffic) and achieved GFLOP/s.</summary>
    public readonly record struct RooflinePoint(string Engine, string Case, double Intensity, double Gflops);

    /// <summary>Roofline on log-log axes: the roof min(peak, bandwidth x intensity) from the machine's measured FMA
    /// peak and copy bandwidth, and one marker per case and engine (LsKd filled, peers hollow).</summary>
    public static void Roofline(string path, string title, double peakGflops, double bandwidthGBs, IReadOnlyList<RooflinePoint> points)
    {
        var plot = New(title, "arithmetic intensity (flop / byte, log scale)", "GFLOP/s (log scale)");
        double xMin = Math.Min(0.1, points.Select(p => p.Intensity).DefaultIfEmpty(1).Min() / 2);
        double xMax = Math.Max(4 * peakGflops / bandwidthGBs, points.Select(p => p.Intensity).DefaultIfEmpty(1).Max() * 2);
        var xs = Enumerable.Range(0, 200).Select(i => xMin * Math.Pow(xMax / xMin, i / 199.0)).ToArray();
        var roof = plot.Add.ScatterLine(xs.Select(Math.Log10).ToArray(), xs.Select(x => Math.Log10(Math.Min(peakGflops, bandwidthGBs * x))).ToArray(), Colors.Black);
        roof.LineWidth = 2;
        roof.LegendText = $"roof: {peakGflops:F0} GFLOP/s FMA peak, {bandwidthGBs:F1} GB/s copy";
        var engines = points.Select(p => p.Engine).Distinct().ToList();
        for (int e = 0; e < engines.Count; e++)
        {
            var mine = points.Where(p => p.Engine == engines[e] && p.Gflops > 0 && p.Intensity > 0).ToList();
            if (mine.Count == 0) continue;
            var sp = plot.Add.ScatterPoints(mine.Select(p => Math.Log10(p.Intensity)).ToArray(), mine.Select(p => Math.Log10(p.Gflops)).ToArray(), ColorOf(e));
            sp.MarkerSize = 9;
            sp.MarkerShape = e == 0 ? MarkerShape.FilledCircle : MarkerShape.OpenCircle;
            sp.LegendText = engines[e];
            if (e == 0)
                foreach (var p in mine)
                {
                    var label = plot.Add.Text(p.Case, Math.Log10(p.Intensity), Math.Log10(p.Gflops));
                    label.LabelFontSize = 9;
                    label.LabelFontColor = Colors.DimGray;
                }
        }
        double yMin = Math.Min(points.Where(p => p.Gflops > 0).Select(p => p.Gflops).DefaultIfEmpty(1).Min() / 2, bandwidthGBs * xMin);
        plot.Axes.SetLimits(Math.Log10(xMin), Math.Log10(xMax), Math.Log10(yMin), Math.Log10(peakGflops * 2));
        static string[] Labels(double[] ticks) => ticks.Select(t => Math.Pow(10, t).ToString("G3", System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        var xt = Enumerable.Range((int)Math.Floor(Math.Log10(xMin)), (int)Math.Ceiling(Math.Log10(xMax)) - (int)Math.Floor(Math.Log10(xMin)) + 1).Select(k => (double)k).ToArray();
        var yt = Enumerable.Range((int)Math.Floor(Math.Log10(yMin)), (int)Math.Ceiling(Math.Log10(peakGflops * 2)) - (int)Math.Floor(Math.Log10(yMin)) + 1).Select(k => (double)k).ToArray();
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(xt, Labels(xt));
        plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericManual(yt, Labels(yt));
        plot.ShowLegend(Alignment.LowerRight);
        var bytes = plot.GetImageBytes(1100, 750, ImageFormat.Png);
        AtomicFile.Write(path, s => s.Write(bytes));
    }

    /// <summary>Scatter of labelled point groups with a legend.</summary>
    public static Plot Scatter(string title, IReadOnlyList<(string Name, double[] X, double[] Y)> groups, string xLabel, string yLabel)
    {
        var plot = New(title, xLabel, yLabel);
        for (int g = 0; g < groups.Count; g++)
        {
            var sp = plot.Add.ScatterPoints(groups[g].X, groups[g].Y, ColorOf(g));
            sp.MarkerSize = 4;
            sp.LegendText = groups[g].Name;
        }
        plot.ShowLegend(Alignment.UpperRight);
        plot.Legend.FontSize = 10;
        return plot;
    }

    /// <summary>Bars with a category label under each.</summary>
    public static Plot Bars(string title, string[] labels, double[] values, string yLabel, IReadOnlyList<int>? colorIndex = null)
    {
        var plot = New(title, "", yLabel);
        var bars = labels.Select((_, i) => new Bar { Position = i, Value = values[i], FillColor = ColorOf(colorIndex?[i] ?? 0) }).ToArray();
        plot.Add.Bars(bars);
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(Enumerable.Range(0, labels.Length).Select(i => (double)i).ToArray(), labels);
        plot.Axes.Bottom.TickLabelStyle.Rotation = 40;
        plot.Axes.Bottom.TickLabelStyle.Alignment = Alignment.MiddleLeft;
        plot.Axes.Bottom.TickLabelStyle.FontSize = 10;
        plot.Axes.Bottom.MinimumSize = 80;
        plot.Axes.Margins(bottom: 0);
        return plot;
    }

    /// <summary>Heatmap with row and column labels and each cell's value written in it; row 0 at the top.</summary>
    public static Plot Heatmap(string title, double[,] values, string[] rowLabels, string[] colLabels, string xLabel, string yLabel, string format = "F2")
    {
        var plot = New(title, xLabel, yLabel);
        int rows = values.GetLength(0), cols = values.GetLength(1);
        var finite = values.Cast<double>().Where(double.IsFinite).ToArray();
        // Cells without a value (every run diverged) are drawn at the lowest colour and labelled n/a; a grid with no
        // value at all is drawn blank (the colour scale needs one finite value).
        var colours = new double[rows, cols];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) colours[r, c] = double.IsFinite(values[r, c]) ? values[r, c] : finite.Length > 0 ? finite.Min() : 0;
        var hm = plot.Add.Heatmap(colours);
        hm.Colormap = new ScottPlot.Colormaps.Viridis();
        hm.Extent = new CoordinateRect(0, cols, 0, rows);
        double mid = finite.Length > 0 ? (finite.Min() + finite.Max()) / 2 : 0;
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
            {
                var text = plot.Add.Text(double.IsFinite(values[r, c]) ? values[r, c].ToString(format, System.Globalization.CultureInfo.InvariantCulture) : "n/a",
                    c + 0.5, rows - r - 0.5);
                text.LabelAlignment = Alignment.MiddleCenter;
                text.LabelFontSize = 12;
                text.LabelFontColor = values[r, c] > mid ? Colors.Black : Colors.White;
            }
        if (finite.Length > 0) plot.Add.ColorBar(hm);
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(Enumerable.Range(0, cols).Select(c => c + 0.5).ToArray(), colLabels);
        plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericManual(Enumerable.Range(0, rows).Select(r => rows - r - 0.5).ToArray(), rowLabels);
        plot.Axes.SetLimits(0, cols, 0, rows);
        return plot;
    }

    /// <summary>Lines with markers; x is drawn on a log2 scale with the given values as tick labels.</summary>
    public static Plot LinesLog2(string title, IReadOnlyList<(string Name, double[] X, double[] Y)> series, string xLabel, string yLabel)
    {
        var plot = New(title, xLabel, yLabel);
        for (int s = 0; s < series.Count; s++)
        {
            var sc = plot.Add.Scatter(series[s].X.Select(Math.Log2).ToArray(), series[s].Y, ColorOf(s));
            sc.LegendText = series[s].Name;
            sc.MarkerSize = 7;
            sc.LineWidth = 2;
        }
        var ticks = series.SelectMany(s => s.X).Distinct().Order().ToArray();
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(ticks.Select(Math.Log2).ToArray(),
            ticks.Select(t => t.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture)).ToArray());
        plot.ShowLegend(Alignment.LowerLeft);
        return plot;
    }

    static Plot New(string title, string xLabel, string yLabel)
    {
        var plot = new Plot();
        plot.Title(title, 13);
        if (xLabel.Length > 0) plot.XLabel(xLabel, 12);
        if (yLabel.Length > 0) plot.YLabel(yLabel, 12);
        return plot;
    }
}
