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
 * host builds one program per layer configuration. Every work-group is a
 * TILE_W x TILE_H block of work-items (TILE_W * TILE_H a power of two).
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
