"""wbtool.Image, wbtool.Histogram and wbtool.Table: logged to real runs in the
test's store, files read back and decoded, tables round-tripped through artifacts."""

from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path
from typing import Any

import pytest

import wbtool
from tests.conftest import history_rows, quiet_run
from wbtool.media import png

pytestmark = pytest.mark.usefixtures("finish_runs")


def start(**kw: Any) -> Any:
    return quiet_run("media", **kw)


rows = history_rows


def decode_png(data: bytes) -> tuple[int, int, int, bytes]:
    """(width, height, channels, pixels) of a PNG of 8-bit rows without filters,
    as wbtool writes them."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        tag, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(tag + body)
        if tag == b"IHDR":
            header = body
        elif tag == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and interlace == 0
    channels = {0: 1, 4: 2, 2: 3, 6: 4}[color]
    raw = zlib.decompress(idat)
    stride = width * channels
    out = bytearray()
    for y in range(height):
        line = raw[y * (stride + 1):(y + 1) * (stride + 1)]
        assert line[0] == 0  # no filter
        out += line[1:]
    return width, height, channels, bytes(out)


def logged_png(run: Any, doc: dict[str, Any]) -> tuple[int, int, int, bytes]:
    path = run._folder.path / doc["path"]
    data = path.read_bytes()
    assert len(data) == doc["size"]
    return decode_png(data)


# -- the package --------------------------------------------------------------------------

def test_import_wbtool_leaves_media_unloaded_until_used() -> None:
    code = ("import sys, wbtool; assert 'wbtool.media' not in sys.modules; "
            "assert wbtool.Image.__module__ == 'wbtool.media.image'; "
            "assert {'Image', 'Histogram', 'Table'} <= set(dir(wbtool))")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# -- Image --------------------------------------------------------------------------------

def test_image_of_a_nested_list_is_written_as_a_png_in_the_run() -> None:
    run = start()
    run.log({"examples": wbtool.Image([[0, 255, 7], [128, 64, 9]], caption="two rows")})
    run.finish()
    (row,) = rows(run)
    doc = row["examples"]
    assert doc["_type"] == "image-file" and doc["format"] == "png"
    assert (doc["width"], doc["height"], doc["caption"]) == (3, 2, "two rows")
    assert doc["path"].startswith("media/images/examples_0_") and doc["path"].endswith(".png")
    assert logged_png(run, doc) == (3, 2, 1, bytes([0, 255, 7, 128, 64, 9]))
    from wbtool.hashing import hash_file

    assert hash_file(run._folder.path / doc["path"]) == (doc["digest"], doc["size"])


def test_floats_in_0_1_are_scaled_and_normalize_false_clips() -> None:
    scaled = wbtool.Image([[0.0, 1.0], [0.5, 0.25]])
    assert decode_png(scaled.to_bytes())[3] == bytes([0, 255, 127, 63])
    shifted = wbtool.Image([[-1.0, 1.0]])  # below 0: stretched to 0..1 first
    assert decode_png(shifted.to_bytes())[3] == bytes([0, 255])
    clipped = wbtool.Image([[-5, 300, 0.5, 42.9]], normalize=False)
    assert decode_png(clipped.to_bytes())[3] == bytes([0, 255, 0, 42])


def test_rgb_channel_last_and_channel_first_lists_give_the_same_image() -> None:
    last = [[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [10, 20, 30]]]  # (H, W, 3)
    first = [[[last[y][x][c] for x in range(2)] for y in range(2)] for c in range(3)]
    a, b = wbtool.Image(last), wbtool.Image(first)
    assert a == b and (a.width, a.height) == (2, 2)
    assert decode_png(a.to_bytes()) == (2, 2, 3, bytes([255, 0, 0, 0, 255, 0, 0, 0, 255,
                                                         10, 20, 30]))
    rgba = wbtool.Image([[[1, 2, 3, 4]]])
    assert decode_png(rgba.to_bytes()) == (1, 1, 4, bytes([1, 2, 3, 4]))
    assert decode_png(wbtool.Image([[5, 6]], mode="RGB").to_bytes())[2:] == (
        3, bytes([5, 5, 5, 6, 6, 6]))


def test_numpy_arrays_and_tensors_give_the_bytes_a_list_gives() -> None:
    np = pytest.importorskip("numpy")

    class Tensor:  # what a PyTorch tensor offers: detach().cpu().numpy()
        def __init__(self, array: Any) -> None:
            self.array = array

        def detach(self) -> Tensor:
            return self

        def cpu(self) -> Tensor:
            return self

        def numpy(self) -> Any:
            return self.array

    rng = np.random.default_rng(0)
    hwc = rng.random((5, 7, 3))
    from_list = wbtool.Image(hwc.tolist())
    assert wbtool.Image(hwc) == from_list
    assert wbtool.Image(Tensor(hwc.transpose(2, 0, 1))) == from_list  # (C, H, W)
    gray = rng.integers(0, 256, (4, 6), dtype=np.uint8)
    assert decode_png(wbtool.Image(gray[:, :, None]).to_bytes()) == (6, 4, 1, gray.tobytes())
    assert wbtool.Image(gray) == wbtool.Image(gray.tolist())
    assert wbtool.Image(np.array([[-3.0, 1.0]])) == wbtool.Image([[-3.0, 1.0]])


def tiny_bmp() -> bytes:
    row = bytes([0, 0, 255, 0])  # one blue-green-red pixel, padded to 4 bytes
    header = struct.pack("<2sIHHI", b"BM", 54 + len(row), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, 1, 1, 1, 24, 0, len(row), 2835, 2835, 0, 0)
    return header + info + row


GIF_1x1 = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c0000000001"
                        "0001000002024401003b")


def test_image_files_are_kept_as_they_are(tmp_path: Path) -> None:
    src = tmp_path / "pixel.png"
    src.write_bytes(png.encode_png(2, 1, 3, bytes([1, 2, 3, 4, 5, 6])))
    gif = tmp_path / "pixel.gif"
    gif.write_bytes(GIF_1x1)
    bmp = tmp_path / "picture"  # no extension: the format comes from the bytes
    bmp.write_bytes(tiny_bmp())
    run = start()
    run.log({"png": wbtool.Image(str(src)), "gif": wbtool.Image(gif), "bmp": wbtool.Image(bmp)})
    run.finish()
    (row,) = rows(run)
    for key, path, fmt, ext in (("png", src, "png", ".png"), ("gif", gif, "gif", ".gif"),
                                ("bmp", bmp, "bmp", ".bmp")):
        doc = row[key]
        assert (doc["format"], doc["width"], doc["height"]) == (fmt, 2 if key == "png" else 1, 1)
        assert doc["path"].endswith(ext)
        assert (run._folder.path / doc["path"]).read_bytes() == path.read_bytes()


def test_pillow_reads_our_pngs_and_pillow_images_are_taken() -> None:
    pil = pytest.importorskip("PIL.Image")
    import io

    rgba = [[[1, 2, 3, 4], [5, 6, 7, 8]], [[9, 10, 11, 12], [13, 14, 15, 255]]]
    with pil.open(io.BytesIO(wbtool.Image(rgba).to_bytes())) as decoded:
        assert decoded.mode == "RGBA"
        assert decoded.tobytes() == bytes(v for row in rgba for px in row for v in px)
    picture = pil.new("RGB", (3, 2), (10, 20, 30))
    img = wbtool.Image(picture, caption="pil")
    assert (img.format, img.width, img.height) == ("png", 3, 2)
    assert img.image.convert("RGB").getpixel((2, 1)) == (10, 20, 30)
    assert wbtool.Image(picture, mode="L").image.mode == "L"
    jpeg = wbtool.Image([[0, 128], [255, 64]], file_type="jpg")
    assert jpeg.format == "jpeg" and jpeg.to_bytes()[:3] == b"\xff\xd8\xff"
    run = start()
    run.log({"photo": jpeg})
    run.finish()
    assert rows(run)[0]["photo"]["path"].endswith(".jpg")


def test_other_formats_without_pillow_are_refused_in_words() -> None:
    import importlib.util

    if importlib.util.find_spec("PIL") is not None:
        pytest.skip("Pillow is installed")
    with pytest.raises(ValueError, match="writing JPEG needs Pillow"):
        wbtool.Image([[0]], file_type="jpg")
    with pytest.raises(ValueError, match="file_type must be png, jpg, gif or bmp"):
        wbtool.Image([[0]], file_type="tiff")


def test_matplotlib_figures_are_saved_as_png() -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(2, 1), dpi=50)
    fig.gca().plot([0, 1], [1, 0])
    img = wbtool.Image(fig)
    assert (img.format, img.width, img.height) == ("png", 100, 50)
    assert wbtool.Image(plt).width == 100  # pyplot itself: its current figure
    plt.close(fig)


def test_image_header_sizes() -> None:
    jpeg = (b"\xff\xd8" + b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + bytes(9)
            + b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, 480, 640, 3))
    assert png.sniff(jpeg) == ("jpeg", 640, 480)
    assert png.sniff(GIF_1x1) == ("gif", 1, 1)
    assert png.sniff(tiny_bmp()) == ("bmp", 1, 1)
    with pytest.raises(ValueError, match="cut short"):
        png.sniff(jpeg[:12])


def test_bad_images_are_refused_in_words(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no such image file: .*missing\.png"):
        wbtool.Image(str(tmp_path / "missing.png"))
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ValueError, match="not a PNG, JPEG, GIF or BMP image"):
        wbtool.Image(tmp_path / "notes.png")
    with pytest.raises(ValueError, match="ragged: expected 2 items at depth 2, found 1"):
        wbtool.Image([[1, 2], [3]])
    with pytest.raises(ValueError, match=r"cannot make an image of shape \(2, 2, 5\)"):
        wbtool.Image([[[0] * 5] * 2] * 2)
    with pytest.raises(ValueError, match="pixels must be numbers"):
        wbtool.Image([["a", "b"]])
    with pytest.raises(ValueError, match="masks are not supported yet"):
        wbtool.Image([[0]], masks={"predictions": {"mask_data": [[0]]}})
    with pytest.raises(ValueError, match="mode must be one of L, RGB, RGBA"):
        wbtool.Image([[0]], mode="CMYK")
    with pytest.raises(ValueError, match="cannot make an image of a int"):
        wbtool.Image(3)
    with pytest.raises(ValueError, match="has no pixels"):
        wbtool.Image([[]])


def test_bad_arrays_are_refused_in_words() -> None:
    np = pytest.importorskip("numpy")
    with pytest.raises(ValueError, match=r"cannot make an image of shape \(6, 6, 5\)"):
        wbtool.Image(np.zeros((6, 6, 5)))
    with pytest.raises(ValueError, match=r"cannot make an image of shape \(2, 2, 2, 2\)"):
        wbtool.Image(np.zeros((2, 2, 2, 2)))
    with pytest.raises(ValueError, match="pixels must be numbers, not <U1"):
        wbtool.Image(np.array([["a"]]))


def test_boxes_and_classes_are_kept_as_json() -> None:
    boxes = {"predictions": {"box_data": [{"position": {"minX": 0.1, "maxX": 0.4,
                                                        "minY": 0.2, "maxY": 0.5},
                                           "class_id": 1}],
                             "class_labels": {1: "cat"}}}
    with pytest.raises(ValueError, match="boxes must be plain data"):
        wbtool.Image([[0]], boxes=boxes)  # class_labels keyed by int: not JSON
    boxes["predictions"]["class_labels"] = {"1": "cat"}
    run = start()
    run.log({"img": wbtool.Image([[0]], boxes=boxes, classes=[{"id": 1, "name": "cat"}])})
    run.finish()
    doc = rows(run)[0]["img"]
    assert doc["boxes"] == boxes and doc["classes"] == [{"id": 1, "name": "cat"}]


def test_hostile_keys_make_safe_file_names() -> None:
    run = start()
    img = wbtool.Image([[1, 2]])
    keys = ["../x", "a/b", "../../../etc/passwd", "/abs", ".hidden", "é" * 200, "a\\b:c"]
    run.log({key: img for key in keys})
    run.finish()
    (row,) = rows(run)
    media = run._folder.path / "media" / "images"
    names = sorted(p.name for p in media.iterdir())
    assert len(names) == len(keys)
    for key in keys:
        path = row[key]["path"]
        folder, _, name = path.rpartition("/")
        assert folder == "media/images" and name in names
        assert not name.startswith(".") and len(name.encode()) < 160
    assert row["../x"]["path"].startswith("media/images/_x_0_")
    assert row["a/b"]["path"].startswith("media/images/a_b_0_")
    run2 = start()
    with pytest.raises(ValueError, match="holds a NUL character"):
        run2.log({"a\x00b": img, "fine": 1})
    run2.finish()
    assert rows(run2) == []
    assert not (run2._folder.path / "media").exists()


def test_a_list_of_images_is_one_value_with_each_file_written() -> None:
    run = start()
    images = [wbtool.Image([[0, 1]], caption="first"), wbtool.Image([[1, 0]])]
    run.log({"val/samples": images})
    run.log({"val/samples": tuple(images)})
    run.finish()
    first, second = rows(run)
    doc = first["val/samples"]
    assert doc["_type"] == "images/separated" and doc["count"] == 2
    assert (doc["width"], doc["height"], doc["format"]) == (2, 1, "png")
    assert doc["captions"] == ["first", None]
    pixels = [logged_png(run, {"path": p, "size": (run._folder.path / p).stat().st_size})[3]
              for p in doc["filenames"]]
    assert pixels == [bytes([0, 255]), bytes([255, 0])]
    assert all(p.startswith("media/images/val_samples_1_")
               for p in second["val/samples"]["filenames"])
    assert run.summary["val/samples"] == second["val/samples"]


def test_a_list_of_images_of_different_sizes_records_each_size(tmp_path: Path) -> None:
    """The row names one width, height and format only where every image
    has it; otherwise each image's, in order (it once gave the first's)."""
    gif = tmp_path / "three_by_two.gif"
    gif.write_bytes(b"GIF89a" + struct.pack("<HH", 3, 2) + b"\x00\x00\x00;")
    run = start()
    run.log({"samples": [wbtool.Image([[0, 1]]), wbtool.Image([[1], [0], [1]])]})
    run.log({"samples": [wbtool.Image([[0, 1]]), wbtool.Image(str(gif))]})
    run.log({"samples": [wbtool.Image([[0, 1]]), wbtool.Image([[1, 0]])]})
    run.finish()
    differ, formats, same = (r["samples"] for r in rows(run))
    assert differ["count"] == 2 and "width" not in differ and "height" not in differ
    assert (differ["widths"], differ["heights"], differ["format"]) == ([2, 1], [1, 3], "png")
    assert (formats["widths"], formats["heights"], formats["formats"]) == (
        [2, 3], [1, 2], ["png", "gif"])
    assert "format" not in formats
    assert (same["width"], same["height"], same["format"]) == (2, 1, "png")
    assert not {"widths", "heights", "formats"} & set(same)


def test_a_list_mixing_images_and_values_keeps_each_in_its_place() -> None:
    run = start()
    img = wbtool.Image([[5]])
    run.log({"mixed": [img, 3, wbtool.Image(img, caption="copy")]})
    run.finish()
    first, three, copy = rows(run)[0]["mixed"]
    assert three == 3 and first["path"] == copy["path"] and copy["caption"] == "copy"


def test_explicit_steps_name_the_files_and_dropped_steps_write_none() -> None:
    run = start()
    run.log({"loss": 1.0}, step=5)
    run.log({"img": wbtool.Image([[3]])}, step=5)
    run.log({"img": wbtool.Image([[4]])}, step=2)  # lower than the current step: dropped
    run.finish()
    (row,) = rows(run)
    assert row["_step"] == 5 and row["img"]["path"].startswith("media/images/img_5_")
    assert [p.name for p in (run._folder.path / "media" / "images").iterdir()] == [
        row["img"]["path"].rpartition("/")[2]]


def test_summary_keeps_the_last_media_dict() -> None:
    run = start()
    run.log({"img": wbtool.Image([[1]])})
    run.log({"img": wbtool.Image([[2]])})
    run.finish()
    last = rows(run)[-1]["img"]
    assert run.summary["img"] == last and "_1_" in last["path"]
    summary = wbtool.Api().run(run.id).summary
    assert summary["img"] == last


def test_media_set_in_the_summary_by_hand_write_their_files() -> None:
    """run.summary["img"] = wbtool.Image(...) kept a reference to a file that
    was never written: the image was lost."""
    run = start()
    run.log({"loss": 1.0})
    run.summary["img"] = wbtool.Image([[1, 2]])
    run.summary.update({"table": wbtool.Table(columns=["a"], data=[[1]])})
    run.finish()
    summary = wbtool.Api().run(run.id).summary
    assert logged_png(run, summary["img"])[:2] == (2, 1)
    table = run._folder.path / summary["table"]["path"]
    assert json.loads(table.read_text())["data"] == [[1]]


def test_media_logged_to_a_disabled_run_is_built_and_writes_nothing() -> None:
    with wbtool.init(mode="disabled") as run:
        run.log({"img": wbtool.Image([[1, 2]]), "imgs": [wbtool.Image([[1]])] * 2,
                 "table": wbtool.Table(columns=["a"], data=[[1]]),
                 "hist": wbtool.Histogram([1, 2, 3])})
        assert run.summary["img"]["_type"] == "image-file"
        assert "path" not in run.summary["img"]
        assert run.summary["table"]["nrows"] == 1
        assert run.summary["imgs"]["count"] == 2
        assert sum(run.summary["hist"]["values"]) == 3


# -- Histogram ----------------------------------------------------------------------------

def test_histogram_of_a_list() -> None:
    hist = wbtool.Histogram([1, 2, 2, 3, 3, 3, float("nan"), float("inf")], num_bins=4)
    assert hist.to_json() == {"_type": "histogram", "values": [1, 0, 2, 3],
                              "bins": [1.0, 1.5, 2.0, 2.5, 3.0]}
    run = start()
    run.log({"gradients": hist, "nested": {"h": wbtool.Histogram([5, 5])}})
    run.finish()
    (row,) = rows(run)
    assert row["gradients"] == hist.to_json()
    one = row["nested/h"]  # one value: the bin around it is 1 wide
    assert one["values"] == [0] * 32 + [2] + [0] * 31 and one["bins"][0] == 4.5
    assert len(one["bins"]) == len(one["values"]) + 1 == 65


def test_histogram_bins_as_numpy_bins() -> None:
    np = pytest.importorskip("numpy")
    rng = np.random.default_rng(1)
    for data in (rng.normal(size=5000), rng.integers(-50, 50, 1000).astype(float),
                 np.linspace(0, 1, 97), np.array([0.1, 0.2, 0.3]) * 3):
        counts, edges = np.histogram(data, bins=64)
        from_list = wbtool.Histogram(data.tolist())
        assert from_list.histogram == counts.tolist() and from_list.bins == edges.tolist()
        assert wbtool.Histogram(data) == from_list
    big = rng.normal(size=1000)
    run = start()
    run.log({"big": big})  # a large array is logged as a histogram: the same one
    run.finish()
    assert rows(run)[0]["big"] == wbtool.Histogram(big).to_json()


def test_histogram_limits_and_bad_input() -> None:
    with pytest.warns(UserWarning, match=r"num_bins=10000\) asks for more than 512 bins"):
        assert len(wbtool.Histogram(list(range(2000)), num_bins=10_000).histogram) == 512
    assert wbtool.Histogram([math.nan]).to_json() == {"_type": "histogram", "values": [],
                                                      "bins": []}
    given = wbtool.Histogram(np_histogram=([1, 2], [0, 1, 2]))
    assert given.to_json() == {"_type": "histogram", "values": [1, 2], "bins": [0.0, 1.0, 2.0]}
    for kwargs, words in (
        ({"sequence": ["a", 1]}, "made of numbers; 'a' is not one"),
        ({"sequence": "abc"}, "not str"),
        ({"sequence": [1], "num_bins": 0}, "num_bins must be a whole number"),
        ({}, "needs a sequence"),
        ({"np_histogram": ([1, 2], [0, 1])}, "one more bin edge than counts"),
        ({"np_histogram": ([1], [1, 0])}, "must not decrease"),
        ({"np_histogram": ([-1], [0, 1])}, "counts must be numbers of at least 0"),
        ({"np_histogram": ([1] * 513, list(range(514)))}, "at most 512 bins"),
        ({"np_histogram": 5}, "must be a pair"),
        ({"sequence": [-1e308, 1e308]}, "too wide a range"),
    ):
        with pytest.raises(ValueError, match=words):
            wbtool.Histogram(**kwargs)


def test_too_many_bins_warn_once_for_each_line_that_asks(tmp_path: Path) -> None:
    """A histogram holds 512 bins, as in W&B; asking for more in a training
    loop says so once, not at every step; 512 or fewer say nothing."""
    script = tmp_path / "bins.py"
    script.write_text(textwrap.dedent("""\
        import wbtool
        for step in range(20):
            h = wbtool.Histogram(list(range(2000)), num_bins=1000)
            assert len(h.histogram) == 512 and len(h.bins) == 513
        wbtool.Histogram(list(range(2000)), num_bins=512)
        wbtool.Histogram(list(range(2000)), num_bins=700)
    """))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}  # Python's default
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         check=True, timeout=60, env=env)
    said = [ln for ln in res.stderr.splitlines() if "wbtool:" in ln]
    assert len(said) == 2 and "num_bins=1000)" in said[0] and "num_bins=700)" in said[1]
    assert all("it has 512" in ln for ln in said)


# -- Table --------------------------------------------------------------------------------

def test_table_building_and_reading() -> None:
    table = wbtool.Table(columns=["id", "label"], data=[[1, "cat"], [2, "dog"]])
    table.add_data(3, None)
    table.add_column("score", [0.5, 0.25, 1.0])
    assert table.columns == ["id", "label", "score"]
    assert table.data == [[1, "cat", 0.5], [2, "dog", 0.25], [3, None, 1.0]]
    assert table.get_column("label") == ["cat", "dog", None]
    assert table.get_index() == [0, 1, 2]
    assert table == wbtool.Table(columns=["id", "label", "score"], rows=table.data)
    assert table != wbtool.Table(columns=["id", "label", "score"], data=table.data[:2])
    assert wbtool.Table().columns == ["Input", "Expected", "Predicted"]
    with pytest.raises(ValueError, match=r"expects 3 values \(columns"):
        table.add_data(4, "cow")
    with pytest.raises(ValueError, match="column 'label' holds str values; 5 is a number"):
        table.add_data(4, 5, 0.1)
    mixed = wbtool.Table(columns=["x"], data=[[1], ["one"]], allow_mixed_types=True)
    assert mixed.get_column("x") == [1, "one"]
    with pytest.raises(ValueError, match="column 'x' is not optional"):
        wbtool.Table(columns=["x"], data=[[None]], optional=False)
    with pytest.raises(ValueError, match="has 2 values; the table has 3 rows"):
        table.add_column("short", [1, 2])
    with pytest.raises(ValueError, match="already has a column 'id'"):
        table.add_column("id", [1, 2, 3])
    with pytest.raises(ValueError, match="no column 'nope'"):
        table.get_column("nope")
    with pytest.raises(ValueError, match="INCREMENTAL"):
        wbtool.Table(columns=["x"], log_mode="INCREMENTAL")
    assert table.columns == ["id", "label", "score"]  # refused calls changed nothing


def test_table_columns_or_data_of_the_wrong_kind_are_refused() -> None:
    """columns="abc" made the columns a, b and c; data=5 failed from inside."""
    with pytest.raises(TypeError, match="columns must be a list of column names, not 'abc'"):
        wbtool.Table(columns="abc")
    for bad in (5, "rows", object()):
        with pytest.raises(TypeError, match="data must be a list of rows, not "):
            wbtool.Table(columns=["a"], data=bad)
    assert wbtool.Table(columns=("a",), data=iter([[1]])).data == [[1]]


def test_table_with_pandas_and_numpy() -> None:
    pd = pytest.importorskip("pandas")
    np = pytest.importorskip("numpy")
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    table = wbtool.Table(dataframe=df)
    assert table.columns == ["a", "b"] and table.data == [[1, "x"], [2, "y"]]
    assert wbtool.Table(data=df) == table
    assert table.get_dataframe().equals(df)
    assert table.get_column("a", convert_to="numpy").tolist() == [1, 2]
    assert wbtool.Table(columns=["p", "q"], data=np.eye(2)).data == [[1.0, 0.0], [0.0, 1.0]]


def test_table_logged_to_a_run_is_a_json_file_with_its_images() -> None:
    run = start()
    img = wbtool.Image([[9, 8]], caption="pic")
    table = wbtool.Table(columns=["id", "image", "tags"], data=[[1, img, {"a"}],
                                                                [2, None, ["b"]]])
    run.log({"eval/preds": table})
    run.finish()
    (row,) = rows(run)
    doc = row["eval/preds"]
    assert doc["_type"] == "table-file" and (doc["ncols"], doc["nrows"]) == (3, 2)
    assert doc["path"].startswith("media/table/eval_preds_0_")
    assert doc["path"].endswith(".table.json")
    body = (run._folder.path / doc["path"]).read_bytes()
    assert len(body) == doc["size"]
    content = json.loads(body)
    assert content["columns"] == ["id", "image", "tags"]
    cell = content["data"][0][1]
    assert cell["_type"] == "image-file" and cell["caption"] == "pic"
    assert logged_png(run, cell) == (2, 1, 1, bytes([9, 8]))
    assert content["data"][0][2] == ["a"] and content["data"][1] == [2, None, ["b"]]


def test_table_image_and_histogram_round_trip_through_an_artifact() -> None:
    img = wbtool.Image([[[1, 2, 3], [4, 5, 6]]], caption="rgb")
    table = wbtool.Table(columns=["id", "image", "score"],
                         data=[[1, img, 0.5], [2, None, 0.25]])
    hist = wbtool.Histogram([1, 2, 3], num_bins=3)
    with start() as run:
        art = wbtool.Artifact("evals", "predictions")
        art.add(table, "preds")
        art.add(img, "sample")
        art.add(hist, "dist")
        run.log_artifact(art)
    with start() as run:
        used = run.use_artifact("evals:latest")
        got = used.get("preds")
        assert isinstance(got, wbtool.Table) and got == table
        assert got.data[0][1].caption == "rgb"
        sample = used.get("sample")
        assert isinstance(sample, wbtool.Image) and sample == img
        assert decode_png(sample.to_bytes()) == (2, 1, 3, bytes(range(1, 7)))
        assert used.get("dist") == hist
        names = {e for e in used.manifest.entries}
        assert {"preds.table.json", "sample.image-file.json", "dist.histogram.json"} <= names
        assert f"media/images/{img.digest[:20]}.png" in names
        assert used.get("missing") is None


def test_runs_show_and_history_take_media_rows(cli: Any) -> None:
    run = start()
    run.log({"img": wbtool.Image([[1, 2]]), "hist": wbtool.Histogram([1, 2]), "loss": 0.5,
             "table": wbtool.Table(columns=["a"], data=[[1]])})
    run.log({"loss": 0.25, "imgs": [wbtool.Image([[1]])] * 3,
             "sizes": [wbtool.Image([[1]]), wbtool.Image([[1, 2]])]})
    run.finish()
    shown = cli("runs", "show", run.id, check=True).out
    assert "sizes: 2 images of different sizes png" in shown
    assert "img: image 2x1 png: media/images/img_0_" in shown
    assert "hist: histogram of 2 values in 64 bins" in shown
    assert "table: table of 1 rows x 1 columns: media/table/" in shown
    assert "imgs: 3 images 1x1 png" in shown and "loss" in shown
    lines = cli("runs", "history", run.id, check=True).out.splitlines()
    assert json.loads(lines[0])["img"] == rows(run)[0]["img"]
    csv = cli("runs", "history", run.id, "-f", "csv", check=True).out
    assert '"{""_type"":""image-file""' in csv  # CSV cells hold the dict as JSON


def test_readme_media_example_runs() -> None:
    import re

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text[text.index("### Media: wbtool.Image"):]
    (block,) = re.findall(r"```python\n(.*?)```", section, re.DOTALL)[:1]
    with start() as run:
        batch = [([[0, 1], [1, 0]], 3), ([[1, 1], [0, 0]], 5)]
        exec(block, {"wbtool": wbtool, "run": run, "batch": batch, "grads": [0.1, -0.2, 0.3],
                     "rows": [[1, wbtool.Image([[7]]), "cat"]]})
    (row,) = rows(run)
    assert row["examples"]["captions"] == ["3", "5"]
    assert row["gradients"]["_type"] == "histogram" and row["preds"]["nrows"] == 1


def test_true_or_false_arguments_of_media_refuse_strings() -> None:
    """Each read any non-empty string as true: ``inject="no"`` injected the
    page's head, ``normalize="no"`` stretched the pixels, ``optional="no"``
    let a column hold None."""
    page = "<html><head></head><body>hi</body></html>"
    assert wbtool.Html(page, inject=False).html == page
    calls = [
        ("inject", lambda: wbtool.Html(page, inject="no")),
        ("normalize", lambda: wbtool.Image([[0.0, 0.5]], normalize="no")),
        ("optional", lambda: wbtool.Table(columns=["a"], data=[[1]], optional="no")),
        ("optional", lambda: wbtool.Table(columns=["a", "b"], optional=[True, "no"])),
        ("allow_mixed_types", lambda: wbtool.Table(columns=["a"], allow_mixed_types="no")),
        ("optional", lambda: wbtool.Table(columns=["a"], data=[[1]]).add_column(
            "b", [None], optional="no")),
        ("newline", lambda: wbtool.termlog("x", newline="no")),
        ("repeat", lambda: wbtool.termwarn("x", repeat="no")),
        ("prefix", lambda: wbtool.termerror("x", prefix="no")),
    ]
    for arg, call in calls:
        with pytest.raises(TypeError, match=f"{arg} must be True or False, not 'no'"):
            call()
    table = wbtool.Table(columns=["a"], data=[[1]], optional=False)
    with pytest.raises(ValueError):
        table.add_data(None)
