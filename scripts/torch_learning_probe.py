#!/usr/bin/python3
"""How fast the generator *learns* deblurring, measured in PyTorch.

scripts/torch_reference.py checks that dsdeblur computes what PyTorch computes;
this script asks a different question: how many training steps the
generator needs before it deblurs at all, independently of dsdeblur's
implementation and speed. It trains the same generator (torch_reference's
Generator) on the same kind of batches as `dsdeblur-train` in synthetic mode:
random crops of sharp photographs with horizontal flips, each blurred by a
camera-shake PSF drawn by libdsdeblur itself (dsd_blur_psf_generate through
ctypes, the trainer's seed and stream convention), true convolution with
reflected borders, Gaussian noise with a std drawn per step; Adam, L1 or MSE.
At the steps given by --eval-at it deblurs monitoring sets made by
dsdeblur-blur (DIR/blur, DIR/sharp) and prints the mean PSNR gain on 8-bit
output, as dsdeblur-eval measures it.

Usage (build tree; doc/model-card.md has the runs):
  /usr/bin/python3 scripts/torch_learning_probe.py --train /tmp/default-data/train \\
      --monitor /tmp/mon/L10 --monitor /tmp/mon/L40 --steps 800 --eval-at 400

Needs python3-torch, python3-numpy, python3-pil (Debian) and a built
libdsdeblur (--lib, default .libs/libdsdeblur.so). Nothing is downloaded.
"""
import argparse
import ctypes
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_reference import Generator  # noqa: E402

PSF_MAX = 64


class Rng(ctypes.Structure):
    _fields_ = [("key", ctypes.c_uint32 * 2), ("ctr", ctypes.c_uint32 * 4),
                ("out", ctypes.c_uint32 * 4), ("used", ctypes.c_int)]


class PsfParams(ctypes.Structure):
    _fields_ = [("size", ctypes.c_int), ("steps", ctypes.c_int), ("length", ctypes.c_double),
                ("anxiety", ctypes.c_double), ("exposure", ctypes.c_double),
                ("trim", ctypes.c_int)]


class Psf(ctypes.Structure):
    _fields_ = [("h", ctypes.c_int), ("w", ctypes.c_int),
                ("data", ctypes.c_float * (PSF_MAX * PSF_MAX))]


class PsfSource:
    """PSF i of step s: stream s * batch + i of the seed, as dsdeblur-train."""

    def __init__(self, lib_path, size, seed):
        self.lib = ctypes.CDLL(lib_path)
        self.lib.dsd_rng_init.argtypes = [ctypes.POINTER(Rng), ctypes.c_uint64, ctypes.c_uint64]
        self.lib.dsd_blur_psf_params_default.argtypes = [ctypes.POINTER(PsfParams)]
        self.lib.dsd_blur_psf_generate.argtypes = [ctypes.POINTER(PsfParams), ctypes.POINTER(Rng),
                                                   ctypes.POINTER(Psf), ctypes.c_void_p]
        self.lib.dsd_blur_psf_embed.argtypes = [ctypes.POINTER(Psf), ctypes.c_int, ctypes.c_int,
                                                ctypes.POINTER(ctypes.c_float), ctypes.c_void_p]
        self.params = PsfParams()
        self.lib.dsd_blur_psf_params_default(ctypes.byref(self.params))
        self.params.size = size
        self.params.length = 2.0 * ((size - 1) // 2) * 60.0 / 62.0  # as dsdeblur-train
        self.size, self.seed = size, seed
        self.err = ctypes.create_string_buffer(8192)  # a dsd_error

    def draw(self, stream):
        rng, psf = Rng(), Psf()
        self.lib.dsd_rng_init(ctypes.byref(rng), self.seed, stream)
        if self.lib.dsd_blur_psf_generate(ctypes.byref(self.params), ctypes.byref(rng),
                                          ctypes.byref(psf), self.err) != 0:
            raise RuntimeError("dsd_blur_psf_generate failed")
        frame = (ctypes.c_float * (self.size * self.size))()
        self.lib.dsd_blur_psf_embed(ctypes.byref(psf), self.size, self.size, frame, self.err)
        return np.frombuffer(frame, dtype=np.float32).reshape(self.size, self.size).copy()


def blur(sharp, psfs):
    """True convolution with anchor ((K-1)/2, (K-1)/2) and reflected borders
    (doc/synthetic-blur.md): a correlation with the flipped PSF."""
    n, c, h, w = sharp.shape
    k = psfs.shape[-1]
    a = (k - 1) // 2
    xp = F.pad(sharp, (k - 1 - a, a, k - 1 - a, a), mode="reflect")
    wk = torch.flip(psfs, dims=(1, 2))[:, None].repeat_interleave(c, 0)
    y = F.conv2d(xp.reshape(1, n * c, h + k - 1, w + k - 1), wk, groups=n * c)
    return y.reshape(n, c, h, w)


def load_rgb(path):
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)


def psnr(a, b):
    return 10 * math.log10(255.0 ** 2 / np.mean((a.astype(np.float64) - b) ** 2))


def evaluate(model, folders):
    model.eval()
    gains = []
    for d in folders:
        g = []
        for f in sorted(os.listdir(os.path.join(d, "blur"))):
            bl = load_rgb(os.path.join(d, "blur", f))
            sh = load_rgb(os.path.join(d, "sharp", f))
            with torch.no_grad():
                x = torch.from_numpy(bl.transpose(2, 0, 1)[None] / 127.5 - 1).contiguous()
                o = model(x)[0].numpy().transpose(1, 2, 0)
            o = np.clip(np.round((o + 1) * 127.5), 0, 255)
            g.append(psnr(o, sh) - psnr(bl, sh))
        gains.append(float(np.mean(g)))
    model.train()
    return gains


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", required=True, help="folder of sharp training photographs")
    ap.add_argument("--monitor", action="append", required=True,
                    help="a dsdeblur-blur output folder (blur/, sharp/); repeatable")
    ap.add_argument("--lib", default=".libs/libdsdeblur.so")
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--eval-at", default="", help="comma-separated steps")
    ap.add_argument("--kernel-size", type=int, default=64)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--blocks", type=int, default=6)
    ap.add_argument("--mlp-ratio", type=int, default=8)
    ap.add_argument("--lr", type=float, default=4e-4)
    ap.add_argument("--loss", choices=["l1", "mse"], default="l1")
    ap.add_argument("--noise", default="0.00784:0.01569", help="std range, [-1, 1] units")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    lo, hi = (float(v) for v in a.noise.split(":"))
    source = PsfSource(a.lib, a.kernel_size, a.seed)
    photos = [load_rgb(os.path.join(a.train, f)) / 127.5 - 1 for f in sorted(os.listdir(a.train))]
    model = Generator(base_width=a.width, n_blocks=a.blocks, mlp_ratio=a.mlp_ratio, up_kernel=3,
                      dropout=0.0)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, betas=(0.9, 0.999))
    eval_at = {int(s) for s in a.eval_at.split(",") if s}
    names = ", ".join(os.path.basename(os.path.normpath(d)) for d in a.monitor)
    print(f"monitoring sets: {names}; PSNR gain in dB over the blurred input", flush=True)
    t0 = time.time()
    for step in range(a.steps + 1):
        if step in eval_at or step == a.steps:
            gains = " ".join(f"{g:+.3f}" for g in evaluate(model, a.monitor))
            print(f"step {step:6d} {time.time() - t0:7.0f} s  gains {gains}", flush=True)
        if step == a.steps:
            break
        crops, psfs = [], []
        for i in range(a.batch):
            im = photos[rng.integers(len(photos))]
            h, w, _ = im.shape
            y, x = rng.integers(h - a.crop + 1), rng.integers(w - a.crop + 1)
            c = im[y:y + a.crop, x:x + a.crop]
            if rng.random() < 0.5:
                c = c[:, ::-1]
            crops.append(np.ascontiguousarray(c.transpose(2, 0, 1)))
            psfs.append(source.draw(step * a.batch + i))
        sharp = torch.from_numpy(np.stack(crops))
        blurred = blur(sharp, torch.from_numpy(np.stack(psfs)))
        blurred = blurred + (lo + (hi - lo) * rng.random()) * torch.randn_like(blurred)
        out = model(blurred)
        loss = (out - sharp).abs().mean() if a.loss == "l1" else ((out - sharp) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
