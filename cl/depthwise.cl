/*
 * depthwise.cl: depthwise 2-D convolution (groups == C), forward and backward
 * (host side: src/ops/depthwise.c, reference: tests/ref/depthwise.c).
 *
 * x (N,C,H,W), weight (C,1,KH,KW), bias (1,C,1,1), y (N,C,OH,OW);
 * y[n,c,oh,ow] = bias[c] + sum_kh,kw w[c,kh,kw] * xpad[n,c,oh*S-pad+kh, ow*S-pad+kw]
 * where xpad is x with zero or reflection padding (PyTorch ReflectionPad2d:
 * the edge is not repeated, index -1 reads 1 and H reads H-2; dw_reflect).
 *
 * The kernel size, stride, padding mode and tile size are compile-time
 * options, so the tap loops unroll and the local tiles have exact sizes; the
 * host builds one program per layer configuration.
 *
 * Two builds define the same kernels with the same arguments; the device
 * profile's `depthwise` picks one (src/ops/depthwise.c, doc/tuning.md):
 * - tiles (STRIP=0, any stride; GPUs), below: every work-group is a
 *   TILE_W x TILE_H block of work-items (TILE_W * TILE_H a power of two),
 *   one work-item per pixel, the inputs staged in local memory;
 * - strips (STRIP=1, stride 1; CPUs), at the end of the file: one work-item
 *   per 8 consecutive pixels of a row as float8, no local memory, no
 *   barriers, since PoCL runs the tiles as scalar code but float8 arithmetic
 *   as vector FMAs.
 *
 * The tiles:
 *
 * - Forward: one work-group per TILE_H x TILE_W tile of outputs of one (n, c)
 *   plane. The group loads the input tile plus halo, padding applied, into
 *   local memory once (consecutive work-items read consecutive x); each
 *   work-item then computes one output from local memory.
 * - Backward dx (gather): one work-group per tile of dx. The group loads the
 *   dy rows and columns its pixels' taps reach into local memory; each
 *   work-item sums dy * w over every padded position that maps to its pixel:
 *   itself and, with reflection, its mirror images -ih and 2H-2-ih (and the
 *   same for columns) when those lie in the padding. Mirror taps that fall
 *   outside the local tile (only next to the border) read dy from global
 *   memory. With stride 1, interior pixels take a check-free path. Each
 *   work-item owns the dx element it adds to.
 * - Backward dweight / dbias: a fixed number P = PW x PH of work-groups per
 *   channel each walk a fixed subset of that channel's output tiles (every
 *   PW-th tile column and PH-th tile row, in every image), load the x tile
 *   into local memory as forward does, and keep KH*KW + 1 private sums per
 *   work-item; fixed local trees reduce them to partial[c][p][tap]. A second
 *   kernel adds the P partials in order into dweight and dbias. No atomics:
 *   the result is the same run to run.
 */

#ifndef KH
#define KH 3
#endif
#ifndef KW
#define KW 3
#endif
#ifndef STRIDE
#define STRIDE 1
#endif
#ifndef REFLECT
#define REFLECT 0
#endif
#ifndef STRIP
#define STRIP 0
#endif
#ifndef TILE_W
#define TILE_W 32
#endif
#ifndef TILE_H
#define TILE_H 8
#endif

#define WG (TILE_W * TILE_H)
#if (WG & (WG - 1)) != 0
#error "TILE_W * TILE_H must be a power of two"
#endif

/* Taps per channel, and taps plus the bias slot in the weight reduction. */
#define TAPS (KH * KW)
#define TAPS1 (TAPS + 1)

/* The input tile (halo included) that a TILE_H x TILE_W tile of outputs reads. */
#define IN_TH ((TILE_H - 1) * STRIDE + KH)
#define IN_TW ((TILE_W - 1) * STRIDE + KW)

/* The dy tile that the direct (unreflected) taps of a TILE_H x TILE_W tile of
 * dx reach: rows ceil((ih0+pad-KH+1)/S) .. floor((ih0+TILE_H-1+pad)/S). */
#define DY_TH ((TILE_H + KH - 2) / STRIDE + 1)
#define DY_TW ((TILE_W + KW - 2) / STRIDE + 1)

/* Taps reduced per local tree in the weight gradient (bounds local memory). */
#ifndef RED_CHUNK
#define RED_CHUNK (TAPS1 < 10 ? TAPS1 : 10)
#endif

/* ------------------------------------------------------------------------ */
/* Helpers */

/* Reflection index, PyTorch ReflectionPad2d (-1 -> 1, n -> n-2), for
 * -n < i < 2n - 1. The same map as common.cl's dsd_reflect, written so that
 * LLVM does not turn it into the llvm.abs intrinsic: Oclgrind 21.10 cannot
 * execute that, and dsd_reflect's `if (i < 0) i = -i` becomes one here. */
inline int dw_reflect(int i, int n)
{
    return i < 0 ? -i : (i >= n ? 2 * n - 2 - i : i);
}

/* x of one plane at row ih, column iw of x's own coordinates (negative or
 * past the edge inside the padding). Positions outside the padded image are
 * never read by a valid output; they load 0 so tiles past the border stay
 * defined. */
inline float x_padded(global const float *xp, int ih, int iw, int H, int W, int pad)
{
    if (ih < -pad || ih >= H + pad || iw < -pad || iw >= W + pad)
        return 0.0f;
#if REFLECT
    ih = dw_reflect(ih, H);
    iw = dw_reflect(iw, W);
#else
    if (ih < 0 || ih >= H || iw < 0 || iw >= W)
        return 0.0f;
#endif
    return xp[ih * W + iw];
}

/* The whole group loads the IN_TH x IN_TW input tile whose top-left corner is
 * (ih0, iw0) in x's coordinates; consecutive lx read consecutive columns. */
inline void load_x_tile(local float *tile, global const float *xp, int ih0, int iw0, int H,
                        int W, int pad, int lx, int ly)
{
    for (int r = ly; r < IN_TH; r += TILE_H)
        for (int q = lx; q < IN_TW; q += TILE_W)
            tile[r * IN_TW + q] = x_padded(xp, ih0 + r, iw0 + q, H, W, pad);
}

/* ceil(a / STRIDE) for a > 0, else 0 (the first dy row/column a tile reaches). */
inline int first_out(int a)
{
    return a > 0 ? (a + STRIDE - 1) / STRIDE : 0;
}

/* The padded positions that map to x index i (n = H or W): i itself and, with
 * reflection, its mirrors -i and 2n-2-i when they lie in the padding.
 * Returns how many (1 to 3) were written to pos. */
inline int padded_sources(int i, int n, int pad, int *pos)
{
    int count = 0;
    pos[count++] = i;
#if REFLECT
    if (i > 0 && i <= pad)
        pos[count++] = -i;
    if (i < n - 1 && i >= n - 1 - pad)
        pos[count++] = 2 * n - 2 - i;
#endif
    return count;
}

#if !STRIP

/* ------------------------------------------------------------------------ */
/* Forward */

/* Group (tx, ty, n*C + c) computes outputs [ty*TILE_H, +TILE_H) x [tx*TILE_W, +TILE_W)
 * of plane (n, c); work-item (lx, ly) one output pixel. */
kernel void depthwise_forward(global const float *x, uint x_off, global const float *w,
                              uint w_off, global const float *b, uint b_off, uint has_bias,
                              global float *y, uint y_off, int C, int H, int W, int OH, int OW,
                              int pad)
{
    local float tile[IN_TH * IN_TW];
    int lx = get_local_id(0), ly = get_local_id(1);
    int ow0 = get_group_id(0) * TILE_W, oh0 = get_group_id(1) * TILE_H;
    int plane = get_group_id(2);
    int c = plane % C;
    global const float *xp = x + x_off + (size_t)plane * H * W;

    load_x_tile(tile, xp, oh0 * STRIDE - pad, ow0 * STRIDE - pad, H, W, pad, lx, ly);
    barrier(CLK_LOCAL_MEM_FENCE);

    int oh = oh0 + ly, ow = ow0 + lx;
    if (oh >= OH || ow >= OW)
        return;
    global const float *wc = w + w_off + c * TAPS;
    float acc = 0.0f;
    for (int kh = 0; kh < KH; kh++)
        for (int kw = 0; kw < KW; kw++)
            acc += wc[kh * KW + kw] * tile[(ly * STRIDE + kh) * IN_TW + lx * STRIDE + kw];
    if (has_bias)
        acc += b[b_off + c];
    y[y_off + (size_t)plane * OH * OW + oh * OW + ow] = acc;
}

/* ------------------------------------------------------------------------ */
/* Backward: dx */

/* Group (tx, ty, n*C + c) computes dx over [ty*TILE_H, +TILE_H) x [tx*TILE_W, +TILE_W)
 * of plane (n, c); work-item (lx, ly) one dx pixel (dx += sum of dy * w). */
kernel void depthwise_backward_dx(global const float *dy, uint dy_off, global const float *w,
                                  uint w_off, global float *dx, uint dx_off, int C, int H, int W,
                                  int OH, int OW, int pad)
{
    local float tile[DY_TH * DY_TW];
    int lx = get_local_id(0), ly = get_local_id(1);
    int iw0 = get_group_id(0) * TILE_W, ih0 = get_group_id(1) * TILE_H;
    int plane = get_group_id(2);
    int c = plane % C;
    global const float *dyp = dy + dy_off + (size_t)plane * OH * OW;

    int oh_lo = first_out(ih0 + pad - KH + 1), ow_lo = first_out(iw0 + pad - KW + 1);
    for (int r = ly; r < DY_TH; r += TILE_H)
        for (int q = lx; q < DY_TW; q += TILE_W) {
            int oh = oh_lo + r, ow = ow_lo + q;
            tile[r * DY_TW + q] = (oh < OH && ow < OW) ? dyp[oh * OW + ow] : 0.0f;
        }
    barrier(CLK_LOCAL_MEM_FENCE);

    int ih = ih0 + ly, iw = iw0 + lx;
    if (ih >= H || iw >= W)
        return;
    global const float *wc = w + w_off + c * TAPS;
    global float *dxp = dx + dx_off + (size_t)plane * H * W + ih * W + iw;
    int rows[3], cols[3];
    int n_rows = padded_sources(ih, H, pad, rows), n_cols = padded_sources(iw, W, pad, cols);
    float acc = 0.0f;
#if STRIDE == 1
    /* Interior pixel (no mirror images, every tap reaches a dy inside the
     * image): all its taps lie in the local tile, no checks needed. */
    if (n_rows == 1 && n_cols == 1 && ih + pad - (KH - 1) >= 0 && ih + pad < OH &&
        iw + pad - (KW - 1) >= 0 && iw + pad < OW) {
        int r0 = ih + pad - oh_lo, q0 = iw + pad - ow_lo;
        for (int kh = 0; kh < KH; kh++)
            for (int kw = 0; kw < KW; kw++)
                acc += tile[(r0 - kh) * DY_TW + q0 - kw] * wc[kh * KW + kw];
        *dxp += acc;
        return;
    }
#endif
    for (int a = 0; a < n_rows; a++) {
        for (int kh = 0; kh < KH; kh++) {
            /* padded row rows[a] is read by output row oh when oh*S - pad + kh == rows[a] */
            int t = rows[a] + pad - kh;
            if (t < 0 || t % STRIDE != 0 || t / STRIDE >= OH)
                continue;
            int oh = t / STRIDE;
            for (int e = 0; e < n_cols; e++) {
                for (int kw = 0; kw < KW; kw++) {
                    int u = cols[e] + pad - kw;
                    if (u < 0 || u % STRIDE != 0 || u / STRIDE >= OW)
                        continue;
                    int ow = u / STRIDE;
                    int r = oh - oh_lo, q = ow - ow_lo;
                    float g = ((uint)r < DY_TH && (uint)q < DY_TW) ? tile[r * DY_TW + q]
                                                                   : dyp[oh * OW + ow];
                    acc += g * wc[kh * KW + kw];
                }
            }
        }
    }
    *dxp += acc;
}

/* ------------------------------------------------------------------------ */
/* Backward: dweight and dbias */

/* Group (pw, ph, c) walks, in every image n, the output tiles (tx, ty) of
 * channel c with tx = pw, pw + PW, ... and ty = ph, ph + PH, ...; work-item
 * (lx, ly) one output pixel per tile. With p = ph * PW + pw and P = PW * PH it
 * writes partial[(c * P + p) * TAPS1 + k] for taps k < TAPS and the bias slot
 * k = TAPS. (Nested loops rather than one linear tile index: no integer
 * division, which Oclgrind's --uninitialized cannot follow once LLVM pairs a
 * division with its remainder.) */
kernel void depthwise_backward_dw_partial(global const float *x, uint x_off,
                                          global const float *dy, uint dy_off,
                                          global float *partial, uint partial_off, int N, int C,
                                          int H, int W, int OH, int OW, int pad)
{
    local float tile[IN_TH * IN_TW];
    local float red[RED_CHUNK * WG];
    int lx = get_local_id(0), ly = get_local_id(1), lid = ly * TILE_W + lx;
    int pw = get_group_id(0), ph = get_group_id(1), c = get_group_id(2);
    int PW = get_num_groups(0), PH = get_num_groups(1);

    float acc[TAPS1];
    for (int k = 0; k < TAPS1; k++)
        acc[k] = 0.0f;

    for (int n = 0; n < N; n++) {
        size_t plane = (size_t)n * C + c;
        global const float *xp = x + x_off + plane * H * W;
        global const float *dyp = dy + dy_off + plane * OH * OW;
        for (int oh0 = ph * TILE_H; oh0 < OH; oh0 += PH * TILE_H) {
            for (int ow0 = pw * TILE_W; ow0 < OW; ow0 += PW * TILE_W) {
                barrier(CLK_LOCAL_MEM_FENCE); /* the previous tile has been read */
                load_x_tile(tile, xp, oh0 * STRIDE - pad, ow0 * STRIDE - pad, H, W, pad, lx, ly);
                barrier(CLK_LOCAL_MEM_FENCE);
                int oh = oh0 + ly, ow = ow0 + lx;
                if (oh < OH && ow < OW) {
                    float g = dyp[oh * OW + ow];
                    for (int kh = 0; kh < KH; kh++)
                        for (int kw = 0; kw < KW; kw++)
                            acc[kh * KW + kw] +=
                                g * tile[(ly * STRIDE + kh) * IN_TW + lx * STRIDE + kw];
                    acc[TAPS] += g;
                }
            }
        }
    }

    /* Fixed local trees, RED_CHUNK taps at a time. */
    global float *out = partial + partial_off + ((size_t)c * PW * PH + ph * PW + pw) * TAPS1;
    for (int k0 = 0; k0 < TAPS1; k0 += RED_CHUNK) {
        for (int j = 0; j < RED_CHUNK; j++)
            if (k0 + j < TAPS1)
                red[j * WG + lid] = acc[k0 + j];
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int s = WG / 2; s > 0; s >>= 1) {
            if (lid < s)
                for (int j = 0; j < RED_CHUNK; j++)
                    if (k0 + j < TAPS1)
                        red[j * WG + lid] += red[j * WG + lid + s];
            barrier(CLK_LOCAL_MEM_FENCE);
        }
        if (lid < RED_CHUNK && k0 + lid < TAPS1)
            out[k0 + lid] = red[lid * WG];
        barrier(CLK_LOCAL_MEM_FENCE); /* red is rewritten by the next chunk */
    }
}

#else /* STRIP */

/* ------------------------------------------------------------------------ */
/* Strip kernels (STRIP=1, stride 1): no local memory, no barriers.
 *
 * A work-item handles VEC consecutive pixels of one row as one float8. PoCL's
 * CPU device does not vectorize the tiled kernels above across work-items
 * (local memory, barriers, work-item-dependent loops) and runs them as
 * scalar code; explicit float8 arithmetic becomes vector FMAs whatever it
 * does with work-items. Strips whose columns all lie inside x take vload8s
 * (unaligned; each row is read KW times, from cache); strips at the left and
 * right borders or past the row's end gather their columns with the padding
 * rules into a window first. Padding rows are resolved once per row. */

#if STRIDE != 1
#error "the strip kernels are for stride 1"
#endif

#define VEC 8

/* The source row of padded row ih (-pad <= ih < H + pad): ih itself, its
 * mirror with reflection, or -1 for a zero-padding row (its taps add 0). */
inline int padded_row(int ih, int H)
{
#if REFLECT
    return dw_reflect(ih, H);
#else
    return (ih >= 0 && ih < H) ? ih : -1;
#endif
}

/* Does [a, b] (indices along an extent n) hold a pixel that reflection also
 * reads through a mirror image in the padding (0 < i <= pad or
 * n-1-pad <= i < n-1)? Always 0 with zero padding. */
inline int has_mirror(int a, int b, int n, int pad)
{
#if REFLECT
    return pad > 0 && ((a <= pad && b >= 1) || (a <= n - 2 && b >= n - 1 - pad));
#else
    return 0;
#endif
}

/* Is the strip of outputs [ow0, ow0 + VEC) inside the row with every column
 * it reads inside x (no column padding)? Then it takes plain vector loads. */
inline int interior_strip(int ow0, int OW, int W, int pad)
{
    int iw0 = ow0 - pad;
    return iw0 >= 0 && iw0 + VEC + KW - 1 <= W && ow0 + VEC <= OW;
}

/* Border strips gather the VEC + KW - 1 columns their taps read once, as two
 * float8 (columns 0-7 and 8-15 of a window; KW <= 9), and take each tap's
 * vector out of the pair with shuffle2: a sixth of the gathers of
 * lane-by-lane taps, which made the 2 border strips of a 320-wide row cost
 * as much as its 38 others. Same-width vectors only: Oclgrind 21.10's
 * --uninitialized crashes on vector loads from private arrays and takes the
 * upper lanes of a narrowing swizzle (float16 -> float8) as uninitialized. */
#if KW > 9
#error "the strip kernels' windows hold KW <= 9"
#endif

/* x at column iw of one x row (its row index already resolved), column
 * padding applied; 0 outside the padded image (lanes past the row's end). */
inline float x_col(global const float *row, int iw, int W, int pad)
{
#if REFLECT
    return (iw >= -pad && iw < W + pad) ? row[dw_reflect(iw, W)] : 0.0f;
#else
    return (iw >= 0 && iw < W) ? row[iw] : 0.0f;
#endif
}

/* dy at column ow of one dy row; 0 outside 0 .. OW - 1. */
inline float dy_col(global const float *grow, int ow, int OW)
{
    return (ow >= 0 && ow < OW) ? grow[ow] : 0.0f;
}

/* Columns iw .. iw + 7 of one x row, as x_col reads them; lanes from n on
 * are 0 (n is a constant: the window's upper half needs KW - 1 lanes). */
#define XL(q) ((q) < n ? x_col(row, iw + (q), W, pad) : 0.0f)
inline float8 x_cols8(global const float *row, int iw, int W, int pad, int n)
{
    return (float8)(XL(0), XL(1), XL(2), XL(3), XL(4), XL(5), XL(6), XL(7));
}
#undef XL

/* Lanes k .. k + 7 of the window (lo, hi), k < 9 (a constant once the tap
 * loops unroll). */
inline float8 window8(float8 lo, float8 hi, int k)
{
    uint8 lanes = (uint8)(0, 1, 2, 3, 4, 5, 6, 7) + (uint)k;
    return shuffle2(lo, hi, lanes);
}

/* Columns ow .. ow + 7 of one dy row, as dy_col reads them; lanes from n on are 0. */
#define DL(q) ((q) < n ? dy_col(grow, ow + (q), OW) : 0.0f)
inline float8 dy_cols8(global const float *grow, int ow, int OW, int n)
{
    return (float8)(DL(0), DL(1), DL(2), DL(3), DL(4), DL(5), DL(6), DL(7));
}
#undef DL

/* p[0 .. n) = (add: +=) the first n lanes of v, n < VEC at a row's end. */
inline void store_first(global float *p, float8 v, int n, int add)
{
    float8 old = (float8)(0.0f);
    if (add)
        old = (float8)(p[0], n > 1 ? p[1] : 0.0f, n > 2 ? p[2] : 0.0f, n > 3 ? p[3] : 0.0f,
                       n > 4 ? p[4] : 0.0f, n > 5 ? p[5] : 0.0f, n > 6 ? p[6] : 0.0f,
                       n > 7 ? p[7] : 0.0f);
    v += old;
    p[0] = v.s0;
    if (n > 1)
        p[1] = v.s1;
    if (n > 2)
        p[2] = v.s2;
    if (n > 3)
        p[3] = v.s3;
    if (n > 4)
        p[4] = v.s4;
    if (n > 5)
        p[5] = v.s5;
    if (n > 6)
        p[6] = v.s6;
    if (n > 7)
        p[7] = v.s7;
}

/* Forward. Work-item (s, oh, n*C + c) computes y[n, c, oh, 8s .. 8s+7]:
 * y = bias + sum of taps. */
kernel void depthwise_forward(global const float *x, uint x_off, global const float *w,
                              uint w_off, global const float *b, uint b_off, uint has_bias,
                              global float *y, uint y_off, int C, int H, int W, int OH, int OW,
                              int pad)
{
    int ow0 = get_global_id(0) * VEC, oh = get_global_id(1), plane = get_global_id(2);
    if (ow0 >= OW || oh >= OH)
        return;
    int c = plane % C;
    global const float *xp = x + x_off + (size_t)plane * H * W;
    global const float *wc = w + w_off + c * TAPS;
    global float *yrow = y + y_off + ((size_t)plane * OH + oh) * OW;
    int iw0 = ow0 - pad;
    float8 acc = (float8)(has_bias ? b[b_off + c] : 0.0f);

    if (interior_strip(ow0, OW, W, pad)) {
        for (int kh = 0; kh < KH; kh++) {
            int ih = padded_row(oh - pad + kh, H);
            if (ih < 0)
                continue;
            global const float *row = xp + ih * W + iw0;
            for (int kw = 0; kw < KW; kw++)
                acc = fma((float8)(wc[kh * KW + kw]), vload8(0, row + kw), acc);
        }
        vstore8(acc, 0, yrow + ow0);
        return;
    }
    for (int kh = 0; kh < KH; kh++) {
        int ih = padded_row(oh - pad + kh, H);
        if (ih < 0)
            continue;
        float8 lo = x_cols8(xp + ih * W, iw0, W, pad, VEC);
        float8 hi = KW > 1 ? x_cols8(xp + ih * W, iw0 + VEC, W, pad, KW - 1) : lo;
        for (int kw = 0; kw < KW; kw++)
            acc = fma((float8)(wc[kh * KW + kw]), window8(lo, hi, kw), acc);
    }
    store_first(yrow + ow0, acc, min(OW - ow0, VEC), 0);
}

/* The taps that reach pixel (ih, iw) through iw's mirror images in the
 * column padding (reflection), over ih's row sources rows[0 .. n_rows):
 * dx's share from padded columns other than iw itself. 0 for iw >= W. */
inline float mirror_taps(global const float *dyp, global const float *wc, const int *rows,
                         int n_rows, int iw, int W, int OH, int OW, int pad)
{
    int cols[3];
    int n_cols = iw < W ? padded_sources(iw, W, pad, cols) : 0;
    float s = 0.0f;
    for (int e = 1; e < n_cols; e++) /* cols[0] is iw itself */
        for (int a = 0; a < n_rows; a++)
            for (int kh = 0; kh < KH; kh++) {
                int oh = rows[a] + pad - kh;
                if (oh < 0 || oh >= OH)
                    continue;
                for (int kw = 0; kw < KW; kw++) {
                    int ow = cols[e] + pad - kw;
                    if (ow >= 0 && ow < OW)
                        s = fma(dyp[oh * OW + ow], wc[kh * KW + kw], s);
                }
            }
    return s;
}

/* Backward dx. Work-item (s, ih, n*C + c) adds to dx[n, c, ih, 8s .. 8s+7].
 * With stride 1, padded position (r, q) is read by output (r + pad - kh,
 * q + pad - kw) at tap (kh, kw); pixel (ih, iw) collects the taps of its own
 * position and, with reflection, of its mirror images in the padding
 * (padded_sources). Every row source of ih is summed with vectors over the
 * strip's own columns (dy read directly, or for a border strip gathered
 * with the columns outside dy as 0); the few pixels next to the left and
 * right borders that also have a mirror column add its taps one by one. */
kernel void depthwise_backward_dx(global const float *dy, uint dy_off, global const float *w,
                                  uint w_off, global float *dx, uint dx_off, int C, int H, int W,
                                  int OH, int OW, int pad)
{
    int iw0 = get_global_id(0) * VEC, ih = get_global_id(1), plane = get_global_id(2);
    if (iw0 >= W || ih >= H)
        return;
    int c = plane % C;
    global const float *dyp = dy + dy_off + (size_t)plane * OH * OW;
    global const float *wc = w + w_off + c * TAPS;
    global float *dxrow = dx + dx_off + ((size_t)plane * H + ih) * W;
    int rows[3];
    int n_rows = padded_sources(ih, H, pad, rows);
    int ow0 = iw0 + pad; /* the dy column that tap kw = 0 of pixel iw0 reads */
    float8 acc = (float8)(0.0f);

    if (iw0 + VEC <= W && ow0 - (KW - 1) >= 0 && ow0 + VEC <= OW &&
        !has_mirror(iw0, iw0 + VEC - 1, W, pad)) {
        for (int a = 0; a < n_rows; a++)
            for (int kh = 0; kh < KH; kh++) {
                int oh = rows[a] + pad - kh; /* the output row that reads rows[a] at tap kh */
                if (oh < 0 || oh >= OH)
                    continue;
                global const float *grow = dyp + oh * OW + ow0;
                for (int kw = 0; kw < KW; kw++)
                    acc = fma((float8)(wc[kh * KW + kw]), vload8(0, grow - kw), acc);
            }
        vstore8(vload8(0, dxrow + iw0) + acc, 0, dxrow + iw0);
        return;
    }
    /* border strip: the own columns, lane l tap kw at dy column ow0 + l - kw
     * (0 outside dy; window lane l + KW-1-kw), then the mirror columns' taps
     * lane by lane */
    for (int a = 0; a < n_rows; a++)
        for (int kh = 0; kh < KH; kh++) {
            int oh = rows[a] + pad - kh;
            if (oh < 0 || oh >= OH)
                continue;
            global const float *grow = dyp + oh * OW;
            float8 lo = dy_cols8(grow, ow0 - (KW - 1), OW, VEC);
            float8 hi = KW > 1 ? dy_cols8(grow, ow0 - (KW - 1) + VEC, OW, KW - 1) : lo;
            for (int kw = 0; kw < KW; kw++)
                acc = fma((float8)(wc[kh * KW + kw]), window8(lo, hi, KW - 1 - kw), acc);
        }
#if REFLECT
    acc += (float8)(mirror_taps(dyp, wc, rows, n_rows, iw0, W, OH, OW, pad),
                    mirror_taps(dyp, wc, rows, n_rows, iw0 + 1, W, OH, OW, pad),
                    mirror_taps(dyp, wc, rows, n_rows, iw0 + 2, W, OH, OW, pad),
                    mirror_taps(dyp, wc, rows, n_rows, iw0 + 3, W, OH, OW, pad),
                    mirror_taps(dyp, wc, rows, n_rows, iw0 + 4, W, OH, OW, pad),
                    mirror_taps(dyp, wc, rows, n_rows, iw0 + 5, W, OH, OW, pad),
                    mirror_taps(dyp, wc, rows, n_rows, iw0 + 6, W, OH, OW, pad),
                    mirror_taps(dyp, wc, rows, n_rows, iw0 + 7, W, OH, OW, pad));
#endif
    store_first(dxrow + iw0, acc, min(W - iw0, VEC), 1);
}

/* Backward dweight / dbias. Work-item (p, c) of a (P, C) range walks, in
 * every image, the p-th block of ceil(OH / P) consecutive output rows of
 * channel c (consecutive, so the x rows it reads stay in cache; every P-th
 * row instead took twice as long) strip by strip with float8 sums per tap
 * and for the bias (border strips gather x with the padding and dy with the
 * lanes past the row's end as 0), then writes lane l of its sums to
 * partial[(c * VEC * P + p * VEC + l) * TAPS1 + k] (k == TAPS: the bias).
 * The split depends on the shape only: the same result run to run. */
kernel void depthwise_backward_dw_partial(global const float *x, uint x_off,
                                          global const float *dy, uint dy_off,
                                          global float *partial, uint partial_off, int N, int C,
                                          int H, int W, int OH, int OW, int pad)
{
    int p = get_global_id(0), c = get_global_id(1), P = get_global_size(0);
    if (c >= C)
        return;
    int rows_per = (OH + P - 1) / P;
    float8 acc[TAPS1];
    for (int k = 0; k < TAPS1; k++)
        acc[k] = (float8)(0.0f);

    for (int n = 0; n < N; n++) {
        size_t plane = (size_t)n * C + c;
        global const float *xp = x + x_off + plane * H * W;
        global const float *dyp = dy + dy_off + plane * OH * OW;
        for (int oh = p * rows_per; oh < OH && oh < (p + 1) * rows_per; oh++) {
            global const float *grow = dyp + oh * OW;
            int rows[KH];
            for (int kh = 0; kh < KH; kh++)
                rows[kh] = padded_row(oh - pad + kh, H);
            for (int ow0 = 0; ow0 < OW; ow0 += VEC) {
                int iw0 = ow0 - pad;
                if (interior_strip(ow0, OW, W, pad)) {
                    float8 g = vload8(0, grow + ow0);
                    for (int kh = 0; kh < KH; kh++) {
                        if (rows[kh] < 0)
                            continue;
                        global const float *xr = xp + rows[kh] * W + iw0;
                        for (int kw = 0; kw < KW; kw++)
                            acc[kh * KW + kw] = fma(g, vload8(0, xr + kw), acc[kh * KW + kw]);
                    }
                    acc[TAPS] += g;
                    continue;
                }
                float8 g = dy_cols8(grow, ow0, OW, VEC);
                for (int kh = 0; kh < KH; kh++) {
                    if (rows[kh] < 0)
                        continue;
                    global const float *xr = xp + rows[kh] * W;
                    float8 lo = x_cols8(xr, iw0, W, pad, VEC);
                    float8 hi = KW > 1 ? x_cols8(xr, iw0 + VEC, W, pad, KW - 1) : lo;
                    for (int kw = 0; kw < KW; kw++)
                        acc[kh * KW + kw] = fma(g, window8(lo, hi, kw), acc[kh * KW + kw]);
                }
                acc[TAPS] += g;
            }
        }
    }

    /* lane l of work-item p is partial p * VEC + l of VEC * P: no horizontal
     * sums here (Oclgrind 21.10's --uninitialized crashed on the shuffles
     * LLVM made of them); depthwise_backward_dw_final adds them in order */
    global float *out = partial + partial_off + ((size_t)c * P + p) * VEC * TAPS1;
    for (int k = 0; k < TAPS1; k++) {
        float8 a = acc[k];
        out[k] = a.s0;
        out[TAPS1 + k] = a.s1;
        out[2 * TAPS1 + k] = a.s2;
        out[3 * TAPS1 + k] = a.s3;
        out[4 * TAPS1 + k] = a.s4;
        out[5 * TAPS1 + k] = a.s5;
        out[6 * TAPS1 + k] = a.s6;
        out[7 * TAPS1 + k] = a.s7;
    }
}

#endif /* STRIP */

/* ------------------------------------------------------------------------ */
/* Backward: the in-order sum of the weight-gradient partials (both builds) */

/* Work-item (k, c), k < TAPS1: adds partial[c][0..P)[k] in order to
 * dweight[c][k] (k < TAPS) or dbias[c] (k == TAPS); a NULL-gradient flag skips it. */
kernel void depthwise_backward_dw_final(global const float *partial, uint partial_off,
                                        global float *dw, uint dw_off, uint has_dw,
                                        global float *db, uint db_off, uint has_db, int C, int P)
{
    int k = get_global_id(0), c = get_global_id(1);
    if (k >= TAPS1 || c >= C || (k < TAPS ? !has_dw : !has_db))
        return;
    global const float *src = partial + partial_off + (size_t)c * P * TAPS1 + k;
    float s = 0.0f;
    for (int p = 0; p < P; p++)
        s += src[(size_t)p * TAPS1];
    if (k < TAPS)
        dw[dw_off + c * TAPS + k] += s;
    else
        db[db_off + c] += s;
}
