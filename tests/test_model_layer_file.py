"""The sparse layer file: round trips, and every kind of corruption named by field."""

import dataclasses
import json
import struct

import numpy as np
import pytest

from winnow.model.integer.datapath import DatapathConfig
from winnow.model.files.layer_file import (
    MAGIC,
    LayerFileError,
    SparseLayer,
    decode_layer,
    encode_layer,
    header_digest,
    read_layer,
    write_layer,
)
from winnow.model.integer.reference import integer_conv, quantize_conv


def sparse_layer(dims=2, m=4, density=0.3, C=5, K=7, seed=0, wbits=8):
    rng = np.random.default_rng(seed)
    cfg = DatapathConfig(dims=dims, m=m, r=3, c_max=16, weight_bits=wbits)
    w = rng.standard_normal((K, C) + (3,) * dims)
    layer = quantize_conv(w, rng.standard_normal(K), 0.02, 0.05, cfg, padding=1, relu=True)
    keep = rng.random(layer.weights.shape) < density
    layer = dataclasses.replace(layer, weights=np.where(keep, layer.weights, 0))
    return layer, SparseLayer.from_quantized_conv(layer, (9,) * dims, name="conv1")


@pytest.mark.parametrize("dims, m", [(2, 2), (2, 4), (2, 6), (3, 2), (3, 4)])
@pytest.mark.parametrize("density", [0.0, 0.05, 0.3, 1.0])
def test_round_trip_is_exact(tmp_path, dims, m, density):
    layer, sl = sparse_layer(dims, m, density, seed=int(density * 100) + m)
    path = write_layer(tmp_path / "conv1.wnl", sl)
    back = read_layer(path)
    assert np.array_equal(back.to_dense(), layer.weights)
    assert back.nnz == int(np.count_nonzero(layer.weights))
    assert back.density == pytest.approx(np.count_nonzero(layer.weights) / layer.weights.size)
    assert back.size == (9,) * dims and back.padding == (1,) * dims and back.relu
    for f in ("bias", "mult", "shift", "weight_scale"):
        assert np.array_equal(getattr(back, f), getattr(layer, f))
    x = np.random.default_rng(1).integers(-128, 128, size=(1, 5) + (9,) * dims)
    assert np.array_equal(integer_conv(x, back.to_quantized_conv()), integer_conv(x, layer))


def test_csr_layout_per_position():
    layer, sl = sparse_layer(density=0.2)
    P, K, C = 36, 7, 5
    w = layer.weights.reshape(K, C, P)
    for p in (0, 17, 35):
        for k in range(K):
            a, b = sl.row_ptr[p, k], sl.row_ptr[p, k + 1]
            cols = sl.col_idx[a:b]
            assert list(cols) == list(np.nonzero(w[k, :, p])[0])
            assert list(sl.values[a:b]) == list(w[k, cols, p])
    assert sl.nnz_per_position().sum() == sl.nnz


def test_values_use_the_narrowest_dtype():
    _, sl8 = sparse_layer(wbits=8)
    _, sl12 = sparse_layer(wbits=12)
    h8 = json.loads(encode_layer(sl8)[12:].split(b"\n}")[0] + b"\n}")
    h12 = json.loads(encode_layer(sl12)[12:].split(b"\n}")[0] + b"\n}")
    assert h8["blobs"]["values"]["dtype"] in ("|i1", "<i1")
    assert h12["blobs"]["values"]["dtype"] == "<i2"


def header_and_body(data):
    (hlen,) = struct.unpack("<I", data[8:12])
    return json.loads(data[12 : 12 + hlen]), data[12 + hlen :]


def rebuild(header, body, reseal=True):
    """The file of ``header`` and ``body``; ``reseal``: with the header checksum recomputed (an edit that
    also forges the checksum, so that the field checks behind it are reached)."""
    if reseal:
        header = {**header, "header_sha256": header_digest(header)}
    head = json.dumps(header).encode()
    return MAGIC + struct.pack("<I", len(head)) + head + body


def corrupt_header(data, fn, reseal=True):
    h, body = header_and_body(data)
    fn(h)
    return rebuild(h, body, reseal)


@pytest.fixture
def good():
    return encode_layer(sparse_layer(density=0.3)[1])


def test_truncated_files(good):
    with pytest.raises(LayerFileError, match="field 'data_bytes': truncated"):
        decode_layer(good[:-5])
    with pytest.raises(LayerFileError, match="field 'header': truncated"):
        decode_layer(good[:40])
    with pytest.raises(LayerFileError, match="field 'magic'"):
        decode_layer(good[:6])
    with pytest.raises(LayerFileError, match="unexpected bytes after the blobs"):
        decode_layer(good + b"\0")


def test_wrong_magic_and_version(good):
    with pytest.raises(LayerFileError, match="not a Winnow sparse layer file"):
        decode_layer(b"PK\3\4" + good[4:])
    with pytest.raises(LayerFileError, match="field 'format_version': this reader supports version 2; the file has 7"):
        decode_layer(corrupt_header(good, lambda h: h.update(format_version=7)))
    with pytest.raises(LayerFileError, match="the file has 1 .version 1 predates the checksum over the header: re-export"):
        decode_layer(corrupt_header(good, lambda h: (h.update(format_version=1), h.pop("header_sha256"))))


def test_bad_checksum(good):
    h, body = header_and_body(good)
    off = h["blobs"]["values"]["offset"]
    flipped = body[:off] + bytes([body[off] ^ 0x01]) + body[off + 1 :]
    with pytest.raises(LayerFileError, match=r"field 'blobs.values.sha256': checksum mismatch"):
        decode_layer(rebuild(h, flipped))


def resave(sl, **changes):
    return encode_layer(dataclasses.replace(sl, **changes))  # consistent checksums, bad content


def test_semantic_corruption_is_named():
    _, sl = sparse_layer(density=0.3)
    bad_cols = sl.col_idx.copy()
    bad_cols[3] = 5  # C = 5: out of range
    with pytest.raises(LayerFileError, match=r"field 'col_idx': index out of range \[0, 5\)"):
        decode_layer(resave(sl, col_idx=bad_cols))
    rp = sl.row_ptr.copy()
    rp[2, 3] = rp[2, 4] + 1  # a row that ends before it starts
    with pytest.raises(LayerFileError, match="field 'row_ptr': not monotone"):
        decode_layer(resave(sl, row_ptr=rp))
    unsorted = sl.col_idx.copy()
    a, b = sl.row_ptr[0, 0], sl.row_ptr[0, 1]
    assert b - a >= 2
    unsorted[a], unsorted[a + 1] = unsorted[a + 1], unsorted[a]
    with pytest.raises(LayerFileError, match="field 'col_idx': column indices within a row must be strictly increasing"):
        decode_layer(resave(sl, col_idx=unsorted))
    zeros = sl.values.copy()
    zeros[0] = 0
    with pytest.raises(LayerFileError, match="field 'values': holds explicit zeros"):
        decode_layer(resave(sl, values=zeros))
    big = sl.values.copy()
    big[0] = 600  # int16 storage for 10 and 12 bits alike; outside the 10-bit range
    with pytest.raises(LayerFileError, match=r"field 'values': outside the signed 10-bit range"):
        wide = encode_layer(dataclasses.replace(sl, values=big, config=dataclasses.replace(sl.config, weight_bits=12)))
        decode_layer(corrupt_header(wide, lambda h: h["datapath"].update(weight_bits=10)))


def test_mismatched_shapes_are_named():
    _, sl = sparse_layer(density=0.3)
    with pytest.raises(LayerFileError, match=r"field 'blobs.bias.shape': expected \[7\]"):
        decode_layer(resave(sl, bias=np.zeros(6, dtype=np.int64)))
    with pytest.raises(LayerFileError, match=r"field 'blobs.row_ptr.shape': expected \[36, 8\]"):
        decode_layer(resave(sl, row_ptr=sl.row_ptr[:, :-1]))
    with pytest.raises(LayerFileError, match="field 'geometry.C': C = 20 exceeds the datapath's c_max = 16"):
        decode_layer(corrupt_header(encode_layer(sl), lambda h: h["geometry"].update(C=20)))
    with pytest.raises(LayerFileError, match=r"field 'geometry.size': expected 2 entries"):
        decode_layer(corrupt_header(encode_layer(sl), lambda h: h["geometry"].update(size=[9, 9, 9])))


def test_header_fields_are_checked(good):
    cases = [
        (lambda h: h.pop("name"), "field 'name': missing"),
        (lambda h: h["datapath"].update(m="4"), "field 'datapath.m': expected int"),
        (lambda h: h["datapath"].update(m=8), "field 'datapath': not a valid datapath configuration"),
        (lambda h: h["datapath"].update(position_shifts=[0] * 36), "field 'datapath.position_shifts'"),
        (lambda h: h["activation"].update(out_scale=-1.0), "field 'activation.out_scale': must be finite and > 0"),
        (lambda h: h["activation"].update(relu="yes"), "field 'activation.relu': expected bool"),
        (lambda h: h.update(nnz=1), "field 'nnz': header says 1"),
        (lambda h: h.update(density=0.5), "field 'density': header says 0.5"),
        (lambda h: h.update(density=10**400), "field 'density': a number too large for a float"),
        (lambda h: h["activation"].update(in_scale=10**400), "field 'activation.in_scale': a number too large"),
        (lambda h: h["blobs"]["values"].update(dtype="<U4"), "field 'blobs.values.dtype': unsupported dtype"),
        (lambda h: h["blobs"]["bias"].update(offset=10**9), "field 'blobs.bias': offset"),
    ]
    for fn, words in cases:
        with pytest.raises(LayerFileError, match=words.replace("(", r"\(").replace(")", r"\)")):
            decode_layer(corrupt_header(good, fn))


def test_quantization_fields_checked_against_the_datapath():
    _, sl = sparse_layer()
    with pytest.raises(LayerFileError, match=r"field 'quantization': conv1.mult must be in \[0, 2\^15\)"):
        decode_layer(resave(sl, mult=np.full(7, 1 << 20)))


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(LayerFileError, match="no such layer file"):
        read_layer(tmp_path / "nope.wnl")
    with pytest.raises(LayerFileError, match="is a directory"):
        read_layer(tmp_path)


def test_write_is_atomic(tmp_path, monkeypatch):
    _, sl = sparse_layer()
    path = write_layer(tmp_path / "a.wnl", sl)
    before = path.read_bytes()

    def boom(*a):
        raise KeyboardInterrupt

    monkeypatch.setattr("winnow.model.files.atomic.os.replace", boom)
    with pytest.raises(KeyboardInterrupt):
        write_layer(path, dataclasses.replace(sl, name="other"))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wnl"]


@pytest.mark.parametrize("edit", [
    lambda h: h["activation"].update(relu=not h["activation"]["relu"]),
    lambda h: h["activation"].update(winograd_relu=True),
    lambda h: h["activation"].update(in_scale=h["activation"]["in_scale"] * 2),
    lambda h: h["geometry"].update(padding=[0, 0]),
    lambda h: h["geometry"].update(size=[12, 12]),
    lambda h: h.update(name="other"),
    lambda h: h["blobs"]["values"].update(sha256="0" * 64),
], ids=["relu", "winograd_relu", "in_scale", "padding", "size", "name", "blob-table"])
def test_any_header_edit_is_refused_by_the_header_checksum(good, edit):
    """Issue 17: an edited header field (accepted before, and then simulated 'bit-exact') is refused."""
    with pytest.raises(LayerFileError, match="field 'header_sha256': checksum mismatch: the header was edited"):
        decode_layer(corrupt_header(good, edit, reseal=False))


def test_a_blob_stored_with_another_dtype_is_refused():
    """An integer blob stored as float (or int32 where int64 belongs) is refused naming the field."""
    import hashlib

    _, sl = sparse_layer()
    h, body = header_and_body(encode_layer(sl))
    for name, dtype in (("bias", "<f8"), ("row_ptr", "<i4"), ("values", "<i2")):
        h2 = json.loads(json.dumps(h))
        entry = h2["blobs"][name]
        arr = np.frombuffer(body[entry["offset"]:entry["offset"] + entry["nbytes"]], dtype=np.dtype(entry["dtype"]))
        raw = arr.astype(dtype).tobytes()
        entry.update(dtype=np.dtype(dtype).str, nbytes=len(raw), sha256=hashlib.sha256(raw).hexdigest())
        # put the re-typed blob at the end so the other offsets stay valid
        entry["offset"] = len(body)
        h2["data_bytes"] = len(body) + len(raw)
        with pytest.raises(LayerFileError, match=rf"field 'blobs.{name}.dtype': unsupported dtype '{dtype}' for {name}"):
            decode_layer(rebuild(h2, body + raw))


def test_a_fifo_or_device_is_refused_before_reading(tmp_path):
    import os

    fifo = tmp_path / "layer.wnl"
    os.mkfifo(fifo)
    with pytest.raises(LayerFileError, match="a FIFO .named pipe., not a layer file"):
        read_layer(fifo)
    with pytest.raises(LayerFileError, match="a device, not a layer file"):
        read_layer("/dev/zero")
