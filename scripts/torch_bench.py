#!/usr/bin/python3
"""torch_bench.py: times dsdeblur's networks in PyTorch, fp32, on one machine: the generator's
inference, one training step of the GAN as src/train/trainer.c takes it, and the machine's
SGEMM rate. It is the PyTorch half of scripts/bench-vs-torch (doc/benchmarks.md), which runs
tools/dsdeblur-bench with the same configuration and puts the two side by side; it can also
run alone. It prints one JSON object (schema "dsdeblur-torch-bench/1") and counts no FLOPs:
the driver does, once for both sides.

The networks are scripts/torch_reference.py's (the same modules tests/test-torch-reference
checks against the library); VGG-19 up to conv3_3 is built here with random weights, as
dsdeblur-bench does without --vgg (a convolution's time does not depend on its weights).

What a training step is (src/train/trainer.c, doc/model.md):
  fake = G(blur)                 train mode: dropout on
  D step: D(sharp), D(fake.detach()), relativistic average loss, backward, Adam
  G step: D(sharp) without gradients, D(fake) with D frozen, relativistic loss
          + lambda x content loss (perceptual: MSE of VGG-19 conv3_3 features), backward
          into G only, Adam
plus, as the trainer, the three loss values and the two gradient sums of squares read back
for its NaN checks. dsdeblur's step also loads its batch (a loader thread and an upload);
here the batch is one pair of random tensors made once, so PyTorch gets no data cost.

Needs PyTorch only (Debian: python3-torch; with libopenblas0-pthread, or its BLAS is the
slow reference one). Exits 3, with one line on stderr, when torch cannot be imported.

Usage:
    /usr/bin/python3 scripts/torch_bench.py [--threads N] [--reps N] [--size WxH]...
        [--generator.n_blocks 9] [--data.crop 256] [--train.batch 1] ... [--json FILE]
    /usr/bin/python3 scripts/torch_bench.py --probe     # versions only, no timing
"""
import argparse
import ctypes
import json
import math
import os
import platform
import re
import statistics
import sys
import time
import types

SCHEMA = "dsdeblur-torch-bench/1"
EXIT_NO_TORCH = 3

# The configuration keys this script understands, with the library's defaults (the paper's;
# src/io/config.c). The option names are the keys, so the driver passes --KEY VALUE for each.
CONFIG_KEYS = [
    ("generator.n_blocks", int, 9),
    ("generator.base_width", int, 64),
    ("generator.mlp_ratio", int, 16),
    ("generator.up_kernel", int, 3),
    ("generator.dropout", float, 0.5),
    ("generator.slope", float, 0.2),
    ("discriminator.base_width", int, 64),
    ("discriminator.n_layers", int, 3),
    ("discriminator.norm_affine", "bool", False),
    ("data.crop", int, 256),
    ("train.batch", int, 1),
    ("train.lr", float, 1e-4),
    ("train.beta1", float, 0.5),
    ("train.beta2", float, 0.999),
    ("train.eps", float, 1e-8),
    ("train.lambda", float, 100.0),
    ("train.content_loss", str, "perceptual"),
]
CONTENT_LOSSES = ("perceptual", "l1", "mse", "fft")


def parse_bool(text):
    t = str(text).strip().lower()
    if t in ("true", "1", "yes", "on"):
        return True
    if t in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError("not a boolean: %r" % text)


def parse_size(text):
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError("size must be WxH, e.g. 1280x720: %r" % text)
    if w < 8 or h < 8 or w % 4 or h % 4:
        raise argparse.ArgumentTypeError("%s: sides must be multiples of 4, at least 8" % text)
    return (w, h)


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Time dsdeblur's networks in PyTorch (fp32): generator inference, one GAN "
        "training step as dsdeblur's trainer, and SGEMM. Prints JSON.")
    p.add_argument("--threads", type=int, default=default_threads(),
                   help="torch.set_num_threads and OpenBLAS threads (default: the cores "
                   "this process may use, %(default)s)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs first (default 1)")
    p.add_argument("--reps", type=int, default=3, help="timed runs; the median is reported "
                   "(default 3)")
    p.add_argument("--size", type=parse_size, action="append",
                   help="inference size WxH (repeatable; default 1280x720)")
    p.add_argument("--skip-inference", action="store_true")
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--skip-sgemm", action="store_true")
    p.add_argument("--sgemm-size", type=int, default=4096,
                   help="square SGEMM side (default 4096)")
    p.add_argument("--device", default="cpu", help="torch device: cpu (default) or cuda[:N]")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", metavar="FILE", help="also write the JSON to FILE")
    p.add_argument("--probe", action="store_true",
                   help="print the versions (torch, BLAS, threads) and exit")
    for key, typ, default in CONFIG_KEYS:
        p.add_argument("--" + key, dest=key.replace(".", "__"), default=default,
                       type=parse_bool if typ == "bool" else typ, metavar="V",
                       help="as dsdeblur's configuration key (default %(default)s)")
    a = p.parse_args(argv)
    if not a.size:
        a.size = [(1280, 720)]
    if a.reps < 1 or a.warmup < 0 or a.threads < 1:
        p.error("--reps and --threads must be at least 1, --warmup at least 0")
    crop = getattr(a, "data__crop")
    if crop < 8 or crop % 4:
        p.error("--data.crop must be a multiple of 4, at least 8")
    if getattr(a, "train__content_loss") not in CONTENT_LOSSES:
        p.error("--train.content_loss must be one of " + ", ".join(CONTENT_LOSSES))
    return a


def cfg(a, key):
    return getattr(a, key.replace(".", "__"))


def default_threads():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# ---------------------------------------------------------------------------
# Versions and the BLAS actually loaded


def loaded_blas():
    """The BLAS shared object this process mapped (Debian's alternatives decide which one
    torch gets), and OpenBLAS's own description of itself when it is OpenBLAS."""
    path = None
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                name = line.split()[-1] if len(line.split()) >= 6 else ""
                base = os.path.basename(name)
                if "openblas" in name or base.startswith("libblas.so") or "mkl" in base:
                    path = os.path.realpath(name)
                    if "openblas" in path or "mkl" in path:
                        break
    except OSError:
        pass
    info = {"library": path, "openblas_config": None, "openblas_threads": None}
    if path and "openblas" in path:
        try:
            lib = ctypes.CDLL(path)
            lib.openblas_get_config.restype = ctypes.c_char_p
            info["openblas_config"] = lib.openblas_get_config().decode()
            info["openblas_threads"] = lib.openblas_get_num_threads()
        except (OSError, AttributeError):
            pass
    return info


def versions(torch, device):
    out = {
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "device": str(device),
        "blas": loaded_blas(),
    }
    # the build's own words: BLAS_INFO, the oneDNN (MKL-DNN) version that runs most CPU
    # convolutions, and the vector extension ATen's kernels were dispatched to
    show = torch.__config__.show()
    for key, pattern in (("torch_blas_info", r"BLAS_INFO=([^,\s]+)"),
                         ("torch_mkldnn", r"MKL-DNN (v[^\s]+)"),
                         ("torch_cpu_capability", r"CPU capability usage: (\S+)")):
        m = re.search(pattern, show)
        out[key] = m.group(1) if m else None
    if device.type == "cuda":
        out["cuda_device"] = torch.cuda.get_device_name(device)
        out["cuda"] = torch.version.cuda
    return out


# ---------------------------------------------------------------------------
# Timing


def median_low(values):
    """The lower middle value, as dsdeblur-bench: a time that some run really took."""
    return statistics.median_low(values)


def time_runs(fn, warmup, reps, sync, label):
    for i in range(warmup):
        t0 = time.perf_counter()
        fn()
        sync()
        progress("%s: warm-up %d/%d %.3f s" % (label, i + 1, warmup, time.perf_counter() - t0))
    times = []
    for i in range(reps):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
        progress("%s: run %d/%d %.3f s" % (label, i + 1, reps, times[-1]))
    return {"median_s": median_low(times), "min_s": min(times), "max_s": max(times),
            "times_s": times}


def progress(text):
    sys.stderr.write("torch_bench: %s\n" % text)
    sys.stderr.flush()


# ---------------------------------------------------------------------------
# The networks


def make_generator(tr, a):
    return tr.Generator(base_width=cfg(a, "generator.base_width"),
                        n_blocks=cfg(a, "generator.n_blocks"),
                        mlp_ratio=cfg(a, "generator.mlp_ratio"),
                        up_kernel=cfg(a, "generator.up_kernel"),
                        dropout=cfg(a, "generator.dropout"),
                        slope=cfg(a, "generator.slope"))


def make_discriminator(tr, a):
    return tr.Discriminator(base_width=cfg(a, "discriminator.base_width"),
                            n_layers=cfg(a, "discriminator.n_layers"),
                            norm_affine=cfg(a, "discriminator.norm_affine"))


def make_vgg(torch):
    """torchvision's vgg19().features[:15] (conv1_1 .. conv3_3, no ReLU after conv3_3) behind
    the [-1, 1] -> ImageNet normalization of doc/vgg.md; frozen, random weights."""
    nn = torch.nn
    layers, cin = [], 3
    for v in (64, 64, "M", 128, 128, "M", 256, 256, 256):
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=True)]
            cin = v
    features = nn.Sequential(*layers[:-1])
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    class Vgg(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = features
            self.register_buffer("scale", 0.5 / std)
            self.register_buffer("shift", (0.5 - mean) / std)

        def forward(self, x):
            return self.features(x * self.scale + self.shift)

    vgg = Vgg().eval()
    for p in vgg.parameters():
        p.requires_grad_(False)
    return vgg


def ragan(torch, real, fake, real_target):
    """Relativistic average loss (doc/model.md): BCE(C(r) - mean C(f), t) +
    BCE(C(f) - mean C(r), 1 - t), t = 1 for D, 0 for G; means over the whole logit map."""
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    ones, zeros = torch.ones_like(real), torch.zeros_like(real)
    tr, tf = (ones, zeros) if real_target else (zeros, ones)
    return bce(real - fake.mean(), tr) + bce(fake - real.mean(), tf)


def make_content_loss(torch, kind, device):
    F = torch.nn.functional
    if kind == "l1":
        return lambda fake, real: F.l1_loss(fake, real)
    if kind == "mse":
        return lambda fake, real: F.mse_loss(fake, real)
    if kind == "fft":
        # src/ops/fft_loss.c: sum(|Re D| + |Im D|) / (2 N C H W), D = FFT2(fake - real)
        def fft(fake, real):
            d = torch.fft.fft2(fake - real)
            return (d.real.abs().mean() + d.imag.abs().mean()) * 0.5
        return fft
    vgg = make_vgg(torch).to(device)

    def perceptual(fake, real):
        with torch.no_grad():
            target = vgg(real)
        return F.mse_loss(vgg(fake), target)
    return perceptual


# ---------------------------------------------------------------------------
# The benchmarks


def bench_inference(torch, tr, a, device, sync):
    g = make_generator(tr, a).to(device).eval()
    out = []
    for (w, h) in a.size:
        x = torch.rand(1, 3, h, w, device=device) * 2 - 1

        def run():
            with torch.no_grad():
                g(x)
        r = {"width": w, "height": h, "batch": 1}
        r.update(time_runs(run, a.warmup, a.reps, sync, "inference %dx%d" % (w, h)))
        out.append(r)
    return out


def bench_train(torch, tr, a, device, sync):
    g = make_generator(tr, a).to(device).train()
    d = make_discriminator(tr, a).to(device).train()
    adam = dict(lr=cfg(a, "train.lr"), betas=(cfg(a, "train.beta1"), cfg(a, "train.beta2")),
                eps=cfg(a, "train.eps"))
    opt_g = torch.optim.Adam(g.parameters(), **adam)
    opt_d = torch.optim.Adam(d.parameters(), **adam)
    content = make_content_loss(torch, cfg(a, "train.content_loss"), device)
    lam = cfg(a, "train.lambda")
    n, s = cfg(a, "train.batch"), cfg(a, "data.crop")
    blur = torch.rand(n, 3, s, s, device=device) * 2 - 1
    sharp = torch.rand(n, 3, s, s, device=device) * 2 - 1
    d_params = list(d.parameters())
    finite = [True]  # the NaN checks' values, all finite in every run

    def grad_sumsq(params):
        return sum(float((p.grad * p.grad).sum()) for p in params if p.grad is not None)

    def step():
        fake = g(blur)
        # discriminator step on the detached fake
        for p in d_params:
            p.requires_grad_(True)
        opt_d.zero_grad(set_to_none=True)
        loss_d = ragan(torch, d(sharp), d(fake.detach()), True)
        loss_d.backward()
        checks = [loss_d.item(), grad_sumsq(d_params)]
        opt_d.step()
        # generator step through the updated, frozen discriminator
        for p in d_params:
            p.requires_grad_(False)
        opt_g.zero_grad(set_to_none=True)
        with torch.no_grad():
            real_logits = d(sharp)
        loss_adv = ragan(torch, real_logits, d(fake), False)
        loss_content = content(fake, sharp)
        (loss_adv + lam * loss_content).backward()
        checks += [loss_adv.item(), loss_content.item(), grad_sumsq(g.parameters())]
        opt_g.step()
        finite[0] = finite[0] and all(math.isfinite(v) for v in checks)

    r = {"width": s, "height": s, "batch": n, "content_loss": cfg(a, "train.content_loss"),
         "lambda": lam}
    r.update(time_runs(step, a.warmup, a.reps, sync, "training step %dx%d batch %d" % (s, s, n)))
    r["finite"] = finite[0]
    return r


def bench_sgemm(torch, a, device, sync, before=None):
    """torch.mm on two n x n float32 matrices into a preallocated result: the rate the
    machine's BLAS reaches, the roof the networks' convolutions are measured against. It
    runs before and after the networks (`before` holds the first pass) and keeps the best:
    on a machine that is not quite idle one pass alone can come out far too low."""
    n = a.sgemm_size
    x = torch.rand(n, n, device=device)
    y = torch.rand(n, n, device=device)
    z = torch.empty(n, n, device=device)
    r = time_runs(lambda: torch.mm(x, y, out=z), 1, max(a.reps, 5), sync, "sgemm %d" % n)
    if before:
        r["times_s"] = before["times_s"] + r["times_s"]
        r.update({"median_s": median_low(r["times_s"]), "min_s": min(r["times_s"]),
                  "max_s": max(r["times_s"])})
    flop = 2.0 * n * n * n
    r.update({"n": n, "flop": flop, "gflops_best": flop / r["min_s"] / 1e9,
              "gflops_median": flop / r["median_s"] / 1e9})
    return r


# ---------------------------------------------------------------------------


def import_torch():
    try:
        import torch
    except ImportError as e:
        sys.stderr.write("torch_bench: PyTorch not found (%s): install python3-torch "
                         "libopenblas0-pthread\n" % e)
        sys.exit(EXIT_NO_TORCH)
    return torch


def import_reference():
    """scripts/torch_reference.py imports NumPy for its safetensors helpers; the network
    classes used here do not need it, so a missing NumPy is replaced by an empty module."""
    try:
        import numpy  # noqa: F401
    except ImportError:
        sys.modules["numpy"] = types.ModuleType("numpy")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch_reference
    return torch_reference


def main(argv):
    a = parse_args(argv)
    # OpenBLAS (pthread build) keeps its own pool, which torch.set_num_threads does not
    # size; it reads this at load time, so it must be set before torch is imported.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(a.threads))
    os.environ.setdefault("OMP_NUM_THREADS", str(a.threads))
    torch = import_torch()
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 as dsdeblur computes it
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = True

        def sync():
            torch.cuda.synchronize(device)
    else:
        def sync():
            pass
    result = {"schema": SCHEMA, "versions": versions(torch, device)}
    if a.probe:
        print(json.dumps(result, indent=2))
        return 0
    torch.manual_seed(a.seed)
    tr = import_reference()
    result.update({
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "threads": a.threads, "warmup": a.warmup, "reps": a.reps,
        "config": {key: cfg(a, key) for key, _, _ in CONFIG_KEYS},
        "sgemm": None, "inference": [], "train": None,
    })
    if not a.skip_sgemm:
        result["sgemm"] = bench_sgemm(torch, a, device, sync)
    if not a.skip_inference:
        result["inference"] = bench_inference(torch, tr, a, device, sync)
    if not a.skip_train:
        result["train"] = bench_train(torch, tr, a, device, sync)
    if not a.skip_sgemm:
        result["sgemm"] = bench_sgemm(torch, a, device, sync, result["sgemm"])
    text = json.dumps(result, indent=2)
    if a.json:
        tmp = "%s.tmp.%d" % (a.json, os.getpid())
        with open(tmp, "w") as f:
            f.write(text + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, a.json)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
