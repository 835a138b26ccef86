#!/usr/bin/env python3
"""convert_vgg19.py: write torchvision's ImageNet VGG-19 weights as the
safetensors file dsdeblur's perceptual loss reads (doc/vgg.md).

Run it on a machine with torchvision and network access (dsdeblur itself
never downloads anything):

    python3 scripts/convert_vgg19.py vgg19-features.safetensors

It stores features.<i>.weight / features.<i>.bias for i <= --last (default
14, conv3_3: what the perceptual loss uses) under torchvision's own names, as
little-endian float32. --last 35 keeps every conv of `features`. The classifier
is not needed and not written.

It does not convert other networks or checkpoints (dsd_vgg_load also accepts a
full vgg19 state_dict saved as safetensors: extra keys are ignored).
Uses the `safetensors` package when it is importable; otherwise it writes the
format directly: u64 little-endian header length, JSON header, raw data.
"""
import argparse
import array
import json
import os
import struct
import sys


def features_state(last):
    """features.<i>.{weight,bias} for i <= last as contiguous float32 tensors."""
    import torchvision  # imported here so --help works without it

    model = torchvision.models.vgg19(weights="IMAGENET1K_V1")
    model.eval()
    out = {}
    for name, tensor in model.state_dict().items():
        parts = name.split(".")
        if parts[0] == "features" and int(parts[1]) <= last:
            out[name] = tensor.detach().to("cpu").float().contiguous()
    return out


def f32_le_bytes(values):
    """A flat sequence of floats as little-endian float32 bytes (no numpy needed)."""
    a = array.array("f", values)
    assert a.itemsize == 4
    if sys.byteorder == "big":
        a.byteswap()
    return a.tobytes()


def write_plain(path, tensors):
    """The safetensors format by hand (see src/io/safetensors.h). tensors maps a
    name to (shape, flat float values)."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        shape, values = tensors[name]
        data = f32_le_bytes(values)
        header[name] = {"dtype": "F32", "shape": list(shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {"source": "torchvision vgg19 IMAGENET1K_V1"}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # data section 8-byte aligned
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for data in blobs:
            f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("output", help="safetensors file to write")
    ap.add_argument("--last", type=int, default=14,
                    help="last features index to keep (default 14, conv3_3; 35 for all convs)")
    args = ap.parse_args()
    if not 0 <= args.last <= 35:
        ap.error("--last must be in 0..35")
    tensors = features_state(args.last)
    try:
        from safetensors.torch import save_file
    except ImportError:
        write_plain(args.output, {name: (list(t.shape), t.flatten().tolist())
                                  for name, t in tensors.items()})
    else:
        tmp = "%s.tmp.%d" % (args.output, os.getpid())
        save_file(tensors, tmp, metadata={"source": "torchvision vgg19 IMAGENET1K_V1"})
        os.replace(tmp, args.output)
    count = sum(t.numel() for t in tensors.values())
    print("%s: %d tensors, %d parameters" % (args.output, len(tensors), count))
    return 0


if __name__ == "__main__":
    sys.exit(main())
