#!/usr/bin/env python3
"""Write the fuzzers' seed corpus (plugins/fuzz/corpus/<target>/): a few inputs per target in the
layouts documented at the top of each plugins/fuzz/fuzz_*.cpp, covering the valid cases and each
kind of refusal, so a short run starts from every branch. Deterministic: rerunning it rewrites the
same files (the corpus is checked in; rerun after changing a layout).
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

CORPUS = Path(__file__).resolve().parent.parent / "plugins" / "fuzz" / "corpus"
TRT_VERSIONS = ("11_1", "8_6")

# fuzz_capi flags
UNBIASED, IN_PLACE, PLANES, RAW_DIMS, NULL_X, NULL_Y = 1, 2, 4, 8, 16, 32
PAYLOAD = bytes(range(7, 251, 3))


def capi(dtype: int, flags: int, lam: float, dims: tuple[int, ...], planes=None) -> bytes:
    out = struct.pack("<BBf", dtype, flags, lam)
    out += struct.pack("<4q" if flags & RAW_DIMS else "<4h", *dims)
    if flags & PLANES:
        out += struct.pack("<2q", *planes)
    return out + PAYLOAD


def capi_seeds() -> dict[str, bytes]:
    nan, inf = float("nan"), float("inf")
    return {
        "fp32_paper": capi(0, UNBIASED, 1e-4, (2, 3, 4, 5)),
        "fp16_in_place": capi(1, UNBIASED | IN_PLACE, 0.1, (1, 4, 7, 7)),
        "bf16_biased": capi(2, 0, 1e-4, (2, 2, 3, 3)),
        "planes": capi(0, UNBIASED | PLANES | IN_PLACE, 1e-4, (2, 3, 2, 2), (1, 4)),
        "planes_bad_range": capi(1, PLANES, 1e-4, (1, 2, 2, 2), (1, 5)),
        "one_by_one_unbiased": capi(0, UNBIASED, 1e-4, (1, 1, 1, 1)),
        "one_by_one_biased": capi(0, 0, 1e-4, (3, 2, 1, 1)),
        "bad_dtype": capi(3, 0, 1e-4, (1, 1, 2, 2)),
        "nan_lambda": capi(0, 0, nan, (1, 1, 2, 2)),
        "inf_lambda": capi(0, 0, inf, (1, 1, 2, 2)),
        "zero_dim": capi(0, 0, 1e-4, (0, 3, 2, 2)),
        "negative_dim": capi(0, RAW_DIMS, 1e-4, (1, -3, 2, 2)),
        "overflow": capi(0, RAW_DIMS, 1e-4, (1 << 40, 1 << 20, 1 << 10, 4)),
        "null_x": capi(0, NULL_X, 1e-4, (1, 1, 2, 2)),
        "null_y": capi(0, NULL_Y, 1e-4, (1, 1, 2, 2)),
        "big_plane": capi(0, UNBIASED, 1e-4, (1, 1, 128, 96)),
    }


FLOAT32, FLOAT64, INT32, CHAR = 1, 2, 5, 6  # nvinfer1::PluginFieldType values (same in 8.6 and 11.1)


def field(name: int, ftype: int, length: int, data: bytes, null: bool = False) -> bytes:
    return struct.pack("<BibB", name, ftype, length, int(null)) + data


def dims(
    d: tuple[int, ...], dtype: int, fmt: int, epilogue: int, count: int = 0, null: bool = False
) -> bytes:
    """Mode 2 with the format, epilogue bits (affine 1, residual 2, activation << 2) and input count."""
    return b"\x02" + struct.pack(
        "<i8qiBiBb", len(d), *d, *[0] * (8 - len(d)), dtype, int(null), fmt, epilogue, count
    )


def trt_seeds() -> dict[str, bytes]:
    lam = struct.pack("<f", 1e-4)
    one, zero, two = (struct.pack("<i", v) for v in (1, 0, 2))
    record = struct.pack("<IIfi", 0x414D4953, 1, 1e-4, 1)
    return {
        "v2_record": b"\x00" + record,
        "v2_record_biased": b"\x00" + struct.pack("<IIfi", 0x414D4953, 1, 0.1, 0),
        "v2_bad_magic": b"\x00" + struct.pack("<IIfi", 0x12345678, 1, 1e-4, 1),
        "v2_bad_version": b"\x00" + struct.pack("<IIfi", 0x414D4953, 2, 1e-4, 1),
        "v2_short": b"\x00" + record[:12],
        "v2_bad_unbiased": b"\x00" + struct.pack("<IIfi", 0x414D4953, 1, 1e-4, 5),
        "fields_both": b"\x01\x02" + field(0, FLOAT32, 1, lam) + field(1, INT32, 1, one),
        "fields_lambda_only": b"\x01\x01" + field(0, FLOAT32, 1, lam),
        "fields_unknown": b"\x01\x03"
        + field(2, FLOAT64, 2, bytes(16))
        + field(0, FLOAT32, 1, lam)
        + field(1, INT32, 1, zero),
        "fields_wrong_type": b"\x01\x01" + field(0, INT32, 1, one),
        "fields_list": b"\x01\x01" + field(0, FLOAT32, 2, lam + lam),
        "fields_null_data": b"\x01\x01" + field(0, FLOAT32, 1, b"", null=True),
        "fields_null_name": b"\x01\x01" + field(4, CHAR, 3, b"abc"),
        "fields_long_name": b"\x01\x01" + field(5, FLOAT32, 1, lam),
        "fields_duplicate": b"\x01\x02" + field(0, FLOAT32, 1, lam) + field(0, FLOAT32, 1, lam),
        "fields_bad_unbiased": b"\x01\x02" + field(0, FLOAT32, 1, lam) + field(1, INT32, 1, two),
        "fields_negative_count": b"\x01\xff",
        "fields_too_many": b"\x01\x50",
        "dims_fp32": b"\x02" + struct.pack("<i8qiB", 4, 2, 3, 4, 5, 0, 0, 0, 0, 0, 0),
        "dims_empty": b"\x02" + struct.pack("<i8qiB", 4, 0, 3, 4, 5, 0, 0, 0, 0, 1, 0),
        "dims_unresolved": b"\x02" + struct.pack("<i8qiB", 4, -1, 3, 4, 5, 0, 0, 0, 0, 0, 0),
        "dims_rank3": b"\x02" + struct.pack("<i8qiB", 3, 2, 3, 4, 0, 0, 0, 0, 0, 0, 1),
        "dims_int8": b"\x02" + struct.pack("<i8qiB", 4, 1, 1, 2, 2, 0, 0, 0, 0, 2, 0),
        # the epilogue (affine 1, residual 2, activation code << 2) and formats (kHWC 8, kHWC8 2, kHWC16 11)
        "v2_record_epilogue": b"\x00" + struct.pack("<IIfiiii", 0x414D4953, 2, 1e-4, 1, 1, 1, 1),
        "v2_epilogue_bad_activation": b"\x00" + struct.pack("<IIfiiii", 0x414D4953, 2, 1e-4, 1, 1, 0, 7),
        "v2_epilogue_none": b"\x00" + struct.pack("<IIfiiii", 0x414D4953, 2, 1e-4, 1, 0, 0, 0),
        "fields_epilogue": b"\x01\x05"
        + field(0, FLOAT32, 1, lam)
        + field(1, INT32, 1, one)
        + field(8, INT32, 1, one)
        + field(9, INT32, 1, one)
        + field(10, CHAR, 4, b"silu"),
        "fields_activation_unknown": b"\x01\x02" + field(0, FLOAT32, 1, lam) + field(10, CHAR, 4, b"gelu"),
        "fields_activation_nul": b"\x01\x02" + field(0, FLOAT32, 1, lam) + field(10, CHAR, 5, b"relu\0"),
        "fields_activation_int": b"\x01\x02" + field(0, FLOAT32, 1, lam) + field(10, INT32, 1, one),
        "fields_affine_two": b"\x01\x02" + field(0, FLOAT32, 1, lam) + field(8, INT32, 1, two),
        "dims_hwc_epilogue": dims((2, 3, 4, 5), 1, 8, 0b0111),
        "dims_hwc8_residual": dims((1, 5, 4, 4), 1, 2, 0b1010),
        "dims_hwc16_empty": dims((0, 5, 4, 4), 1, 11, 0b0001),
        "dims_bad_format": dims((1, 3, 4, 4), 0, 5, 0),
        "dims_wrong_count": dims((1, 3, 4, 4), 0, 0, 0b0011, count=2),
    }


def attribute(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + value.ljust(8, b"\0")


def ort(
    op: int, name: bytes, lam, unb, dims: tuple[int, ...], in_place: int = 0, epilogue: bytes | None = None
) -> bytes:
    """``epilogue``: affine attribute + residual attribute + activation (kind, text choice) + input count
    (0: as the attributes say) + scale/bias length offset (0: C); absent attributes by default."""
    absent = attribute(0, b"")
    epilogue = epilogue if epilogue is not None else absent + absent + bytes([0, 0, 0, 0])
    return (
        bytes([op, len(name)]) + name + lam + unb + epilogue + bytes([len(dims), *dims, in_place]) + PAYLOAD
    )


def epi(affine: int, residual: int, activation: int, kind: int = 3, count: int = 0, offset: int = 0) -> bytes:
    """The epilogue part of an ORT seed; activation indexes none, relu, silu, gelu, ""."""
    flags = attribute(2, struct.pack("<q", affine)) + attribute(2, struct.pack("<q", residual))
    return flags + bytes([kind, activation, count, offset])


def ort_seeds() -> dict[str, bytes]:
    lam = attribute(1, struct.pack("<f", 1e-4))
    one, zero = attribute(2, struct.pack("<q", 1)), attribute(2, struct.pack("<q", 0))
    absent = attribute(0, b"")
    return {
        "fp32": ort(0, b"simam1", lam, one, (2, 3, 4, 5)),
        "fp16_in_place": ort(1, b"n", lam, zero, (1, 4, 7, 7), 1),
        "bf16_default_unbiased": ort(2, b"", lam, absent, (2, 2, 3, 3)),
        "many_planes": ort(0, b"big", lam, one, (2, 16, 12, 12)),
        "rank3": ort(0, b"r3", lam, one, (2, 3, 4)),
        "empty": ort(0, b"e", lam, one, (2, 0, 4, 4)),
        "one_by_one": ort(0, b"p", lam, one, (2, 3, 1, 1)),
        "lambda_missing": ort(0, b"m", absent, one, (1, 1, 2, 2)),
        "lambda_int": ort(0, b"i", attribute(2, struct.pack("<q", 1)), one, (1, 1, 2, 2)),
        "lambda_string": ort(0, b"s", attribute(3, b""), one, (1, 1, 2, 2)),
        "lambda_negative": ort(0, b"neg", attribute(1, struct.pack("<f", -1.0)), one, (1, 1, 2, 2)),
        "lambda_nan": ort(0, b"nan", attribute(1, struct.pack("<f", float("nan"))), one, (1, 1, 2, 2)),
        "unbiased_two": ort(0, b"u", lam, attribute(2, struct.pack("<q", 2)), (1, 1, 2, 2)),
        "unbiased_float": ort(0, b"uf", lam, attribute(1, struct.pack("<f", 1.0)), (1, 1, 2, 2)),
        "unbiased_list": ort(0, b"ul", lam, attribute(5, struct.pack("<q", 1)), (1, 1, 2, 2)),
        "epilogue_all": ort(0, b"block", lam, one, (2, 3, 4, 5), epilogue=epi(1, 1, 1)),
        "epilogue_fp16_in_place": ort(1, b"h", lam, one, (1, 4, 6, 6), 1, epi(1, 1, 2)),
        "epilogue_residual_silu": ort(2, b"r", lam, zero, (2, 2, 3, 3), epilogue=epi(0, 1, 2)),
        "epilogue_activation_gelu": ort(0, b"g", lam, one, (1, 2, 3, 3), epilogue=epi(0, 0, 3)),
        "epilogue_activation_int": ort(0, b"ai", lam, one, (1, 2, 3, 3), epilogue=epi(0, 0, 1, kind=2)),
        "epilogue_affine_two": ort(0, b"a2", lam, one, (1, 2, 3, 3), epilogue=epi(2, 0, 0)),
        "epilogue_count_short": ort(0, b"c", lam, one, (1, 2, 3, 3), epilogue=epi(1, 1, 0, count=3)),
        "epilogue_scale_short": ort(0, b"s", lam, one, (2, 4, 3, 3), epilogue=epi(1, 0, 0, offset=1)),
    }


def main() -> int:
    targets = {"simam_fuzz_capi": capi_seeds(), "simam_fuzz_ort_op": ort_seeds()}
    targets.update({f"simam_fuzz_trt_{v}": trt_seeds() for v in TRT_VERSIONS})
    for target, seeds in targets.items():
        folder = CORPUS / target
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
        for name, data in seeds.items():
            (folder / name).write_bytes(data)
        print(f"{folder.relative_to(CORPUS.parent.parent.parent)}: {len(seeds)} seeds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
