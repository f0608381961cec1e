"""Reading and writing: TIFF, folders of TIFFs, Zarr, OME-Zarr; atomic writes; validation."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from dps_stages import io


def test_tiff_roundtrip_keeps_pixel_size(tmp_path, rng):
    image = rng.random((3, 20, 24)).astype(np.float32)
    path = io.write_tiff(tmp_path / "a.tif", image, pixel_size=32.5)
    back, meta = io.read_image(path)
    np.testing.assert_array_equal(back, image)
    assert meta["pixel_size"] == pytest.approx(32.5, rel=1e-6)
    with tifffile.TiffFile(path) as tif:  # ImageJ can read it: hyperstack metadata present
        assert tif.is_imagej
        assert tif.imagej_metadata["unit"] == "um"


def test_folder_of_tiffs_in_natural_order(tmp_path):
    for i in (1, 2, 10, 3):
        tifffile.imwrite(tmp_path / f"frame_{i}.tiff", np.full((4, 5), i, np.uint16))
    stack, meta = io.read_image(tmp_path)
    assert stack.shape == (4, 4, 5)
    assert [int(f[0, 0]) for f in stack] == [1, 2, 3, 10]
    assert meta["files"][-1] == "frame_10.tiff"


def test_folder_with_mixed_shapes_names_the_files(tmp_path):
    tifffile.imwrite(tmp_path / "a1.tif", np.zeros((4, 5), np.uint16))
    tifffile.imwrite(tmp_path / "a2.tif", np.zeros((4, 6), np.uint16))
    with pytest.raises(io.DpsInputError, match=r"a2.tif: \(4, 6\)"):
        io.read_image(tmp_path)


def test_zarr_group_roundtrip_is_chunked_by_tile(tmp_path, rng):
    image = rng.random((2, 9, 40, 40)).astype(np.float32)
    io.write_stage(tmp_path / "s.zarr", image, {"pixel_size": 65.0, "x": np.float32(2)}, tile=16)
    arr, attrs = io.open_stage(tmp_path / "s.zarr")
    assert arr.chunksize == (1, 1, 16, 16)
    np.testing.assert_array_equal(arr.compute(), image)
    assert attrs["pixel_size"] == 65.0 and attrs["x"] == 2.0


def _axes_types(multiscale):
    return [a.get("type") for a in multiscale["axes"]]


def test_ome_zarr_fields_are_separate_images_that_validate(tmp_path, rng):
    """Independent images: a bioformats2raw collection of NGFF images, no time axis, valid by
    the NGFF models (ome-zarr-models), read back as the stack with its pixel size."""
    import zarr
    from ome_zarr_models.v05 import BioFormats2Raw, Image

    image = rng.random((3, 32, 40)).astype(np.float32)
    path = io.write_ome_zarr(tmp_path / "o.ome.zarr", image, 32.5, {"stage": "sim_dbpn"})
    root = zarr.open_group(str(path), mode="r")
    collection = BioFormats2Raw.from_zarr(root)
    assert collection.image_paths == ["0", "1", "2"]
    assert io.ome_series(root) == ["0", "1", "2"]
    for name in collection.image_paths:
        ms = io.ome_attrs(dict(root[name].attrs))["multiscales"][0]
        assert "time" not in _axes_types(ms)
        assert [a["name"] for a in ms["axes"]] == ["y", "x"]
        Image.from_zarr(root[name])  # each field is a valid NGFF image on its own
        np.testing.assert_array_equal(root[name]["s0"][...], image[int(name)])
    back, meta = io.read_image(path)
    np.testing.assert_array_equal(np.asarray(back), image)
    assert meta["pixel_size"] == pytest.approx(32.5)
    assert meta["stage"] == "sim_dbpn"


def test_ome_zarr_single_image_and_time_series(tmp_path, rng):
    import zarr
    from ome_zarr_models.v05 import Image

    single = rng.random((24, 24)).astype(np.float32)
    path = io.write_ome_zarr(tmp_path / "one.ome.zarr", single, 40.0)
    ms = Image.from_zarr(zarr.open_group(str(path), mode="r")).ome_attributes.multiscales[0]
    assert [a.name for a in ms.axes] == ["y", "x"]
    assert io.read_image(path)[1]["pixel_size"] == pytest.approx(40.0)
    movie = rng.random((4, 24, 24)).astype(np.float32)
    path = io.write_ome_zarr(tmp_path / "t.ome.zarr", movie, 40.0, time_interval=0.5)
    ms = Image.from_zarr(zarr.open_group(str(path), mode="r")).ome_attributes.multiscales[0]
    assert [(a.name, a.type) for a in ms.axes][0] == ("t", "time")
    np.testing.assert_array_equal(np.asarray(io.read_image(path)[0]), movie)


def test_imagej_tiff_fields_are_slices_not_frames(tmp_path, rng):
    image = rng.random((3, 16, 16)).astype(np.float32)
    path = io.write_tiff(tmp_path / "f.tif", image, 65.0)
    with tifffile.TiffFile(path) as tif:
        meta = tif.imagej_metadata
        assert meta["slices"] == 3 and "frames" not in meta
        assert meta["Labels"] == ["field 0", "field 1", "field 2"]
    path = io.write_tiff(tmp_path / "t.tif", image, 65.0, time_interval=2.0)
    with tifffile.TiffFile(path) as tif:
        assert tif.imagej_metadata["frames"] == 3 and "slices" not in tif.imagej_metadata


def test_tiff_over_the_classic_limit_is_an_ome_bigtiff(tmp_path, rng, monkeypatch):
    """Over 4 GiB of pixels (the limit lowered here) a TIFF is an OME BigTIFF with the pixel
    size, written whole or streamed tile by tile, and read back exactly."""
    import dask.array as da

    from dps_stages import io_tiff

    monkeypatch.setattr(io_tiff, "CLASSIC_TIFF_LIMIT", 1000)
    image = rng.random((2, 40, 56)).astype(np.float32)
    for name, data in [("whole", image), ("tiled", da.from_array(image, chunks=(1, 16, 16)))]:
        path = io.write_tiff(tmp_path / f"{name}.tif", data, 32.5)
        with tifffile.TiffFile(path) as tif:
            assert tif.is_bigtiff and tif.is_ome and not tif.is_imagej
            assert tif.series[0].axes == "ZYX"
        back, meta = io.read_image(path, lazy=True)
        np.testing.assert_array_equal(np.asarray(back), image)
        assert meta["pixel_size"] == pytest.approx(32.5)
    monkeypatch.undo()  # under the limit: the ImageJ hyperstack as before
    with tifffile.TiffFile(io.write_tiff(tmp_path / "small.tif", image, 32.5)) as tif:
        assert tif.is_imagej and not tif.is_bigtiff


def test_ome_zarr_streamed_equals_whole_with_block_mean_levels(tmp_path, rng):
    """A dask array is written tile by tile; the pyramid's levels are block means, so they do
    not depend on the chunking (ome-zarr's default resize does) and equal the whole write's."""
    import dask.array as da
    import zarr

    image = rng.random((600, 1030)).astype(np.float32)
    whole = io.write_ome_zarr(tmp_path / "w.ome.zarr", image, 30.0)
    tiled = io.write_ome_zarr(
        tmp_path / "t.ome.zarr", da.from_array(image, chunks=(256, 300)), 30.0
    )
    a, b = (zarr.open_group(str(p), mode="r") for p in (whole, tiled))
    assert sorted(a.array_keys()) == sorted(b.array_keys()) == ["s0", "s1"]
    for key in ("s0", "s1"):
        np.testing.assert_array_equal(a[key][...], b[key][...])
    means = image.reshape(300, 2, 515, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(a["s1"][...], means, rtol=1e-6)


@pytest.mark.parametrize(("size", "unit", "nm"), [(0.065, None, 65.0), (32.5, "nm", 32.5)])
def test_ome_tiff_physical_size(tmp_path, size, unit, nm):
    meta = {"axes": "YX", "PhysicalSizeX": size, "PhysicalSizeY": size}
    if unit:
        meta |= {"PhysicalSizeXUnit": unit, "PhysicalSizeYUnit": unit}
    tifffile.imwrite(tmp_path / "a.ome.tif", np.ones((16, 16), np.uint16), ome=True, metadata=meta)
    assert io.read_image(tmp_path / "a.ome.tif")[1]["pixel_size"] == pytest.approx(nm)


def test_interrupted_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.zarr"
    with pytest.raises(RuntimeError), io.atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "zarr.json").write_text("{}")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_raw_sim_shapes():
    assert io.as_raw_sim(np.zeros((9, 4, 4)), "x").shape == (1, 9, 4, 4)
    assert io.as_raw_sim(np.zeros((18, 4, 4)), "x").shape == (2, 9, 4, 4)
    assert io.as_raw_sim(np.zeros((3, 9, 4, 4)), "x").shape == (3, 9, 4, 4)
    with pytest.raises(io.DpsInputError, match=r"frames.tif: raw 2D-SIM needs 9 frames.*8 frames"):
        io.as_raw_sim(np.zeros((8, 4, 4)), "frames.tif")


def test_unreadable_and_missing_inputs(tmp_path):
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"not a tiff at all")
    with pytest.raises(io.DpsInputError, match="broken.tif: unreadable TIFF"):
        io.read_image(bad)
    with pytest.raises(io.DpsInputError, match="no such file"):
        io.read_image(tmp_path / "nope.tif")
    (tmp_path / "empty").mkdir()
    with pytest.raises(io.DpsInputError, match="holds no .tif"):
        io.read_image(tmp_path / "empty")


def test_real_raw_sim_folder(shared_data):
    folder = shared_data / "vdl-sim-microtubules" / "raw" / "GT"
    stack, meta = io.read_image(folder)
    raw = io.as_raw_sim(stack, folder)
    assert raw.shape == (1, 9, 512, 512)
    assert meta["files"][0] == "640-1_1.tiff" and meta["files"][-1] == "640-1_9.tiff"


# --------------------------------------------------------------------------------------------
# streaming TIFF: lazy reading, tile-by-tile writing


def test_lazy_tiff_reads_what_the_eager_reader_reads(tmp_path):
    import dask.array as da
    import tifffile

    rng = np.random.default_rng(14)
    stack = rng.random((2, 70, 90)).astype(np.float32)
    io.write_tiff(tmp_path / "a.tif", stack, 80.0)  # contiguous: read by byte ranges
    tifffile.imwrite(tmp_path / "b.tif", (stack[0] * 1000).astype(">u2"), byteorder=">",
                     compression="zlib", tile=(32, 32))  # fmt: skip
    for name in ("a.tif", "b.tif"):
        eager, meta_e = io.read_image(tmp_path / name)
        lazy, meta_l = io.read_image(tmp_path / name, lazy=True, tile=32)
        assert isinstance(lazy, da.Array) and max(lazy.chunks[-1]) <= 64
        assert meta_l["pixel_size"] == meta_e["pixel_size"]
        np.testing.assert_array_equal(lazy.compute(), eager)
        np.testing.assert_array_equal(lazy[..., 5:40:3, 31:70].compute(), eager[..., 5:40:3, 31:70])


def test_lazy_tiff_of_a_truncated_file_names_it(tmp_path):
    path = tmp_path / "cut.tif"
    io.write_tiff(path, np.ones((64, 64), np.float32), None)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 1000])
    with pytest.raises(io.DpsInputError, match="cut.tif"):
        arr, _ = io.read_image(path, lazy=True, tile=16)
        arr.compute()


def test_tiff_written_tile_by_tile_is_the_imagej_file_of_the_whole(tmp_path):
    import dask.array as da
    import tifffile

    rng = np.random.default_rng(3)
    stack = rng.random((3, 50, 70)).astype(np.float32)
    io.write_tiff(tmp_path / "whole.tif", stack, 65.0)
    io.write_tiff(tmp_path / "tiles.tif", da.from_array(stack, chunks=(1, 16, 32)), 65.0)
    with tifffile.TiffFile(tmp_path / "tiles.tif") as tif:
        assert tif.is_imagej and tif.imagej_metadata["unit"] == "um"
        np.testing.assert_array_equal(tif.asarray(), stack)
    assert (tmp_path / "tiles.tif").read_bytes() == (tmp_path / "whole.tif").read_bytes()
    assert not list(tmp_path.glob(".*tmp-*"))
