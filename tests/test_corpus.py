import gzip
import io
from pathlib import Path

import numpy as np
import pytest

from nmt.data.corpus import CorpusError, check_lines, filter_mask, iter_lines, read_lines, read_parallel


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_reads_plain_text_stripping_each_line(tmp_path):
    path = write(tmp_path / "a.en", "  hello world \nÄpfel über Bäume\n\n我的朋友\n".encode())
    assert read_lines(path) == ["hello world", "Äpfel über Bäume", "", "我的朋友"]


def test_reads_gzip_by_suffix_and_by_magic(tmp_path):
    data = gzip.compress(b"eins\nzwei\n")
    assert read_lines(write(tmp_path / "a.de.gz", data)) == ["eins", "zwei"]
    assert read_lines(write(tmp_path / "a.de", data)) == ["eins", "zwei"]


def test_last_line_without_newline_is_kept(tmp_path):
    assert read_lines(write(tmp_path / "a", b"one\ntwo")) == ["one", "two"]


def test_bom_and_crlf_are_accepted(tmp_path):
    path = write(tmp_path / "a", b"\xef\xbb\xbfone\r\ntwo \r\n\r\nthree\r\n")
    assert read_lines(path) == list(iter_lines(path)) == ["one", "two", "", "three"]


@pytest.mark.parametrize(
    "data, lines",
    [
        (b"a\rb\nc\n", ["a b", "c"]),
        (b"a\r\rb\r\nc", ["a  b", "c"]),
        (b"\ra\r\n\rb\r", ["a", "b"]),  # at either end a CR goes with the other surrounding whitespace
        (b"a\nb\n", ["a", "b"]),
    ],
    ids=["inner-cr", "inner-crs-and-crlf", "outer-crs", "no-cr"],
)
def test_only_lf_ends_a_line_and_an_inner_cr_is_a_space(tmp_path, data, lines):
    path = write(tmp_path / "a", data)
    assert read_lines(path) == list(iter_lines(path)) == lines
    assert list(check_lines(io.BytesIO(data), "<stdin>")) == lines  # a binary stream yields LF-ended lines


@pytest.mark.parametrize("cr", [b"", b"\r", b"\r\r"], ids=["no-cr", "one-cr", "two-crs"])
@pytest.mark.parametrize("bad, message", [(b"\xff", "invalid UTF-8"), (b"\x00", "NUL byte")], ids=["utf8", "nul"])
def test_error_lines_count_lf_only(tmp_path, cr, bad, message):
    path = write(tmp_path / "bad.en", b"ok" + cr + b"still line 1\r\nfine\nbad " + bad + b" here\n")
    for read in (read_lines, lambda p: list(iter_lines(p))):
        with pytest.raises(CorpusError, match=f"line 3: {message}"):
            read(path)


def test_unicode_line_separators_do_not_split_lines(tmp_path):
    # str.splitlines() would split at U+2028 and misalign the corpus.
    path = write(tmp_path / "a", "a\u2028b\x0cc\nd\n".encode())
    assert len(read_lines(path)) == 2


def test_invalid_utf8_names_file_line_and_offset(tmp_path):
    path = write(tmp_path / "bad.en", b"ok\nfine\nbad \xff here\n")
    with pytest.raises(CorpusError, match=r"line 3: invalid UTF-8 at byte offset 12") as err:
        read_lines(path)
    assert str(path) in str(err.value)


def test_invalid_utf8_in_gzip_names_the_line(tmp_path):
    path = write(tmp_path / "bad.en.gz", gzip.compress(b"ok\r\n\xc3\n"))
    with pytest.raises(CorpusError, match="line 2: invalid UTF-8"):
        read_lines(path)


@pytest.mark.parametrize(
    ("data", "offset"),
    [(b"ab\xff\n", 2), (b"\xef\xbb\xbfab\xff\n", 5), (b"\xef\xbb\xbfok\nab\xff\n", 8)],
    ids=["plain", "bom", "bom-line-2"],
)
def test_byte_offsets_count_a_stripped_bom(tmp_path, data, offset):
    """The offset is the file's, BOM included: `data[offset]` is the bad byte."""
    assert data[offset] == 0xFF
    path = write(tmp_path / "bad.en", data)
    with pytest.raises(CorpusError, match=rf"invalid UTF-8 at byte offset {offset} \("):
        read_lines(path)
    line_start = data.rfind(b"\n", 0, offset) + 1
    with pytest.raises(CorpusError, match=rf"invalid UTF-8 at byte {offset - line_start} of the line"):
        list(iter_lines(path))
    nul = data.replace(b"\xff", b"\x00")
    with pytest.raises(CorpusError, match=rf"NUL byte at byte offset {offset};"):
        read_lines(write(tmp_path / "nul.en", nul))


@pytest.mark.parametrize(("name", "where"), [("bad.en.gz", " of the decompressed text"), ("bad.en", "")])
def test_byte_offsets_in_gzip_files_say_they_count_the_decompressed_text(tmp_path, name, where):
    data = b"\xef\xbb\xbfok\n\xff\n"
    path = write(tmp_path / name, gzip.compress(data) if where else data)
    with pytest.raises(CorpusError, match=rf"line 2: invalid UTF-8 at byte offset 6{where} \("):
        read_lines(path)


def test_nul_byte_is_reported_as_binary(tmp_path):
    path = write(tmp_path / "bin", b"text\nmore\x00text\n")
    with pytest.raises(CorpusError, match=r"line 2: NUL byte .* binary") as err:
        read_lines(path)
    assert str(path) in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(CorpusError, match=r"nope\.en does not exist"):
        read_lines(tmp_path / "nope.en")


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(CorpusError, match="must be a regular file, but is a directory instead") as err:
        read_lines(tmp_path)
    assert str(tmp_path) in str(err.value)


def test_empty_file(tmp_path):
    with pytest.raises(CorpusError, match=r"empty\.en is empty"):
        read_lines(write(tmp_path / "empty.en", b""))


def test_gz_suffix_on_plain_text_is_reported(tmp_path):
    with pytest.raises(CorpusError, match="not a valid gzip file"):
        read_lines(write(tmp_path / "a.gz", b"plain text\n"))


def test_errors_are_value_errors():
    assert issubclass(CorpusError, ValueError)


def test_read_parallel_pairs_lines(tmp_path):
    src = write(tmp_path / "a.en", b"one\ntwo\n")
    tgt = write(tmp_path / "a.de", gzip.compress(b"eins\nzwei\n"))
    corpus = read_parallel(src, tgt)
    assert (corpus.src, corpus.tgt, len(corpus)) == (["one", "two"], ["eins", "zwei"], 2)


def test_read_parallel_line_count_mismatch(tmp_path):
    src = write(tmp_path / "a.en", b"1\n2\n3\n")
    tgt = write(tmp_path / "a.de", b"1\n2\n")
    with pytest.raises(CorpusError, match=r"a\.en has 3 lines but .*a\.de has 2"):
        read_parallel(src, tgt)


def test_read_parallel_only_empty_lines(tmp_path):
    src = write(tmp_path / "a.en", b"1\n2\n")
    tgt = write(tmp_path / "a.de", b"\n  \n")
    with pytest.raises(CorpusError, match=r"a\.de has only empty lines"):
        read_parallel(src, tgt)


def test_filter_counts_each_reason():
    src = [3, 0, 5, 20, 2, 9, 4]
    tgt = [4, 3, 0, 5, 7, 3, 12]
    keep, stats = filter_mask(np.array(src), np.array(tgt), max_len=10, max_ratio=3.0)
    # 0: kept; 1, 2: empty; 3: too long; 4: ratio 3.5; 5: ratio exactly 3 is kept; 6: too long.
    assert keep.tolist() == [True, False, False, False, False, True, False]
    assert (stats.total, stats.kept, stats.empty, stats.too_long, stats.bad_ratio) == (7, 2, 2, 2, 1)
    assert stats.kept + stats.empty + stats.too_long + stats.bad_ratio == stats.total
    assert str(stats).startswith("kept 2 of 7 pairs")
    assert "longer than 10" in str(stats) and "ratio > 3" in str(stats)


def test_filter_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"`max_len` must be >= 1, but is 0 instead\."):
        filter_mask(np.array([1]), np.array([1]), max_len=0, max_ratio=2.0)
    with pytest.raises(ValueError, match=r"`max_ratio` must be >= 1, but is 0.5 instead\."):
        filter_mask(np.array([1]), np.array([1]), max_len=5, max_ratio=0.5)


@pytest.mark.parametrize(
    "bad, message",
    [(b"Gr\xfc\xdfe\n", "line 2: invalid UTF-8 at byte 2 of the line"), (b"a\x00\n", "line 2: NUL byte")],
)
def test_a_byte_stream_is_checked_like_a_file(tmp_path, bad, message):
    raw = [b"\xef\xbb\xbfgood line\r\n", bad, b"never read\n"]
    got = []
    with pytest.raises(CorpusError) as err:
        got.extend(check_lines(iter(raw), "<stdin>"))
    assert got == ["good line"] and str(err.value).startswith(f"<stdin>, {message}")
    path = write(tmp_path / "in.txt", b"".join(raw))
    with pytest.raises(CorpusError) as from_file:
        list(iter_lines(path))
    assert str(from_file.value) == str(err.value).replace("<stdin>", f"file {path}")
