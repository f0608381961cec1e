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


def test_ome_zarr_has_physical_scale(tmp_path, rng):
    image = rng.random((2, 32, 32)).astype(np.float32)
    io.write_ome_zarr(tmp_path / "o.ome.zarr", image, pixel_size=32.5)
    back, meta = io.read_image(tmp_path / "o.ome.zarr")
    np.testing.assert_array_equal(np.asarray(back), image)
    assert meta["pixel_size"] == pytest.approx(32.5)
    ms = meta["ome"]["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["t", "y", "x"]
    assert ms["axes"][-1]["unit"] == "micrometer"


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
