// dps: open one level's final TIFFs (results/<dataset>/<level>/final/*.tif) in Fiji as one
// labelled stack. Each slice is labelled "<stage>: field <i>"; stages on a coarser grid are
// resized (bicubic) to the finest grid among them, whose pixel size the stack keeps.
// Run: Plugins > Macros > Run... (asks for the folder), or
//   ImageJ --run open_run_in_fiji.ijm 'dir=results/simulated/500/final'
arg = getArgument();
if (startsWith(arg, "dir=")) dir = substring(arg, 4);
else dir = getDirectory("Choose results/<dataset>/<level>/final");
if (!endsWith(dir, "/") && !endsWith(dir, File.separator)) dir = dir + File.separator;
setBatchMode(true);
list = getFileList(dir);
titles = newArray(0);
maxW = 0;
maxH = 0;
for (i = 0; i < list.length; i++) {
    if (endsWith(list[i], ".tif")) {
        open(dir + list[i]);
        if (getWidth() > maxW) { maxW = getWidth(); maxH = getHeight(); }
        titles = Array.concat(titles, getTitle());
    }
}
if (titles.length == 0) exit("No .tif files in " + dir);
joined = "";
for (i = 0; i < titles.length; i++) {
    selectImage(titles[i]);
    stage = replace(titles[i], ".tif", "");
    n = nSlices;
    labels = newArray(n);
    for (s = 1; s <= n; s++) {
        setSlice(s);
        label = getInfo("slice.label");
        if (label == "") label = "field " + (s - 1);
        labels[s - 1] = stage + ": " + label;
    }
    if (getWidth() != maxW)
        run("Size...", "width=" + maxW + " height=" + maxH + " depth=" + n + " average interpolation=Bicubic");
    for (s = 1; s <= n; s++) {
        setSlice(s);
        setMetadata("Label", labels[s - 1]);
    }
    rename("dps_" + i);
    joined = joined + " image" + (i + 1) + "=dps_" + i;
}
if (titles.length > 1) run("Concatenate...", "title=dps_run" + joined);
else rename("dps_run");
setBatchMode("exit and display");
