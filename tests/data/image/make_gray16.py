#!/usr/bin/python3
"""make_gray16.py: writes gray16_5x3.png, a 16-bit grayscale PNG (5 wide, 3
high) with pixel i (row-major) = (i * 4099 + 17) % 65536, which
tests/test-image.c decodes and expects as 8-bit value >> 8 in R, G and B.
stb_image_write cannot write 16-bit PNGs, hence this file. Run with
/usr/bin/python3 (PIL 9.4)."""
import numpy as np
from PIL import Image

v = ((np.arange(15, dtype=np.int64) * 4099 + 17) % 65536).astype(np.uint16).reshape(3, 5)
Image.fromarray(v, mode='I;16').save('gray16_5x3.png')
im = Image.open('gray16_5x3.png')
assert im.mode in ('I;16', 'I') and np.array_equal(np.asarray(im).astype(np.int64), v), im.mode
