"""wbtool.Audio, wbtool.Video, wbtool.Html and wbtool.Object3D: logged to real
runs in the test's store, their files read back (WAV by the wave module, GIF
by a decoder written here), round-tripped through artifacts."""

from __future__ import annotations

import io
import json
import math
import struct
import subprocess
import sys
import wave
from pathlib import Path
from typing import Any

import pytest

import wbtool
from tests.conftest import history_rows, quiet_run

pytestmark = pytest.mark.usefixtures("finish_runs")


def start(**kw: Any) -> Any:
    return quiet_run("media", **kw)


rows = history_rows


def logged(run: Any, doc: dict[str, Any]) -> bytes:
    """The bytes of a logged file, checked against its document's digest and size."""
    from wbtool.hashing import hash_file

    path = run._folder.path / doc["path"]
    assert hash_file(path) == (doc["digest"], doc["size"])
    return path.read_bytes()


def read_wav(data: bytes) -> tuple[int, int, int, list[int]]:
    """(channels, sample rate, frames, samples) of a 16-bit WAV file's bytes."""
    with wave.open(io.BytesIO(data), "rb") as w:
        assert w.getsampwidth() == 2 and w.getcomptype() == "NONE"
        channels, rate, frames = w.getnchannels(), w.getframerate(), w.getnframes()
        raw = w.readframes(frames)
    return channels, rate, frames, list(struct.unpack(f"<{len(raw) // 2}h", raw))


# -- a GIF decoder, to check the files wbtool writes ---------------------------------------

def lzw_decode(data: bytes, min_code: int) -> bytes:
    """GIF's LZW, strictly: the data must end with the end code."""
    clear, end = 1 << min_code, (1 << min_code) + 1
    pos, size = 0, min_code + 1
    table: list[bytes] = []
    prev: bytes | None = None
    out = bytearray()
    while True:
        assert pos + size <= len(data) * 8, "the data ends without the end code"
        chunk = int.from_bytes(data[pos // 8:pos // 8 + 3], "little")
        code = (chunk >> (pos % 8)) & ((1 << size) - 1)
        pos += size
        if code == clear:
            table = [bytes([i]) for i in range(clear)] + [b"", b""]
            size, prev = min_code + 1, None
            continue
        if code == end:
            break
        assert table, "the data does not start with a clear code"
        if prev is None:
            entry = table[code]
        else:
            if code < len(table):
                entry = table[code]
                new = prev + entry[:1]
            else:
                assert code == len(table), f"code {code} is not in the table yet"
                entry = new = prev + prev[:1]
            if len(table) < 4096:
                table.append(new)
            if len(table) == 1 << size and size < 12:
                size += 1
        out += entry
        prev = entry
    assert (pos + 7) // 8 == len(data), "bytes follow the end code"
    return bytes(out)


def decode_gif(data: bytes) -> dict[str, Any]:
    """Width, height, loop count and the frames (delay in 1/100 s, RGB pixels)
    of a GIF89a file with a palette of its own for each frame."""
    assert data[:6] == b"GIF89a"
    width, height, flags, _, _ = struct.unpack("<HHBBB", data[6:13])
    assert not flags & 0x80  # no global palette: each frame has its own
    pos, frames, delay, loops = 13, [], None, None
    while True:
        tag = data[pos]
        if tag == 0x3B:
            assert pos == len(data) - 1
            break
        if tag == 0x21:
            label, n = data[pos + 1], data[pos + 2]
            body = data[pos + 3:pos + 3 + n]
            if label == 0xF9:
                assert n == 4
                (delay,) = struct.unpack("<H", body[1:3])
            elif label == 0xFF and body == b"NETSCAPE2.0":
                sub = data[pos + 3 + n:pos + 3 + n + 4]
                assert sub[:2] == b"\x03\x01"
                (loops,) = struct.unpack("<H", sub[2:4])
            pos += 3 + n
            while data[pos]:  # the extension's sub-blocks
                pos += data[pos] + 1
            pos += 1
            continue
        assert tag == 0x2C
        left, top, w, h, flags = struct.unpack("<HHHHB", data[pos + 1:pos + 10])
        assert (left, top, w, h) == (0, 0, width, height) and flags & 0x80
        pos += 10
        ncolours = 2 << (flags & 7)
        palette = data[pos:pos + 3 * ncolours]
        pos += 3 * ncolours
        min_code = data[pos]
        pos += 1
        lzw = bytearray()
        while data[pos]:
            lzw += data[pos + 1:pos + 1 + data[pos]]
            pos += data[pos] + 1
        pos += 1
        indexes = lzw_decode(bytes(lzw), min_code)
        assert len(indexes) == w * h and max(indexes) < ncolours
        rgb = b"".join(palette[3 * i:3 * i + 3] for i in indexes)
        frames.append((delay, rgb))
        delay = None
    return {"width": width, "height": height, "loops": loops, "frames": frames}


def rgb_frames(frames: Any) -> list[bytes]:
    """The RGB bytes of each frame of a (time, 3, height, width) uint8 array."""
    return [f.transpose(1, 2, 0).tobytes() for f in frames]


# -- the package ---------------------------------------------------------------------------

def test_new_media_types_load_on_first_use_without_numpy() -> None:
    code = ("import sys, wbtool; assert 'wbtool.media' not in sys.modules; "
            "names = {'Audio', 'Video', 'Html', 'Object3D'}; "
            "assert names <= set(dir(wbtool)) and names <= set(wbtool.__all__); "
            "assert wbtool.Video.__module__ == 'wbtool.media.video'; "
            "assert wbtool.Object3D.__module__ == 'wbtool.media.object3d'; "
            "assert 'numpy' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# -- Audio ---------------------------------------------------------------------------------

def test_audio_of_samples_is_a_16_bit_wav_in_the_run() -> None:
    np = pytest.importorskip("numpy")
    mono = np.array([0.0, 0.5, -1.0, 1.0, 2.0, -3.0, np.nan])  # out of [-1, 1]: clipped
    stereo = [[0.0, 1.0], [0.25, -0.25], [-1.0, 0.5]]
    run = start()
    run.log({"voice": wbtool.Audio(mono, sample_rate=8000, caption="hello"),
             "duet": wbtool.Audio(stereo, sample_rate=44100)})
    run.finish()
    (row,) = rows(run)
    doc = row["voice"]
    assert doc["_type"] == "audio-file" and doc["format"] == "wav"
    assert (doc["sample_rate"], doc["caption"]) == (8000, "hello")
    assert doc["duration"] == pytest.approx(7 / 8000)
    assert doc["path"].startswith("media/audio/voice_0_") and doc["path"].endswith(".wav")
    assert read_wav(logged(run, doc)) == (1, 8000, 7, [0, 16384, -32767, 32767, 32767,
                                                       -32767, 0])
    duet = row["duet"]
    assert read_wav(logged(run, duet)) == (2, 44100, 3, [0, 32767, 8192, -8192, -32767,
                                                         16384])
    assert "caption" not in duet
    # an array and the same numbers in a list give the same file
    assert wbtool.Audio(mono.tolist(), sample_rate=8000) == wbtool.Audio(mono, 8000)
    assert wbtool.Audio(np.array(stereo, dtype=np.float32), sample_rate=44100).to_bytes() \
        == wbtool.Audio(stereo, sample_rate=44100).to_bytes()


def test_audio_files_are_kept_as_they_are(tmp_path: Path) -> None:
    wav = tmp_path / "beep.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(bytes(800))
    mp3 = tmp_path / "song.MP3"
    mp3.write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00" + bytes(40))
    from_file = wbtool.Audio(str(wav), caption="beep")
    assert (from_file.format, from_file.sample_rate, from_file.duration) == ("wav", 16000, 0.025)
    run = start()
    with open(mp3, "rb") as f:
        run.log({"clips": [from_file, wbtool.Audio(mp3, sample_rate=22050),
                           wbtool.Audio(f)]})
    run.finish()
    doc = rows(run)[0]["clips"]
    assert doc["_type"] == "audio" and doc["count"] == 3
    assert doc["sampleRates"] == [16000, 22050, None]
    assert doc["durations"] == [0.025, None, None]
    assert doc["captions"] == ["beep", None, None]
    first, second, third = doc["filenames"]
    assert first.startswith("media/audio/clips_0_") and first.endswith(".wav")
    assert second.endswith(".mp3") and second == third  # the same bytes: one file
    assert (run._folder.path / first).read_bytes() == wav.read_bytes()
    assert (run._folder.path / second).read_bytes() == mp3.read_bytes()


def test_audio_of_wav_integer_samples_keeps_them() -> None:
    """uint8, int16 and int32 arrays (as scipy.io.wavfile.read gives them) hold a
    WAV file's samples over their type's range, not numbers in [-1, 1]."""
    np = pytest.importorskip("numpy")
    int16 = np.array([1000, -1000, 0, 32767, -32768], np.int16)
    assert read_wav(wbtool.Audio(int16, sample_rate=8000).to_bytes())[3] == \
        [1000, -1000, 0, 32767, -32768]
    int32 = np.array([1000 << 16, -2**31, 2**31 - 1], np.int32)
    assert read_wav(wbtool.Audio(int32, sample_rate=8000).to_bytes())[3] == \
        [1000, -32768, 32767]
    uint8 = np.array([[0, 128], [255, 64]], np.uint8)  # two channels
    assert read_wav(wbtool.Audio(uint8, sample_rate=8000).to_bytes()) == \
        (2, 8000, 2, [-32768, 0, 32512, -16384])
    # other integers are numbers, as in a list
    assert wbtool.Audio(np.array([0, 1, -1]), sample_rate=8000) == \
        wbtool.Audio([0, 1, -1], sample_rate=8000)


def riff_wav(tag: int, bits: int, channels: int, rate: int, frames: int,
             extensible: bool = False) -> bytes:
    """A WAV file's bytes, of any format tag, written by hand."""
    align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 0xFFFE if extensible else tag, channels, rate,
                      rate * align, align, bits)
    if extensible:
        fmt += struct.pack("<HHIH", 22, bits, 0, tag) + bytes(14)
    body = b"WAVEfmt " + struct.pack("<I", len(fmt)) + fmt + b"LIST" + struct.pack("<I", 3) \
        + b"abc\0" + b"data" + struct.pack("<I", align * frames) + bytes(align * frames)
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.mark.parametrize("tag, bits, channels, extensible", [
    (3, 32, 1, False),  # 32-bit float, as soundfile and scipy write float samples
    (1, 24, 2, True),  # 24-bit PCM in the extensible header
    (3, 32, 6, True),  # 5.1 float
    (6, 8, 1, False),  # A-law
])
def test_audio_of_wav_files_the_wave_module_cannot_read(
        tmp_path: Path, tag: int, bits: int, channels: int, extensible: bool) -> None:
    path = tmp_path / "clip.wav"
    path.write_bytes(riff_wav(tag, bits, channels, 16000, 8000, extensible))
    clip = wbtool.Audio(str(path))
    assert (clip.format, clip.sample_rate, clip.duration) == ("wav", 16000, 0.5)
    assert clip.to_bytes() == path.read_bytes()


def test_audio_of_ints_too_large_for_a_float_is_clipped() -> None:
    clip = wbtool.Audio([10**400, -(10**400), 0], sample_rate=8000)
    assert read_wav(clip.to_bytes())[3] == [32767, -32767, 0]


def test_bad_audio_is_refused_in_words(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    with pytest.raises(ValueError, match="sample_rate is needed for audio made of samples"):
        wbtool.Audio([0.0, 0.1])
    for rate in (0, 1.5, "16k", True):
        with pytest.raises(ValueError, match="sample_rate must be a whole number"):
            wbtool.Audio([0.0], sample_rate=rate)
    for data, words in (
        (np.zeros((2, 16000)), r"would have 16000 channels \(at most 32\).*transpose"),
        (np.zeros((2, 2, 2)), r"cannot make audio of shape \(2, 2, 2\)"),
        (np.zeros(0), "hold no sound"),
        ([], "hold no sound"),
        (np.array(["a"]), "samples must be numbers, not <U1"),
        ([0.1, "loud"], "samples must be numbers, not 'loud'"),
        ([[0.1, 0.2], [0.3]], "ragged: expected 2 values per sample, found 1 values"),
        ({"left": [0.1]}, "cannot make audio of a dict"),
    ):
        with pytest.raises(ValueError, match=words):
            wbtool.Audio(data, sample_rate=8000)
    with pytest.raises(FileNotFoundError, match=r"no such audio file: .*missing\.wav"):
        wbtool.Audio(str(tmp_path / "missing.wav"))
    (tmp_path / "notes.txt").write_text("la la")
    with pytest.raises(ValueError, match=r"cannot tell the format of .*notes\.txt"):
        wbtool.Audio(tmp_path / "notes.txt")
    (tmp_path / "fake.wav").write_text("not a wave")
    with pytest.raises(ValueError, match=r"fake\.wav is not a WAV file \(it does not start"):
        wbtool.Audio(tmp_path / "fake.wav")


# -- Video ---------------------------------------------------------------------------------

def test_video_of_frames_is_an_animated_gif_in_the_run() -> None:
    np = pytest.importorskip("numpy")
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 256, (40, 3), dtype=np.uint8)
    frames = palette[rng.integers(0, 40, (10, 12, 20))].transpose(0, 3, 1, 2)  # (T, C, H, W)
    run = start()
    run.log({"video": wbtool.Video(frames, caption="noise")})  # fps: 4, as W&B
    run.finish()
    doc = rows(run)[0]["video"]
    assert doc["_type"] == "video-file" and doc["format"] == "gif"
    assert (doc["width"], doc["height"], doc["frames"], doc["fps"]) == (20, 12, 10, 4)
    assert doc["caption"] == "noise"
    assert doc["path"].startswith("media/videos/video_0_") and doc["path"].endswith(".gif")
    gif = decode_gif(logged(run, doc))
    assert (gif["width"], gif["height"], gif["loops"]) == (20, 12, 0)  # loops forever
    assert [d for d, _ in gif["frames"]] == [25] * 10  # 4 fps: 25 hundredths of a second
    assert [rgb for _, rgb in gif["frames"]] == rgb_frames(frames)  # 40 colours: exact


def test_video_batches_grey_floats_and_fps() -> None:
    np = pytest.importorskip("numpy")
    rng = np.random.default_rng(1)
    grey = rng.random((3, 2, 1, 4, 5))  # (batch, time, channel, height, width) in [0, 1)
    video = wbtool.Video(grey, fps=10)
    gif = decode_gif(video.to_bytes())
    # 3 clips, padded to 4, laid out 2 by 2
    assert (video.width, video.height, gif["width"], gif["height"]) == (10, 8, 10, 8)
    assert [d for d, _ in gif["frames"]] == [10, 10]
    scaled = np.trunc(grey * 255).astype(np.uint8)  # as wbtool.Image scales floats
    for t, (_, rgb) in enumerate(gif["frames"]):
        pixels = np.frombuffer(rgb, np.uint8).reshape(8, 10, 3)
        assert (pixels[:4, :5, 0] == scaled[0, t, 0]).all()
        assert (pixels[:4, 5:, 1] == scaled[1, t, 0]).all()
        assert (pixels[4:, :5, 2] == scaled[2, t, 0]).all()
        assert (pixels[4:, 5:] == 0).all()  # the padding clip is black
    fast = wbtool.Video(np.zeros((2, 3, 2, 2), np.uint8), fps=100)  # faster than GIF shows
    assert [d for d, _ in decode_gif(fast.to_bytes())["frames"]] == [2, 2]


def test_video_slower_than_a_gif_can_show_gets_its_longest_delay() -> None:
    np = pytest.importorskip("numpy")
    frames = np.zeros((2, 3, 2, 2), np.uint8)
    slow = wbtool.Video(frames, fps=0.001)  # 1000 s a frame; a GIF holds at most 655.35
    assert slow.fps == 0.001
    assert [d for d, _ in decode_gif(slow.to_bytes())["frames"]] == [65535, 65535]
    tiny = wbtool.Video(frames, fps=1e-9)
    assert [d for d, _ in decode_gif(tiny.to_bytes())["frames"]] == [65535, 65535]


def test_gif_of_many_colours_and_long_data_decodes() -> None:
    np = pytest.importorskip("numpy")
    rng = np.random.default_rng(2)
    palette = rng.integers(0, 256, (256, 3), dtype=np.uint8)
    full = palette[rng.integers(0, 256, (1, 150, 150))].transpose(0, 3, 1, 2)
    (_, rgb), = decode_gif(wbtool.Video(full).to_bytes())["frames"]  # the LZW table fills
    assert rgb == rgb_frames(full)[0]
    flat = np.full((1, 3, 300, 300), 7, np.uint8)  # long runs: long codes
    (_, rgb), = decode_gif(wbtool.Video(flat).to_bytes())["frames"]
    assert rgb == bytes([7]) * (300 * 300 * 3)
    noise = rng.integers(0, 256, (2, 3, 40, 50), dtype=np.uint8)  # thousands of colours
    gif = decode_gif(wbtool.Video(noise).to_bytes())
    for (_, rgb), want in zip(gif["frames"], rgb_frames(noise), strict=True):
        error = np.abs(np.frombuffer(rgb, np.uint8).astype(int)
                       - np.frombuffer(want, np.uint8).astype(int))
        assert error.max() <= 64 and error.mean() < 20  # near colours merged
    for colours in (1, 2, 3, 5, 17, 200):  # each palette size, each code width
        for side in (1, 2, 9, 33):
            frame = palette[rng.integers(0, colours, (1, side, side + 1))].transpose(0, 3, 1, 2)
            (_, rgb), = decode_gif(wbtool.Video(frame).to_bytes())["frames"]
            assert rgb == rgb_frames(frame)[0], (colours, side)


def test_lzw_codes_widen_where_a_decoder_widens_them() -> None:
    import random

    from wbtool.media.gif import lzw

    rng = random.Random(4)
    for _ in range(3000):  # short runs end at every code width, each palette size
        colours = rng.choice((2, 4, 8, 16, 256))
        indexes = bytes(rng.randrange(colours) for _ in range(rng.randint(1, 80)))
        min_code = max(2, (colours - 1).bit_length())
        assert lzw_decode(lzw(indexes, min_code), min_code) == indexes


def test_pillow_reads_our_gifs() -> None:
    np = pytest.importorskip("numpy")
    pil = pytest.importorskip("PIL.Image")
    from PIL import ImageSequence

    rng = np.random.default_rng(3)
    palette = rng.integers(0, 256, (100, 3), dtype=np.uint8)
    frames = palette[rng.integers(0, 100, (4, 30, 40))].transpose(0, 3, 1, 2)
    with pil.open(io.BytesIO(wbtool.Video(frames, fps=5).to_bytes())) as gif:
        assert gif.size == (40, 30) and gif.info["duration"] == 200
        got = [f.convert("RGB").tobytes() for f in ImageSequence.Iterator(gif)]
    assert got == rgb_frames(frames)


def test_video_files_are_kept_as_they_are(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    mp4 = tmp_path / "clip.mp4"
    mp4.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(20))
    gif = tmp_path / "loop.gif"
    gif.write_bytes(wbtool.Video(np.zeros((2, 3, 6, 7), np.uint8)).to_bytes())
    run = start()
    run.log({"mp4": wbtool.Video(str(mp4)), "gif": wbtool.Video(gif, caption="loop"),
             "webm": wbtool.Video(io.BytesIO(b"\x1aE\xdf\xa3webm"), format="webm")})
    run.finish()
    (row,) = rows(run)
    assert row["mp4"]["format"] == "mp4" and "width" not in row["mp4"]
    assert row["mp4"]["path"].endswith(".mp4")
    assert logged(run, row["mp4"]) == mp4.read_bytes()
    assert (row["gif"]["width"], row["gif"]["height"]) == (7, 6)  # read from the file
    assert logged(run, row["gif"]) == gif.read_bytes()
    assert row["webm"]["path"].startswith("media/videos/webm_0_")
    assert row["webm"]["path"].endswith(".webm")


def test_bad_video_is_refused_in_words(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    frames = np.zeros((2, 3, 4, 4), np.uint8)
    with pytest.raises(ValueError, match="writing frames as mp4 needs a video encoder wbtool "
                                         "does not have; format='gif' is available"):
        wbtool.Video(frames, format="mp4")
    for kwargs, words in (
        ({"format": "avi"}, "format must be one of gif, mp4, webm, ogg, not 'avi'"),
        ({"fps": 0}, "fps must be a number of frames per second above 0"),
        ({"fps": "fast"}, "fps must be a number"),
    ):
        with pytest.raises(ValueError, match=words):
            wbtool.Video(frames, **kwargs)
    for data, words in (
        (np.zeros((4, 4, 3)), r"cannot make a video of shape \(4, 4, 3\)"),
        (np.zeros((2, 2, 4, 4)), r"shape \(2, 2, 4, 4\).*with 1, 3 or 4 channels"),
        (np.zeros((0, 3, 4, 4)), "hold no pixels"),
        (np.array([[[["a"]]]]), "frames must be numbers, not <U1"),
        ([[[[0]]]], "cannot make a video of a list"),
        (42, "cannot make a video of a int"),
    ):
        with pytest.raises(ValueError, match=words):
            wbtool.Video(data)
    with pytest.raises(FileNotFoundError, match=r"no such video file: .*gone\.mp4"):
        wbtool.Video(str(tmp_path / "gone.mp4"))
    (tmp_path / "clip.avi").write_bytes(b"RIFF")
    with pytest.raises(ValueError, match=r"cannot tell the video's format: .*clip\.avi does "
                                         r"not end in \.gif, \.mp4, \.webm, \.ogg"):
        wbtool.Video(tmp_path / "clip.avi")
    (tmp_path / "x.mp4").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"format='gif' does not match the file's extension \.mp4"):
        wbtool.Video(tmp_path / "x.mp4", format="gif")


# -- Html ----------------------------------------------------------------------------------

def test_html_text_files_and_open_files(tmp_path: Path) -> None:
    injected = '<meta charset="utf-8"><base target="_blank">'
    page = "<html lang='en'><body><h1>Résultats</h1></body></html>"
    assert wbtool.Html(page).html == (f"<html lang='en'><head>{injected}</head>"
                                      "<body><h1>Résultats</h1></body></html>")
    assert wbtool.Html("<HEAD><title>t</title></HEAD>x").html == (
        f"<HEAD>{injected}<title>t</title></HEAD>x")
    assert wbtool.Html("<p>bare</p>").html == injected + "<p>bare</p>"
    assert wbtool.Html("<p>as is</p>", inject=False).html == "<p>as is</p>"
    partly_read = io.StringIO("<p>whole</p>")
    partly_read.read(3)
    assert wbtool.Html(partly_read, inject=False).html == "<p>whole</p>"
    path = tmp_path / "report.html"
    path.write_text(page, encoding="utf-8")
    from_path = wbtool.Html(str(path), inject=False)
    assert from_path.html == page
    with open(path) as text, open(path, "rb") as binary:
        assert wbtool.Html(text) == wbtool.Html(binary) == wbtool.Html(path) == wbtool.Html(page)
    run = start()
    run.log({"report": from_path, "pages": [wbtool.Html("<p>1</p>"), wbtool.Html(path)]})
    run.finish()
    (row,) = rows(run)
    doc = row["report"]
    assert doc["_type"] == "html-file" and doc["format"] == "html"
    assert doc["path"].startswith("media/html/report_0_") and doc["path"].endswith(".html")
    assert logged(run, doc) == page.encode("utf-8")
    pages = row["pages"]
    assert pages["_type"] == "html" and pages["count"] == 2
    assert (run._folder.path / pages["filenames"][0]).read_text() == injected + "<p>1</p>"


def test_bad_html_is_refused_in_words(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot make a page of a int"):
        wbtool.Html(42)
    with pytest.raises(ValueError, match="cannot make a page of a bytes"):
        wbtool.Html(b"<p>bytes</p>")
    with pytest.raises(FileNotFoundError, match=r"no such HTML file: .*nowhere\.html"):
        wbtool.Html(str(tmp_path / "nowhere.html"))
    (tmp_path / "latin.html").write_bytes("<p>caf\xe9</p>".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin\.html is not UTF-8 text"):
        wbtool.Html(tmp_path / "latin.html")


# -- Object3D ------------------------------------------------------------------------------

def test_3d_files_are_kept_as_they_are(tmp_path: Path) -> None:
    obj = tmp_path / "cube.obj"
    obj.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    gltf = tmp_path / "scene.gltf"
    gltf.write_text(json.dumps({"asset": {"version": "2.0"}}))
    glb = tmp_path / "scene.GLB"
    glb.write_bytes(b"glTF\x02\x00\x00\x00\xff\xfe\r\n" + bytes(12))  # not text
    pts = tmp_path / "cloud.pts.json"
    pts.write_text("[[0, 0, 0], [1, 2, 3]]")
    run = start()
    # open files, as W&B's examples open them: in text mode, even a binary one
    with open(gltf) as text, open(glb) as binary:
        text.read(5)  # read from the start all the same
        run.log({"generated_samples": [wbtool.Object3D(str(obj)), wbtool.Object3D(text),
                                       wbtool.Object3D(binary, caption="binary")],
                 "cloud": wbtool.Object3D(pts)})
    run.finish()
    (row,) = rows(run)
    doc = row["generated_samples"]
    assert doc["_type"] == "object3D" and doc["count"] == 3
    assert doc["captions"] == [None, None, "binary"]
    assert [p.rpartition(".")[2] for p in doc["filenames"]] == ["obj", "gltf", "glb"]
    assert all(p.startswith("media/object3D/generated_samples_0_") for p in doc["filenames"])
    for rel, src in zip(doc["filenames"], (obj, gltf, glb), strict=True):
        assert (run._folder.path / rel).read_bytes() == src.read_bytes()
    cloud = row["cloud"]
    assert cloud["_type"] == "object3D-file" and cloud["format"] == "pts.json"
    assert cloud["path"].endswith(".pts.json") and logged(run, cloud) == pts.read_bytes()


def test_point_clouds_are_written_as_pts_json() -> None:
    np = pytest.importorskip("numpy")
    xyz = np.array([[0.5, 1.0, -2.0], [3.0, 4.0, 5.25]])
    labelled = [[0, 0, 0, 1], [1, 1, 1, 2]]
    coloured = np.array([[0, 0, 0, 255, 0, 0], [1, 2, 3, 0, 255, 0]], dtype=np.int32)
    run = start()
    run.log({"xyz": wbtool.Object3D(xyz), "labelled": wbtool.Object3D(labelled),
             "coloured": wbtool.Object3D(coloured, caption="rgb")})
    run.finish()
    (row,) = rows(run)
    for key, want in (("xyz", xyz.tolist()), ("labelled", labelled),
                      ("coloured", coloured.tolist())):
        doc = row[key]
        assert doc["format"] == "pts.json" and doc["points"] == 2
        assert doc["path"].startswith(f"media/object3D/{key}_0_")
        assert doc["path"].endswith(".pts.json")
        assert json.loads(logged(run, doc)) == want
    assert row["coloured"]["caption"] == "rgb"
    assert wbtool.Object3D(xyz.tolist()) == wbtool.Object3D(xyz)


def test_a_lidar_scene_is_written_as_the_w_and_b_sdk_writes_it() -> None:
    np = pytest.importorskip("numpy")
    box = {"corners": [[0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0], [1, 1, 0], [0, 1, 1],
                       [1, 0, 1], [1, 1, 1]], "label": "car", "color": [123, 321, 111]}
    scene = {"type": "lidar/beta", "points": np.array([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]),
             "boxes": np.array([box])}
    run = start()
    run.log({"scene": wbtool.Object3D(scene)})
    run.finish()
    doc = rows(run)[0]["scene"]
    assert doc["format"] == "pts.json" and doc["points"] == 2
    assert json.loads(logged(run, doc)) == {"type": "lidar/beta", "vectors": [],
                                            "points": [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]],
                                            "boxes": [box]}
    for bad, words in (
        ({"type": "mesh/alpha", "points": [[0, 0, 0]]}, "\"type\" must be 'lidar/beta', "
                                                        "not 'mesh/alpha'"),
        ({"type": "lidar/beta", "colours": []}, "holds type, points, boxes, vectors; not colours"),
        ({"type": "lidar/beta", "boxes": [1, 2]}, "boxes must be a list of dicts"),
        ({"type": "lidar/beta", "vectors": [{"start": [0, 0, math.nan]}]},
         "vectors must be plain data"),
        ({"type": "lidar/beta", "points": [[0, 0]]}, r"point cloud of shape \(1, 2\)"),
    ):
        with pytest.raises(ValueError, match=words):
            wbtool.Object3D(bad)


def test_table_columns_of_the_new_media() -> None:
    audio = wbtool.Audio([0.0], sample_rate=8000)
    table = wbtool.Table(columns=["id", "clip"], dtype=[int, wbtool.Audio])
    table.add_data(1, audio)
    with pytest.raises(ValueError, match="column 'clip' holds Audio values"):
        table.add_data(2, wbtool.Html("<p/>"))
    assert wbtool.Table(columns=["page"], data=[[wbtool.Html("<p/>")]]).nrows == 1
    with pytest.raises(ValueError, match=r"media type \(wbtool.Image, Audio, Video"):
        wbtool.Table(columns=["x"], dtype=[set])


def test_bad_3d_objects_are_refused_in_words(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    (tmp_path / "mesh.xyz").write_text("0 0 0")
    supported = r"supported are \.obj, \.gltf, \.glb, \.babylon, \.stl, \.pts\.json"
    with pytest.raises(ValueError, match=r"cannot tell the type of '.*mesh\.xyz': " + supported):
        wbtool.Object3D(str(tmp_path / "mesh.xyz"))
    with pytest.raises(ValueError, match="an open file without a name: " + supported):
        wbtool.Object3D(io.BytesIO(b"v 0 0 0"))
    with pytest.raises(FileNotFoundError, match=r"no such 3D object file: .*gone\.obj"):
        wbtool.Object3D(tmp_path / "gone.obj")
    for data, words in (
        (np.zeros((5, 2)), r"cannot make a point cloud of shape \(5, 2\): expected \(N, 3\)"),
        (np.zeros((2, 3, 3)), r"point cloud of shape \(2, 3, 3\)"),
        (np.zeros((0, 3)), "has no points"),
        (np.array([[0.0, np.nan, 1.0]]), "points must be finite numbers"),
        (np.ones((2, 3), bool), "points must be numbers, not bool"),
        ([[0, 0, 0], [1, 1]], "ragged: expected 3 values per point, found 2 values"),
        ([[0, 0, "z"]], "points must be finite numbers, not 'z'"),
        ([[0, 0, 10**400]], "points must be finite numbers, not 1000"),  # past a float
        ([1, 2, 3], r"point cloud of shape \(3,\)"),
        (3.5, "cannot make a 3D object of a float"),
    ):
        with pytest.raises(ValueError, match=words):
            wbtool.Object3D(data)


# -- all four ------------------------------------------------------------------------------

def test_new_media_round_trip_through_an_artifact(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    audio = wbtool.Audio([0.0, 0.5, -0.5], sample_rate=8000, caption="clip")
    video = wbtool.Video(np.full((2, 3, 4, 5), 200, np.uint8), fps=8)
    page = wbtool.Html("<p>report</p>")
    (tmp_path / "m.stl").write_bytes(b"solid m\nendsolid m\n")
    mesh = wbtool.Object3D(tmp_path / "m.stl", caption="mesh")
    cloud = wbtool.Object3D([[0, 1, 2]])
    table = wbtool.Table(columns=["id", "audio"], data=[[1, audio]])
    with start() as run:
        art = wbtool.Artifact("samples", "media")
        for name, obj in (("clip", audio), ("video", video), ("page", page), ("mesh", mesh),
                          ("cloud", cloud), ("rows", table)):
            art.add(obj, name)
        run.log_artifact(art)
    with start() as run:
        used = run.use_artifact("samples:latest")
        got = {name: used.get(name) for name in ("clip", "video", "page", "mesh", "cloud")}
        assert got == {"clip": audio, "video": video, "page": page, "mesh": mesh,
                       "cloud": cloud}
        assert isinstance(got["clip"], wbtool.Audio) and got["clip"].sample_rate == 8000
        assert got["clip"].duration == pytest.approx(3 / 8000)
        assert read_wav(got["clip"].to_bytes())[:3] == (1, 8000, 3)
        assert isinstance(got["video"], wbtool.Video)
        assert (got["video"].fps, got["video"].frames) == (8, 2)
        assert got["page"].html == page.html and got["mesh"].caption == "mesh"
        assert got["cloud"].points == 1 and got["cloud"].format == "pts.json"
        rows_back = used.get("rows")
        assert rows_back.data[0][1] == audio  # a cell's audio comes back too
        names = set(used.manifest.entries)
        assert {"clip.audio-file.json", "video.video-file.json", "page.html-file.json",
                "mesh.object3D-file.json", "cloud.object3D-file.json"} <= names
        assert f"media/audio/{audio.digest[:20]}.wav" in names
        assert f"media/videos/{video.digest[:20]}.gif" in names
        assert f"media/object3D/{cloud.digest[:20]}.pts.json" in names


def test_media_read_back_from_documents_edited_by_hand() -> None:
    """A document whose numbers were replaced by text or lists gives an object
    without them (None), which prints and logs again, not one that fails."""
    run = start()
    art = wbtool.Artifact("edited", "media")
    with art.new_file("media/audio/a.wav", "wb") as f:
        f.write(wbtool.Audio([0.0], sample_rate=8000).to_bytes())
    with art.new_file("media/videos/v.gif", "wb") as f:
        f.write(b"GIF89a")
    with art.new_file("media/object3D/o.pts.json", "w") as f:
        f.write("[[0, 0, 0]]")
    docs = {
        "clip": {"_type": "audio-file", "path": "media/audio/a.wav", "format": "wav",
                 "sample_rate": "8k", "duration": [1]},
        "video": {"_type": "video-file", "path": "media/videos/v.gif", "format": "gif",
                  "width": "4", "height": True, "fps": {}, "frames": 2.5},
        "cloud": {"_type": "object3D-file", "path": "media/object3D/o.pts.json",
                  "format": "pts.json", "points": "1"},
    }
    for name, doc in docs.items():
        with art.new_file(f"{name}.{doc['_type']}.json", "w") as f:
            f.write(json.dumps(doc))
    run.log_artifact(art)
    run.finish()
    used = wbtool.Api().artifact("media/edited:latest")
    clip, video, cloud = (used.get(name) for name in docs)
    assert (clip.sample_rate, clip.duration, repr(clip)) == (None, None, "<Audio wav>")
    assert (video.width, video.height, video.fps, video.frames) == (None, None, None, None)
    assert cloud.points is None and repr(cloud) == "<Object3D pts.json>"
    again = start()
    again.log({"clip": clip, "video": video, "cloud": cloud})
    again.finish()
    row = rows(again)[0]
    assert "sample_rate" not in row["clip"] and "fps" not in row["video"]


def test_runs_show_tells_new_media_in_a_few_words(cli: Any, tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    (tmp_path / "m.obj").write_text("v 0 0 0\n")
    run = start()
    run.log({"voice": wbtool.Audio([0.0] * 8000, sample_rate=16000),
             "video": wbtool.Video(np.zeros((3, 3, 4, 6), np.uint8)),
             "page": wbtool.Html("<p>hi</p>", inject=False),
             "mesh": wbtool.Object3D(tmp_path / "m.obj"),
             "cloud": wbtool.Object3D([[0, 0, 0], [1, 1, 1]]),
             "voices": [wbtool.Audio([0.0], sample_rate=8000)] * 2,
             "meshes": [wbtool.Object3D(tmp_path / "m.obj")] * 3})
    run.finish()
    shown = cli("runs", "show", run.id, check=True).out
    for line in ("voice: audio wav 0.5s at 16000 Hz: media/audio/voice_0_",
                 "video: video gif 6x4 3 frames at 4 fps: media/videos/video_0_",
                 "page: html page of 9 bytes: media/html/page_0_",
                 "mesh: 3D object obj: media/object3D/mesh_0_",
                 "cloud: 3D object pts.json of 2 points: media/object3D/cloud_0_",
                 "voices: 2 audio clips", "meshes: 3 3D objects"):
        assert line in shown, line


def test_new_media_logged_to_a_disabled_run_write_nothing(tmp_path: Path) -> None:
    with wbtool.init(mode="disabled") as run:
        run.log({"a": wbtool.Audio([0.0], sample_rate=8000), "h": wbtool.Html("<p/>"),
                 "o": wbtool.Object3D([[0, 0, 0]])})
        assert run.summary["a"]["_type"] == "audio-file" and "path" not in run.summary["a"]
        assert run.summary["h"]["_type"] == "html-file"
        assert run.summary["o"]["points"] == 1
    assert not list(Path.cwd().rglob("media"))


def test_readme_example_of_the_new_media_runs() -> None:
    import re

    np = pytest.importorskip("numpy")
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text[text.index("### Media: wbtool.Image"):]
    block = re.findall(r"```python\n(.*?)```", section, re.DOTALL)[1]
    Path("mesh.glb").write_bytes(b"glTF\x02\x00\x00\x00" + bytes(12))
    with start() as run:
        exec(block, {"wbtool": wbtool, "run": run, "samples": np.zeros(1600),
                     "frames": np.zeros((3, 3, 8, 8), np.uint8), "points": np.ones((4, 3))})
    (row,) = rows(run)
    assert row["speech"]["duration"] == 0.1 and row["rollout"]["frames"] == 3
    assert row["report"]["_type"] == "html-file" and row["scene"]["count"] == 2
