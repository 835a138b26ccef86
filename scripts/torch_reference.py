#!/usr/bin/python3
"""torch_reference.py: an independent PyTorch definition of the dsdeblur generator and
PatchGAN discriminator (paper sections 2.1 - 2.5, src/dsdeblur_model.h), used to make the
reference data that tests/test-torch-reference.c compares the OpenCL library with.

It is not part of the build and nothing in `make check` runs it: the data it writes,
tests/data/torch-reference.safetensors, is committed. It needs only PyTorch and NumPy
(Debian: python3-torch, python3-numpy); safetensors files are read and written by the
small functions below (8-byte little-endian header length, JSON header, raw
little-endian data), because the `safetensors` package is not in Debian.

The modules are written from the paper and the header, not from the C code, and their
state_dict() keys are exactly the library's parameter names ("head.weight",
"blocks.1.dsc.2.pointwise.bias", "layers.4.conv.weight", ...), so a library checkpoint
loads with load_state_dict(strict=True).

Usage:
    /usr/bin/python3 tools/torch_reference.py make-test-data tests/data/torch-reference.safetensors
    /usr/bin/python3 tools/torch_reference.py check-test-data tests/data/torch-reference.safetensors
make-test-data builds small networks with seeded weights, runs forward and backward in
float64 and stores weights, inputs, outputs, the upstream gradients, dx and every
parameter gradient as F32 (weights and inputs are rounded to float32 before the float64
run, so the stored values are exactly the ones the reference used). check-test-data
loads such a file back (strict), recomputes everything and reports the differences.
"""
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# ---------------------------------------------------------------------------
# Generator (paper 2.1 - 2.4)


class ChannelAttention(nn.Module):
    """mc = sigmoid(fc2(lrelu(fc1(avgpool f))) + fc2(lrelu(fc1(maxpool f)))), (N, C, 1, 1)."""

    def __init__(self, channels, hidden, slope):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        self.slope = slope

    def mlp(self, v):
        return self.fc2(F.leaky_relu(self.fc1(v), self.slope))

    def forward(self, f):
        avg = f.mean(dim=(2, 3), keepdim=True)
        mx = f.amax(dim=(2, 3), keepdim=True)
        return torch.sigmoid(self.mlp(avg) + self.mlp(mx))


class SpatialAttention(nn.Module):
    """ms = sigmoid(conv7x7 pad 3 (zeros) ([mean_c f; max_c f])), (N, 1, H, W)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, 7, padding=3)

    def forward(self, f):
        cat = torch.cat([f.mean(dim=1, keepdim=True), f.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(cat))


class DSC(nn.Module):
    """Depthwise separable conv: ReflectionPad(1) depthwise 3x3 + pointwise 1x1, both biased."""

    def __init__(self, channels):
        super().__init__()
        self.pad = nn.ReflectionPad2d(1)
        self.depthwise = nn.Conv2d(channels, channels, 3, groups=channels)
        self.pointwise = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        return self.pointwise(self.depthwise(self.pad(x)))


class DSCRb(nn.Module):
    """f1 = f * CA(f); f2 = f1 * SA(f1);
    out = f + DSC(LReLU(DSC(Dropout(LReLU(DSC(f2))))))."""

    def __init__(self, channels, hidden, dropout, slope):
        super().__init__()
        self.ca = ChannelAttention(channels, hidden, slope)
        self.sa = SpatialAttention()
        self.dsc = nn.ModuleList([DSC(channels) for _ in range(3)])
        self.drop = nn.Dropout(dropout)
        self.slope = slope

    def forward(self, f):
        f1 = f * self.ca(f)
        f2 = f1 * self.sa(f1)
        t = self.drop(F.leaky_relu(self.dsc[0](f2), self.slope))
        t = F.leaky_relu(self.dsc[1](t), self.slope)
        return f + self.dsc[2](t)


class Generator(nn.Module):
    """x (N, 3, H, W) in [-1, 1] -> clamp(x + tanh(tail(...)), -1, 1)."""

    def __init__(self, base_width=64, n_blocks=9, mlp_ratio=16, up_kernel=3, dropout=0.5,
                 slope=0.2):
        super().__init__()
        b, c, k = base_width, 4 * base_width, up_kernel
        hidden = max(c // mlp_ratio, 1)
        self.slope = slope
        self.pad3 = nn.ReflectionPad2d(3)
        self.head = nn.Conv2d(3, b, 7)
        self.down = nn.ModuleList([nn.Conv2d(b, 2 * b, 3, stride=2, padding=1),
                                   nn.Conv2d(2 * b, c, 3, stride=2, padding=1)])
        self.blocks = nn.ModuleList([DSCRb(c, hidden, dropout, slope) for _ in range(n_blocks)])
        self.up = nn.ModuleList([nn.Conv2d(c, 8 * b, k, padding=k // 2),
                                 nn.Conv2d(2 * b, 4 * b, k, padding=k // 2)])
        self.shuffle = nn.PixelShuffle(2)
        self.tail = nn.Conv2d(b, 3, 7)

    def forward(self, x):
        s = self.slope
        f = F.leaky_relu(self.head(self.pad3(x)), s)
        for conv in self.down:
            f = F.leaky_relu(conv(f), s)
        for block in self.blocks:
            f = block(f)
        for conv in self.up:
            f = F.leaky_relu(self.shuffle(conv(f)), s)
        t = torch.tanh(self.tail(self.pad3(f)))
        return torch.clamp(x + t, -1.0, 1.0)


# ---------------------------------------------------------------------------
# Discriminator (paper 2.5): PatchGAN, logits (no sigmoid)


class DiscLayer(nn.Module):
    def __init__(self, cin, cout, stride, norm, norm_affine, eps):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 4, stride=stride, padding=2)
        self.norm = nn.InstanceNorm2d(cout, eps=eps, affine=norm_affine) if norm else None


class Discriminator(nn.Module):
    """layers.0: conv s2, LReLU; layers.1..L-1: conv s2, IN, LReLU; layers.L: conv s1, IN,
    LReLU; layers.L+1: conv s1 -> 1 channel. 4x4 kernels, zero padding 2."""

    def __init__(self, in_channels=3, base_width=64, n_layers=3, norm_affine=False, eps=1e-5,
                 slope=0.2):
        super().__init__()
        self.slope = slope
        width = [in_channels, base_width] + [base_width * min(2 ** i, 8)
                                             for i in range(1, n_layers + 1)] + [1]
        layers = []
        for i in range(n_layers + 2):
            stride = 2 if i < n_layers else 1
            layers.append(DiscLayer(width[i], width[i + 1], stride, 1 <= i <= n_layers,
                                    norm_affine, eps))
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer.conv(x)
            if layer.norm is not None:
                x = layer.norm(x)
            if i != last:
                x = F.leaky_relu(x, self.slope)
        return x


# ---------------------------------------------------------------------------
# safetensors, without the safetensors package

DTYPES = {"F32": ("<f4", 4), "F64": ("<f8", 8), "F16": ("<f2", 2)}


def save_safetensors(path, tensors, metadata):
    """tensors: name -> numpy array (stored F32); written sorted by name, data 8-aligned,
    to path.tmp.<pid>, fsynced and renamed."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name], dtype="<f4")
        raw = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - (8 + len(hjson)) % 8) % 8)
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for raw in blobs:
            f.write(raw)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


def load_safetensors(path):
    """-> (name -> numpy array, metadata dict)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError("%s: shorter than the 8-byte header length" % path)
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise ValueError("%s: header length %d exceeds the file" % (path, n))
    header = json.loads(data[8:8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", {})
    body = data[8 + n:]
    out = {}
    for name, e in header.items():
        dt, size = DTYPES[e["dtype"]]
        b, end = e["data_offsets"]
        count = int(np.prod(e["shape"], dtype=np.int64))
        if not (0 <= b <= end <= len(body)) or end - b != count * size:
            raise ValueError("%s: tensor '%s': bad data_offsets" % (path, name))
        out[name] = np.frombuffer(body[b:end], dtype=dt).reshape(e["shape"]).astype(np.float64)
    return out, metadata


# ---------------------------------------------------------------------------
# Reference data

GEN_CONFIG = dict(base_width=8, n_blocks=2, mlp_ratio=4, up_kernel=3, dropout=0.0, slope=0.2)
GEN_INPUT = (2, 3, 12, 20)
DISC_CONFIG = dict(in_channels=3, base_width=8, n_layers=3, norm_affine=False, eps=1e-5,
                   slope=0.2)
DISC_INPUT = (2, 3, 19, 23)
SEED = 20240601


def f32(t):
    """Rounds to float32 and back, so float64 math sees exactly what the file stores."""
    return t.float().double()


def run_reference(model, x, dy):
    """Forward and backward in float64. -> y, dx, {name: grad}."""
    model.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    y = model(x)
    y.backward(dy)
    grads = {k: p.grad.detach().clone() for k, p in model.named_parameters()}
    return y.detach(), x.grad.detach(), grads


def reference_tensors(prefix, model, x, dy):
    y, dx, grads = run_reference(model, x, dy)
    out = {prefix + ".x": x, prefix + ".y": y, prefix + ".dy": dy, prefix + ".dx": dx}
    for k, v in model.state_dict().items():
        out[prefix + ".weights." + k] = v
    for k, v in grads.items():
        out[prefix + ".grad." + k] = v
    return {k: v.numpy() for k, v in out.items()}


def make_models():
    return Generator(**GEN_CONFIG), Discriminator(**DISC_CONFIG)


def make_test_data(path):
    torch.manual_seed(SEED)
    gen, disc = make_models()
    # Round the (float32, PyTorch-default) initial weights once; .double() is exact.
    gen, disc = gen.double(), disc.double()
    gen.train()   # dropout 0: training and inference agree
    disc.train()  # InstanceNorm2d without running stats: same in both modes
    gx = f32(torch.rand(GEN_INPUT, dtype=torch.float64) * 2 - 1)
    gdy = f32(torch.randn(GEN_INPUT, dtype=torch.float64))
    dx_in = f32(torch.rand(DISC_INPUT, dtype=torch.float64) * 2 - 1)
    with torch.no_grad():
        dout = disc(dx_in).shape
    ddy = f32(torch.randn(dout, dtype=torch.float64))
    tensors = reference_tensors("generator", gen, gx, gdy)
    tensors.update(reference_tensors("discriminator", disc, dx_in, ddy))
    meta = {"format": "dsdeblur-torch-reference-1", "torch_version": torch.__version__,
            "seed": SEED, "precision": "float64 (stored as F32)",
            "generator.config": json.dumps(GEN_CONFIG, sort_keys=True),
            "discriminator.config": json.dumps(DISC_CONFIG, sort_keys=True)}
    for k, v in GEN_CONFIG.items():
        meta["generator." + k] = repr(v)
    for k, v in DISC_CONFIG.items():
        meta["discriminator." + k] = repr(int(v) if isinstance(v, bool) else v)
    save_safetensors(path, tensors, meta)
    nbytes = os.path.getsize(path)
    print("wrote %s: %d tensors, %d bytes, torch %s" % (path, len(tensors), nbytes,
                                                         torch.__version__))
    print("output shapes: generator %s, discriminator %s" % (tuple(GEN_INPUT), tuple(dout)))


def check_test_data(path):
    """Loads a file made by make-test-data into fresh modules (strict) and recomputes it."""
    tensors, meta = load_safetensors(path)
    gen = Generator(**json.loads(meta["generator.config"])).double()
    disc = Discriminator(**json.loads(meta["discriminator.config"])).double()
    worst = 0.0
    for prefix, model in (("generator", gen), ("discriminator", disc)):
        w = {k[len(prefix) + 9:]: torch.from_numpy(v) for k, v in tensors.items()
             if k.startswith(prefix + ".weights.")}
        model.load_state_dict(w, strict=True)
        x = torch.from_numpy(tensors[prefix + ".x"])
        dy = torch.from_numpy(tensors[prefix + ".dy"])
        got = reference_tensors(prefix, model, x, dy)
        for k in sorted(got):
            ref = tensors[k]
            err = np.abs(got[k].astype(np.float32) - ref).max() / max(np.abs(ref).max(), 1e-30)
            worst = max(worst, err)
            if err > 1e-6:
                print("%-50s rel err %.3g" % (k, err))
    print("%s: %d tensors recomputed, worst relative error %.3g (F32 rounding)" %
          (path, len(tensors), worst))
    return 0 if worst <= 1e-6 else 1


def main(argv):
    if len(argv) == 3 and argv[1] == "make-test-data":
        make_test_data(argv[2])
        return 0
    if len(argv) == 3 and argv[1] == "check-test-data":
        return check_test_data(argv[2])
    sys.stderr.write("usage: %s make-test-data|check-test-data FILE.safetensors\n" % argv[0])
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
