/*
 * conv2d.cl: the data-movement kernels around the CLBlast GEMMs of the
 * general (groups == 1) convolution (host side: src/ops/conv2d.c, reference:
 * tests/ref/conv2d.c). The multiply-adds run in CLBlast, except the forward
 * of convolutions with at most 4 output channels (conv2d_direct_few).
 *
 * Column layout, for one image and the output rows [r0, r0 + rows):
 *   col[k][j], k = (c * KH + kh) * KW + kw  (Kc = Cin*KH*KW rows),
 *              j = (oh - r0) * OW + ow     (cols = rows*OW columns),
 *   col[k][j] = x[c][pad_index(oh*stride - pad + kh)][pad_index(ow*stride - pad + kw)],
 * with pad_index() the zero (out of range -> 0) or reflection padding.
 *
 * - conv2d_im2col fills col; conv2d_col2im is its adjoint: it GATHERS, for
 *   each dx element, every col entry that read it, so no two work-items write
 *   the same element and no atomics are needed. With reflection several
 *   padded coordinates read the same pixel (at most three per axis: p, -p,
 *   2*size-2-p), and the gather visits each of them.
 * - conv2d_direct_few is the whole forward for cout <= 4, without a GEMM;
 *   conv2d_direct_few_dx and _dw its backward (stride 1), without a column
 *   buffer.
 * - conv2d_bias_fill writes bias[c] into every y element (the forward GEMM
 *   then accumulates with beta = 1); conv2d_bias_backward reduces dy per
 *   channel with a fixed local tree.
 *
 * Tunable: WG, the bias reduction's work-group size (a power of two).
 *
 * Index arithmetic writes remainders as a - (a / b) * b rather than a % b
 * next to a / b: LLVM turns such a pair into a `freeze` instruction that
 * Oclgrind 21.10's uninitialized-value checker cannot execute.
 */

#ifndef WG
#define WG 256
#endif
#if (WG & (WG - 1)) != 0
#error "WG must be a power of two"
#endif

/* Padded coordinate p (-size < p < 2*size - 1) -> input index, or -1 where
 * zero padding reads 0. Reflection is written as a fold of the period
 * 2*size - 2 rather than with common.cl's dsd_reflect: its `if (i < 0) i = -i`
 * becomes the llvm.abs intrinsic, which Oclgrind 21.10 cannot execute. */
inline int conv_pad_index(int p, int size, uint reflect)
{
    if (p >= 0 && p < size)
        return p; /* inside: most taps, without the fold's division */
    if (!reflect)
        return -1;
    if (size == 1)
        return 0;
    uint period = 2 * (uint)size - 2;
    uint q = (uint)(p + (int)period) % period; /* p + period > size - 2 >= 0 */
    return q < (uint)size ? (int)q : (int)(period - q);
}

/* The padded coordinates (in -pad .. size+pad-1) that read input index i, in
 * increasing order; returns their count (1..3). */
inline int conv_preimages(int i, int size, int pad, uint reflect, int *out)
{
    int count = 0;
    if (reflect && i >= 1 && i <= pad)
        out[count++] = -i;
    out[count++] = i;
    if (reflect && i <= size - 2 && i >= size - 1 - pad)
        out[count++] = 2 * size - 2 - i;
    return count;
}

/* conv2d_im2col with explicit 8-wide vectors: the column matrix, one
 * work-item per (8-column strip, chunk row jr, input channel c): dimension 0
 * is the strip ow0 = 8 * id. PoCL runs a kernel with loops inside as scalar
 * code, one work-item after another (the kernel above: one 4-byte store per
 * tap, 2-3 GB/s); float8 loads and stores make it SIMD whatever the
 * work-item loop does, and on GPUs each work-item writes 32 contiguous bytes
 * next to its neighbour's. Interior strips of stride 1 (and stride 2 where a
 * 16-float span stays inside the row) copy a vector; strips at the borders,
 * past OW or of other strides go lane by lane with the padding rules. */
kernel void conv2d_im2col(global const float *x, uint x_off, global float *col, uint col_off,
                          uint cin, uint h, uint w, uint kh_n, uint kw_n, uint stride, int pad,
                          uint reflect, uint ow_n, uint r0, uint rows)
{
    uint ow0 = get_global_id(0) * 8, jr = get_global_id(1), c = get_global_id(2);
    if (ow0 >= ow_n || jr >= rows || c >= cin)
        return;
    global const float *xc = x + x_off + c * h * w;
    global float *out = col + col_off + (c * kh_n * kw_n * rows + jr) * ow_n + ow0;
    const uint tap_stride = rows * ow_n;
    const int full = ow0 + 8 <= ow_n;
    for (uint kh = 0; kh < kh_n; kh++) {
        int ih = conv_pad_index((int)((r0 + jr) * stride + kh) - pad, (int)h, reflect);
        global const float *xr = xc + (ih >= 0 ? (uint)ih * w : 0);
        for (uint kw = 0; kw < kw_n; kw++, out += tap_stride) {
            int first = (int)(ow0 * stride + kw) - pad;         /* input column of lane 0 */
            int last = first + 7 * (int)stride;                  /* of lane 7 */
            if (full && ih < 0) {
                vstore8((float8)(0.0f), 0, out);
            } else if (full && first >= 0 && stride == 1 && last < (int)w) {
                vstore8(vload8(0, xr + first), 0, out);
            } else if (full && first >= 0 && stride == 2 && last + 1 < (int)w) {
                /* the even columns of 16 (two float8 and shuffle2, not a
                 * float16's .even: Oclgrind 21.10 crashes on that swizzle) */
                float8 lo = vload8(0, xr + first), hi = vload8(0, xr + first + 8);
                vstore8(shuffle2(lo, hi, (uint8)(0, 2, 4, 6, 8, 10, 12, 14)), 0, out);
            } else {
                for (uint i = 0; i < 8 && ow0 + i < ow_n; i++) {
                    int iw = conv_pad_index(first + (int)(i * stride), (int)w, reflect);
                    out[i] = (ih >= 0 && iw >= 0) ? xr[iw] : 0.0f;
                }
            }
        }
    }
}

/* The forward of a convolution with few output channels (cout <= 4: the
 * generator's tail 7x7 64->3, the spatial attention's 7x7 2->1), where a
 * GEMM with M = cout would waste most of every tile. One work-item per
 * output pixel (img * OH + oh) * OW + ow computes all cout outputs, summing
 * in a fixed order over (kh, kw, c), plus the bias when has_bias. The padded
 * input index is found once per tap, not once per channel, and the four
 * accumulators are a fixed unrolled set (weights past cout read as 0), so
 * neighbouring work-items run the same instructions on neighbouring pixels
 * (what PoCL vectorizes and GPUs coalesce). */
kernel void conv2d_direct_few(global const float *x, uint x_off, global const float *wt,
                              uint w_off, global const float *bias, uint b_off, uint has_bias,
                              global float *y, uint y_off, uint n, uint cin, uint h, uint w,
                              uint cout, uint kh_n, uint kw_n, uint stride, int pad,
                              uint reflect, uint oh_n, uint ow_n)
{
    uint i = get_global_id(0);
    uint plane = oh_n * ow_n;
    if (i >= n * plane)
        return;
    uint img = i / plane, p = i - img * plane;
    uint oh = p / ow_n, ow = p - oh * ow_n;
    const uint kc = cin * kh_n * kw_n, hw = h * w;
    float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
    global const float *xi = x + x_off + img * cin * hw;
    for (uint kh = 0; kh < kh_n; kh++) {
        int ih = conv_pad_index((int)(oh * stride + kh) - pad, (int)h, reflect);
        if (ih < 0)
            continue;
        for (uint kw = 0; kw < kw_n; kw++) {
            int iw = conv_pad_index((int)(ow * stride + kw) - pad, (int)w, reflect);
            if (iw < 0)
                continue;
            global const float *xp = xi + (uint)ih * w + (uint)iw;
            global const float *wp = wt + w_off + kh * kw_n + kw;
            for (uint c = 0; c < cin; c++) {
                float v = xp[c * hw];
                uint k = c * kh_n * kw_n;
                a0 += wp[k] * v;
                /* accumulators past cout read a valid weight and are dropped */
                a1 += wp[min(1u, cout - 1) * kc + k] * v;
                a2 += wp[min(2u, cout - 1) * kc + k] * v;
                a3 += wp[min(3u, cout - 1) * kc + k] * v;
            }
        }
    }
    float acc[4] = {a0, a1, a2, a3};
    for (uint o = 0; o < cout; o++)
        y[y_off + (img * cout + o) * plane + p] =
            acc[o] + (has_bias ? bias[b_off + o] : 0.0f);
}

#ifdef FEW_K
/* The forward of a stride-1 convolution with few output channels (cout <= 4)
 * and a square FEW_K x FEW_K kernel fixed at build time (the generator's
 * tail 7x7 64->3, the spatial attention 7x7 2->1) or few input channels
 * (the head 7x7 3->B, in blocks of 4 output channels), register-tiled. A 2D
 * range: dimension 0 is the strip of 8 output columns ow0 = 8 s .. 8 s + 7,
 * dimension 1 is (img * o_blocks + ob) * row_blocks + block; a work-item
 * computes the FEW_ROWS output rows oh0 .. oh0 + FEW_ROWS - 1 of its strip
 * for the output channels 4 ob .. 4 ob + 3 (those below cout), as float8
 * sums: explicit vectors, because PoCL does not spread work-items over
 * vector lanes in a kernel whose inner loop (over input channels) stays a
 * loop. For each tap column kw and input channel c it loads the FEW_SPAN
 * input rows of the strip once (one vload8 each inside the image, lane by
 * lane at its borders) and uses each for up to FEW_K taps. Padding: rows
 * clamped into the image and masked to zero (zero padding) or folded
 * (reflection); columns by few_x_row8. Lanes past the row's end compute
 * from valid addresses and are not stored. Sums run over (kw, c, kh) in that
 * fixed order, per output pixel. */
#define FEW_ROWS 4
#define FEW_SPAN (FEW_ROWS + FEW_K - 1)

/* xpad[c][ih][first + i], i = 0..7 (row ih already resolved, xr its start):
 * one vector load when the 8 columns lie inside the row, else lane by lane
 * with the padding rules. */
/* xr[iw], or 0 where the padding reads zero (iw < 0). */
inline float few_x_at(global const float *xr, int iw)
{
    return iw >= 0 ? xr[iw] : 0.0f;
}

inline float8 few_x_row8(global const float *xr, int first, int w, uint reflect)
{
    if (first >= 0 && first + 7 < w)
        return vload8(0, xr + first);
    /* lane by lane into components (Oclgrind 21.10 crashes on a vload8 of
     * a private array) */
#define FEW_X_LANE(i) few_x_at(xr, conv_pad_index(first + (i), w, reflect))
    return (float8)(FEW_X_LANE(0), FEW_X_LANE(1), FEW_X_LANE(2), FEW_X_LANE(3), FEW_X_LANE(4),
                    FEW_X_LANE(5), FEW_X_LANE(6), FEW_X_LANE(7));
#undef FEW_X_LANE
}

/* dy[at + i] for the lanes ow0 + i < ow_n, 0 past the row's end. */
inline float8 few_dy8(global const float *g, uint ow0, uint ow_n)
{
    if (ow0 + 8 <= ow_n)
        return vload8(0, g);
#define FEW_DY_LANE(i) (ow0 + (i) < ow_n ? g[i] : 0.0f)
    return (float8)(FEW_DY_LANE(0), FEW_DY_LANE(1), FEW_DY_LANE(2), FEW_DY_LANE(3),
                    FEW_DY_LANE(4), FEW_DY_LANE(5), FEW_DY_LANE(6), FEW_DY_LANE(7));
#undef FEW_DY_LANE
}

/* y[i] = v's lane i for the lanes ow0 + i < ow_n (ow0 < ow_n). */
inline void few_store8(global float *y, float8 v, uint ow0, uint ow_n)
{
    if (ow0 + 8 <= ow_n) {
        vstore8(v, 0, y);
        return;
    }
    y[0] = v.s0;
#define FEW_STORE_LANE(i, c) \
    if (ow0 + (i) < ow_n) \
        y[i] = v.c;
    FEW_STORE_LANE(1, s1)
    FEW_STORE_LANE(2, s2)
    FEW_STORE_LANE(3, s3)
    FEW_STORE_LANE(4, s4)
    FEW_STORE_LANE(5, s5)
    FEW_STORE_LANE(6, s6)
#undef FEW_STORE_LANE
}

kernel void conv2d_direct_few_rows(global const float *x, uint x_off, global const float *wt,
                                   uint w_off, global const float *bias, uint b_off,
                                   uint has_bias, global float *y, uint y_off, uint n, uint cin,
                                   uint h, uint w, uint cout, int pad, uint reflect, uint oh_n,
                                   uint ow_n)
{
    uint ow0 = get_global_id(0) * 8, t = get_global_id(1);
    uint row_blocks = (oh_n + FEW_ROWS - 1) / FEW_ROWS, o_blocks = (cout + 3) / 4;
    if (ow0 >= ow_n || t >= n * o_blocks * row_blocks)
        return;
    uint t2 = t / row_blocks, oh0 = (t - t2 * row_blocks) * FEW_ROWS;
    uint img = t2 / o_blocks, o0 = (t2 - img * o_blocks) * 4;
    const uint hw = h * w, taps = FEW_K * FEW_K, kc = cin * taps;
    /* weights of output channels past cout read channel cout - 1; dropped
     * (o1..o3 are offsets from channel o0's weights) */
    const uint o1 = (min(o0 + 1, cout - 1) - o0) * kc, o2 = (min(o0 + 2, cout - 1) - o0) * kc,
               o3 = (min(o0 + 3, cout - 1) - o0) * kc;
    uint row_at[FEW_SPAN];
    float row_ok[FEW_SPAN];
    for (int r = 0; r < FEW_SPAN; r++) {
        int ih = conv_pad_index((int)oh0 + r - pad, (int)h, reflect);
        row_ok[r] = ih >= 0 ? 1.0f : 0.0f;
        row_at[r] = (uint)max(ih, 0) * w;
    }
    float8 a0[FEW_ROWS], a1[FEW_ROWS], a2[FEW_ROWS], a3[FEW_ROWS];
    for (int r = 0; r < FEW_ROWS; r++)
        a0[r] = a1[r] = a2[r] = a3[r] = (float8)(0.0f);
    global const float *xi = x + x_off + img * cin * hw;
    for (uint kw = 0; kw < FEW_K; kw++) {
        int first = (int)ow0 + (int)kw - pad; /* the input column of lane 0 */
        global const float *xc = xi;
        global const float *wc = wt + w_off + o0 * kc + kw;
        for (uint c = 0; c < cin; c++, xc += hw, wc += taps) {
            float8 v[FEW_SPAN];
            for (int r = 0; r < FEW_SPAN; r++)
                v[r] = few_x_row8(xc + row_at[r], first, (int)w, reflect) * row_ok[r];
            for (int kh = 0; kh < FEW_K; kh++) {
                float w0 = wc[kh * FEW_K], w1 = wc[o1 + kh * FEW_K], w2 = wc[o2 + kh * FEW_K],
                      w3 = wc[o3 + kh * FEW_K];
                for (int r = 0; r < FEW_ROWS; r++) {
                    a0[r] += w0 * v[r + kh];
                    a1[r] += w1 * v[r + kh];
                    a2[r] += w2 * v[r + kh];
                    a3[r] += w3 * v[r + kh];
                }
            }
        }
    }
    float b0 = 0.0f, b1 = 0.0f, b2 = 0.0f, b3 = 0.0f;
    if (has_bias) {
        b0 = bias[b_off + o0];
        b1 = bias[b_off + min(o0 + 1, cout - 1)];
        b2 = bias[b_off + min(o0 + 2, cout - 1)];
        b3 = bias[b_off + min(o0 + 3, cout - 1)];
    }
    const uint plane = oh_n * ow_n;
    global float *yo = y + y_off + (img * cout + o0) * plane + ow0;
    for (int r = 0; r < FEW_ROWS; r++) {
        uint oh = oh0 + (uint)r;
        if (oh >= oh_n)
            break;
        uint at = oh * ow_n;
        few_store8(yo + at, a0[r] + b0, ow0, ow_n);
        if (o0 + 1 < cout)
            few_store8(yo + plane + at, a1[r] + b1, ow0, ow_n);
        if (o0 + 2 < cout)
            few_store8(yo + 2 * plane + at, a2[r] + b2, ow0, ow_n);
        if (o0 + 3 < cout)
            few_store8(yo + 3 * plane + at, a3[r] + b3, ow0, ow_n);
    }
}

/* The backward of the same convolutions, register-tiled like the forward.
 * dx goes in two passes: conv2d_direct_few_dxpad writes the gradient of the
 * padded input, gp (N x Cin x PH x PW, PH = OH + FEW_K - 1), which needs no
 * folding (gp[ph][pw] = sum_o,kh,kw w[o][c][kh][kw] dy[o][ph-kh][pw-kw] with
 * dy zero outside its plane), then conv2d_fold_padded_grad adds each padded
 * position into the input element it reads (for reflection up to three per
 * axis). A 2D range: dimension 0 is the strip s of 8 columns, dimension 1 is
 * (img * channel_blocks + block) * row_blocks + row block; a work-item
 * computes FEW_ROWS rows x FEW_CB channels of its strip of 8 columns
 * pw0 = 8 s .. 8 s + 7 as float8 sums (explicit vectors, as the forward),
 * loading each dy row of the strip once per tap column. Sums run over
 * (o, kw, kh) in that fixed order, per element. */
#define FEW_CB 4
/* g[first + i], i = 0..7, for the columns 0 <= first + i < ow_n, 0 outside. */
inline float8 few_dy_cols8(global const float *g, int first, int ow_n)
{
    if (first >= 0 && first + 8 <= ow_n)
        return vload8(0, g + first);
#define FEW_DY_COL(i) (first + (i) >= 0 && first + (i) < ow_n ? g[first + (i)] : 0.0f)
    return (float8)(FEW_DY_COL(0), FEW_DY_COL(1), FEW_DY_COL(2), FEW_DY_COL(3), FEW_DY_COL(4),
                    FEW_DY_COL(5), FEW_DY_COL(6), FEW_DY_COL(7));
#undef FEW_DY_COL
}

kernel void conv2d_direct_few_dxpad(global const float *dy, uint dy_off, global const float *wt,
                                    uint w_off, global float *gp, uint gp_off, uint n, uint cin,
                                    uint cout,
                                    uint oh_n, uint ow_n, uint ph_n, uint pw_n)
{
    uint pw0 = get_global_id(0) * 8, t = get_global_id(1);
    uint row_blocks = (ph_n + FEW_ROWS - 1) / FEW_ROWS, c_blocks = (cin + FEW_CB - 1) / FEW_CB;
    if (pw0 >= pw_n || t >= n * c_blocks * row_blocks)
        return;
    uint t2 = t / row_blocks, rb = t - t2 * row_blocks;
    uint img = t2 / c_blocks, cb = t2 - img * c_blocks;
    uint ph0 = rb * FEW_ROWS, c0 = cb * FEW_CB;
    const uint taps = FEW_K * FEW_K, kc = cin * taps, plane = oh_n * ow_n;
    uint row_at[FEW_SPAN]; /* dy rows ph0 - (FEW_K - 1) + s */
    float row_ok[FEW_SPAN];
    for (int s = 0; s < FEW_SPAN; s++) {
        int oh = (int)ph0 - (FEW_K - 1) + s;
        row_ok[s] = oh >= 0 && oh < (int)oh_n ? 1.0f : 0.0f;
        row_at[s] = (uint)clamp(oh, 0, (int)oh_n - 1) * ow_n;
    }
    float8 acc[FEW_CB][FEW_ROWS];
    for (int j = 0; j < FEW_CB; j++)
        for (int r = 0; r < FEW_ROWS; r++)
            acc[j][r] = (float8)(0.0f);
    for (uint o = 0; o < cout; o++) {
        global const float *go = dy + dy_off + (img * cout + o) * plane;
        for (uint kw = 0; kw < FEW_K; kw++) {
            int first = (int)pw0 - (int)kw; /* the dy column of lane 0 */
            float8 v[FEW_SPAN];
            for (int s = 0; s < FEW_SPAN; s++)
                v[s] = few_dy_cols8(go + row_at[s], first, (int)ow_n) * row_ok[s];
            for (int j = 0; j < FEW_CB; j++) {
                /* channels past cin read channel cin - 1 and are not stored */
                global const float *wc = wt + w_off + o * kc + min(c0 + j, cin - 1) * taps + kw;
                for (int kh = 0; kh < FEW_K; kh++) {
                    float wv = wc[kh * FEW_K];
                    for (int r = 0; r < FEW_ROWS; r++)
                        acc[j][r] += wv * v[r - kh + FEW_K - 1];
                }
            }
        }
    }
    for (int j = 0; j < FEW_CB; j++) {
        uint c = c0 + (uint)j;
        if (c >= cin)
            break;
        global float *gj = gp + gp_off + ((img * cin + c) * ph_n + ph0) * pw_n + pw0;
        for (int r = 0; r < FEW_ROWS; r++)
            if (ph0 + (uint)r < ph_n)
                few_store8(gj + r * pw_n, acc[j][r], pw0, pw_n);
    }
}

/* dw += the weight gradient: work-group (ob, c, kh) sums, for the output
 * channels o = 4 ob .. 4 ob + 3 below cout and every
 * kw, dy[img][o][oh][ow] * xpad[img][c][oh + kh][ow + kw] over all images
 * and output pixels. Work-item l takes the 8-column strips ow0 = 8 l,
 * 8 (l + FEW_DW_WG), ... and every row of them with float8 sums (explicit
 * vectors: PoCL runs this kernel, which has a barrier, as scalar code one
 * work-item after another); then, per output channel, work-item kw adds
 * the 8 * FEW_DW_WG lane sums of tap kw in a fixed order: deterministic. */
#define FEW_DW_WG 64

kernel void conv2d_direct_few_dw_rows(global const float *x, uint x_off, global const float *dy,
                                      uint dy_off, global float *dw, uint dw_off, uint n,
                                      uint cin, uint h, uint w, uint cout, int pad, uint reflect,
                                      uint oh_n, uint ow_n)
{
    local float lanes[FEW_K][8 * FEW_DW_WG];
    uint grp = get_group_id(0), lid = get_local_id(0), o_blocks = (cout + 3) / 4;
    if (grp >= o_blocks * cin * FEW_K)
        return; /* whole group: no barrier is skipped by part of it */
    uint ob = grp / (cin * FEW_K), ck = grp - ob * (cin * FEW_K);
    uint c = ck / FEW_K, kh = ck - c * FEW_K, o0 = ob * 4;
    const uint taps = FEW_K * FEW_K, kc = cin * taps, plane = oh_n * ow_n, hw = h * w;
    /* sums past cout read the last dy plane and are dropped (o1..o3 are
     * offsets from channel o0's plane) */
    const uint o1 = (min(o0 + 1, cout - 1) - o0) * plane,
               o2 = (min(o0 + 2, cout - 1) - o0) * plane,
               o3 = (min(o0 + 3, cout - 1) - o0) * plane;
    float8 s0[FEW_K], s1[FEW_K], s2[FEW_K], s3[FEW_K];
    for (int kw = 0; kw < FEW_K; kw++)
        s0[kw] = s1[kw] = s2[kw] = s3[kw] = (float8)(0.0f);
    for (uint ow0 = lid * 8; ow0 < ow_n; ow0 += FEW_DW_WG * 8) {
        int first = (int)ow0 - pad; /* the x column of lane 0 at kw = 0 */
        for (uint img = 0; img < n; img++) {
            global const float *xc = x + x_off + (img * cin + c) * hw;
            global const float *g = dy + dy_off + (img * cout + o0) * plane + ow0;
            for (uint oh = 0; oh < oh_n; oh++) {
                int ih = conv_pad_index((int)(oh + kh) - pad, (int)h, reflect);
                if (ih < 0)
                    continue; /* a zero-padding row adds nothing */
                global const float *xr = xc + (uint)ih * w;
                uint at = oh * ow_n;
                float8 d0 = few_dy8(g + at, ow0, ow_n), d1 = few_dy8(g + o1 + at, ow0, ow_n),
                       d2 = few_dy8(g + o2 + at, ow0, ow_n), d3 = few_dy8(g + o3 + at, ow0, ow_n);
                for (int kw = 0; kw < FEW_K; kw++) {
                    float8 v = few_x_row8(xr, first + kw, (int)w, reflect);
                    s0[kw] += d0 * v;
                    s1[kw] += d1 * v;
                    s2[kw] += d2 * v;
                    s3[kw] += d3 * v;
                }
            }
        }
    }
    /* one output channel at a time: every lane of every work-item to local
     * memory, then work-item kw < FEW_K adds tap kw's 8 * FEW_DW_WG sums in
     * order (no sum across a vector's lanes: LLVM makes shuffles of it, on
     * which Oclgrind 21.10 crashes) */
    for (uint o = 0; o < 4; o++) {
        for (int kw = 0; kw < FEW_K; kw++) {
            float8 v = o == 0 ? s0[kw] : o == 1 ? s1[kw] : o == 2 ? s2[kw] : s3[kw];
            vstore8(v, lid, lanes[kw]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        if (lid < FEW_K && o0 + o < cout) {
            float s = 0.0f;
            for (uint l = 0; l < 8 * FEW_DW_WG; l++)
                s += lanes[lid][l];
            dw[dw_off + (o0 + o) * kc + c * taps + kh * FEW_K + lid] += s;
        }
        barrier(CLK_LOCAL_MEM_FENCE); /* lanes is rewritten for the next channel */
    }
}
#endif

/* dx += the gradient of the padded input gp (N x Cin x PH x PW, padding pad
 * on every side) folded back: each input element adds the padded positions
 * that read it (one without reflection, up to three per axis with it), in a
 * fixed order. A 2D range: dimension 0 is iw, dimension 1 is
 * (img * Cin + c) * H + ih. */
kernel void conv2d_fold_padded_grad(global const float *gp, uint gp_off, global float *dx,
                                    uint dx_off,
                                    uint planes, uint h, uint w, int pad, uint reflect, uint ph_n,
                                    uint pw_n)
{
    uint iw = get_global_id(0), t = get_global_id(1);
    if (iw >= w || t >= planes * h)
        return;
    uint pl = t / h, ih = t - pl * h;
    int ph[3], pw[3];
    int nph = conv_preimages((int)ih, (int)h, pad, reflect, ph);
    int npw = conv_preimages((int)iw, (int)w, pad, reflect, pw);
    global const float *g = gp + gp_off + pl * ph_n * pw_n;
    float s = 0.0f;
    for (int a = 0; a < nph; a++)
        for (int b = 0; b < npw; b++)
            s += g[(uint)(ph[a] + pad) * pw_n + (uint)(pw[b] + pad)];
    dx[dx_off + t * w + iw] += s;
}

/* dx += the backward of a stride-1 convolution with few output channels
 * (cout <= 4), without a column buffer. One work-item per dx element
 * (img, c, ih, iw), flat NCHW: for each padded coordinate that reads this
 * element (up to three per axis under reflection) and each tap (kh, kw), the
 * output pixel (ph + pad - kh, pw + pad - kw) contributes
 * sum_o w[o][c][kh][kw] dy[o][...], added in that fixed order. */
kernel void conv2d_direct_few_dx(global const float *dy, uint dy_off, global const float *wt,
                                 uint w_off, global float *dx, uint dx_off, uint n, uint cin,
                                 uint h, uint w, uint cout, uint kh_n, uint kw_n, int pad,
                                 uint reflect, uint oh_n, uint ow_n)
{
    uint i = get_global_id(0);
    uint hw = h * w;
    if (i >= n * cin * hw)
        return;
    uint t = i / hw, q = i - t * hw;
    uint img = t / cin, c = t - img * cin;
    uint ih = q / w, iw = q - ih * w;
    const uint kc = cin * kh_n * kw_n, plane = oh_n * ow_n;
    int ph[3], pw[3];
    int nph = conv_preimages((int)ih, (int)h, pad, reflect, ph);
    int npw = conv_preimages((int)iw, (int)w, pad, reflect, pw);
    global const float *g = dy + dy_off + img * cout * plane;
    global const float *wc = wt + w_off + c * kh_n * kw_n;
    float s = 0.0f;
    for (int a = 0; a < nph; a++)
        for (uint kh = 0; kh < kh_n; kh++) {
            int oh = ph[a] + pad - (int)kh;
            if (oh < 0 || oh >= (int)oh_n)
                continue;
            for (int b = 0; b < npw; b++)
                for (uint kw = 0; kw < kw_n; kw++) {
                    int ow = pw[b] + pad - (int)kw;
                    if (ow < 0 || ow >= (int)ow_n)
                        continue;
                    uint at = (uint)oh * ow_n + (uint)ow, k = kh * kw_n + kw;
                    for (uint o = 0; o < cout; o++)
                        s += wc[o * kc + k] * g[o * plane + at];
                }
        }
    dx[dx_off + i] += s;
}

/* dw += the weight gradient of a stride-1 convolution with few output
 * channels: work-group k = (c * KH + kh) * KW + kw sums, for every o < cout,
 * dy[img][o][oh][ow] * xpad[img][c][oh + kh - pad][ow + kw - pad] over all
 * images and output pixels. Work-item l takes pixels l, l + WG, ... of each
 * image in image order, then a fixed local tree: deterministic. */
kernel void conv2d_direct_few_dw(global const float *x, uint x_off, global const float *dy,
                                 uint dy_off, global float *dw, uint dw_off, uint n, uint cin,
                                 uint h, uint w, uint cout, uint kh_n, uint kw_n, int pad,
                                 uint reflect, uint oh_n, uint ow_n)
{
    local float part[4][WG];
    uint k = get_group_id(0), lid = get_local_id(0);
    const uint taps = kh_n * kw_n, kc = cin * taps, plane = oh_n * ow_n;
    if (k >= kc)
        return; /* whole group: no barrier is skipped by part of it */
    uint c = k / taps, r = k - c * taps;
    uint kh = r / kw_n, kw = r - kh * kw_n;
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
    for (uint img = 0; img < n; img++) {
        global const float *xc = x + x_off + (img * cin + c) * h * w;
        global const float *g = dy + dy_off + img * cout * plane;
        /* pixels p = lid, lid + WG, ... with (oh, ow) stepped, not divided */
        uint oh = lid / ow_n, ow = lid - oh * ow_n;
        for (uint p = lid; p < plane; p += WG) {
            int ih = conv_pad_index((int)(oh + kh) - pad, (int)h, reflect);
            int iw = conv_pad_index((int)(ow + kw) - pad, (int)w, reflect);
            float v = 0.0f;
            if (ih >= 0 && iw >= 0)
                v = xc[(uint)ih * w + (uint)iw];
            /* sums past cout read a valid dy plane and are dropped */
            s0 += g[p] * v;
            s1 += g[min(1u, cout - 1) * plane + p] * v;
            s2 += g[min(2u, cout - 1) * plane + p] * v;
            s3 += g[min(3u, cout - 1) * plane + p] * v;
            for (ow += WG; ow >= ow_n; ow -= ow_n)
                oh++;
        }
    }
    part[0][lid] = s0;
    part[1][lid] = s1;
    part[2][lid] = s2;
    part[3][lid] = s3;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint m = WG / 2; m > 0; m >>= 1) {
        if (lid < m)
            for (uint o = 0; o < 4; o++)
                part[o][lid] += part[o][lid + m];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0)
        for (uint o = 0; o < cout; o++)
            dw[dw_off + o * kc + k] += part[o][0];
}

/* col2im covers the dx elements of the input rows [ih0, ih0 + nih) of every
 * channel, a 3D range: dimension 0 is a strip of columns, dimension 1 is
 * ih - ih0, dimension 2 is c. Each element adds the column gradient entries
 * of the output rows [r0, r0 + rows) that read it, in a fixed order (padded
 * row preimage, padded column preimage, kh, kw). stride_shift is
 * log2(stride) for power-of-two strides (no division: PoCL computes those
 * lane by lane), or 32 to divide. */
inline int conv_stride_div(int t, uint stride, uint stride_shift)
{
    return stride_shift < 32 ? t >> stride_shift : t / (int)stride;
}

/* The sum for one dx element (c, ih, iw), g pointing at channel c's rows of
 * the column gradient. */
inline float col2im_one(global const float *g, uint h, uint w, uint kh_n, uint kw_n,
                        uint stride, uint stride_shift, int pad, uint reflect, uint ow_n,
                        uint r0, uint rows, uint ih, uint iw)
{
    uint cols = rows * ow_n;
    int ph[3], pw[3];
    int nph = conv_preimages((int)ih, (int)h, pad, reflect, ph);
    int npw = conv_preimages((int)iw, (int)w, pad, reflect, pw);
    float s = 0.0f;
    for (int a = 0; a < nph; a++) {
        int th0 = ph[a] + pad; /* = oh * stride + kh */
        for (uint kh = 0; kh < kh_n; kh++) {
            int th = th0 - (int)kh;
            if (th < 0)
                continue;
            int oh = conv_stride_div(th, stride, stride_shift);
            if (oh * (int)stride != th || oh < (int)r0 || oh >= (int)(r0 + rows))
                continue;
            for (int b = 0; b < npw; b++) {
                int tw0 = pw[b] + pad;
                for (uint kw = 0; kw < kw_n; kw++) {
                    int tw = tw0 - (int)kw;
                    if (tw < 0)
                        continue;
                    int ow = conv_stride_div(tw, stride, stride_shift);
                    if (ow * (int)stride != tw || ow >= (int)ow_n)
                        continue;
                    s += g[(kh * kw_n + kw) * cols + ((uint)oh - r0) * ow_n + (uint)ow];
                }
            }
        }
    }
    return s;
}

/* A work-item owns 8 consecutive dx elements of one row (dimension 0 is the
 * strip iw0 = 8 * id), for the same reason as conv2d_im2col's strips. With
 * stride 1 or 2, a strip whose columns have no mirror images and whose taps
 * all land inside the output row adds vector loads of the column gradient,
 * in the same order as the lane-by-lane path (so both give the same bits);
 * other strips (borders, other strides) go lane by lane. */
kernel void conv2d_col2im(global const float *dcol, uint dcol_off, global float *dx, uint dx_off,
                          uint cin, uint h, uint w, uint kh_n, uint kw_n, uint stride,
                          uint stride_shift, int pad, uint reflect, uint ow_n, uint r0, uint rows,
                          uint ih0, uint nih)
{
    uint iw0 = get_global_id(0) * 8, ih = ih0 + get_global_id(1), c = get_global_id(2);
    if (iw0 >= w || ih >= ih0 + nih || c >= cin)
        return;
    uint cols = rows * ow_n;
    global const float *g = dcol + dcol_off + c * kh_n * kw_n * cols;
    global float *out = dx + dx_off + (c * h + ih) * w + iw0;
    /* columns iw0..iw0+7: inside the image, no mirror preimage (reflection
     * reaches columns 1..pad and w-1-pad..w-2), and every tap's output column
     * in range (iw + pad - kw = ow * stride) */
    int first_tw = (int)iw0 + pad - (int)(kw_n - 1), last_tw = (int)iw0 + 7 + pad;
    int no_mirror = !reflect || ((int)iw0 > pad && (int)iw0 + 7 < (int)w - 1 - pad);
    if (stride == 1 && iw0 + 8 <= w && no_mirror && first_tw >= 0 && last_tw < (int)ow_n) {
        int ph[3];
        int nph = conv_preimages((int)ih, (int)h, pad, reflect, ph);
        float8 s = (float8)(0.0f);
        for (int a = 0; a < nph; a++) {
            for (uint kh = 0; kh < kh_n; kh++) {
                int oh = ph[a] + pad - (int)kh;
                if (oh < (int)r0 || oh >= (int)(r0 + rows))
                    continue;
                global const float *gr = g + ((uint)oh - r0) * ow_n + iw0 + (uint)pad;
                for (uint kw = 0; kw < kw_n; kw++)
                    s += vload8(0, gr + (kh * kw_n + kw) * cols - kw);
            }
        }
        vstore8(vload8(0, out) + s, 0, out);
        return;
    }
    /* stride 2 (the down-sampling convolutions and the discriminator): tap
     * kw reaches every other lane of the strip, the lanes whose iw + pad - kw
     * is even, at 4 consecutive columns of the gradient row (a float4 put
     * into those lanes, zeros in the others, which leave a sum unchanged;
     * shuffle2 with constant masks, which Oclgrind 21.10 runs, where a
     * float8 built from the float4's components crashed it) */
    if (stride == 2 && iw0 + 8 <= w && no_mirror && first_tw >= 0 && (last_tw >> 1) < (int)ow_n) {
        int ph[3];
        int nph = conv_preimages((int)ih, (int)h, pad, reflect, ph);
        float8 s = (float8)(0.0f);
        const float4 zero4 = (float4)(0.0f);
        for (int a = 0; a < nph; a++) {
            for (uint kh = 0; kh < kh_n; kh++) {
                int th = ph[a] + pad - (int)kh;
                if (th < 0 || (th & 1) || (th >> 1) < (int)r0 || (th >> 1) >= (int)(r0 + rows))
                    continue;
                global const float *gr = g + ((uint)(th >> 1) - r0) * ow_n;
                for (uint kw = 0; kw < kw_n; kw++) {
                    int t0 = (int)iw0 + pad - (int)kw; /* lane 0's iw + pad - kw, >= 0 */
                    global const float *gk = gr + (kh * kw_n + kw) * cols;
                    if (t0 & 1) {
                        float4 v = vload4(0, gk + ((t0 + 1) >> 1));
                        s += shuffle2(v, zero4, (uint8)(4, 0, 4, 1, 4, 2, 4, 3));
                    } else {
                        float4 v = vload4(0, gk + (t0 >> 1));
                        s += shuffle2(v, zero4, (uint8)(0, 4, 1, 4, 2, 4, 3, 4));
                    }
                }
            }
        }
        vstore8(vload8(0, out) + s, 0, out);
        return;
    }
    for (uint i = 0; i < 8 && iw0 + i < w; i++)
        out[i] += col2im_one(g, h, w, kh_n, kw_n, stride, stride_shift, pad, reflect, ow_n, r0,
                             rows, ih, iw0 + i);
}

/* y = bias[c]: a 2D range, dimension 0 the pixel p of a plane, dimension 1
 * the plane img * cout + c, whose channel c a work-item steps to rather than
 * divides out (PoCL divides lane by lane). */
kernel void conv2d_bias_fill(global const float *bias, uint bias_off, global float *y, uint y_off,
                             uint planes, uint cout, uint plane)
{
    uint p = get_global_id(0), t = get_global_id(1);
    if (p >= plane || t >= planes)
        return;
    uint c = t;
    while (c >= cout) /* at most n - 1 steps, the same for a whole row of work-items */
        c -= cout;
    y[y_off + t * plane + p] = bias[bias_off + c];
}

/* y[c][p] of rows chunk (offset y_off, ld plane) = chunk[c][p] (ld cols) +
 * bias[c]: a row chunk's GEMM writes its Cout x cols product contiguously,
 * which CLBlast's kernel takes in place, and this stores it among the
 * planes of y with the bias added (the sum a bias fill followed by a
 * beta = 1 GEMM gives). 2D range: dimension 0 the element p of the chunk,
 * dimension 1 the channel c. */
kernel void conv2d_chunk_store(global const float *chunk, uint chunk_off, uint cols,
                               global const float *bias, uint bias_off, uint has_bias,
                               global float *y, uint y_off, uint plane, uint cout)
{
    uint p = get_global_id(0), c = get_global_id(1);
    if (p >= cols || c >= cout)
        return;
    float v = chunk[chunk_off + c * cols + p];
    y[y_off + c * plane + p] = has_bias ? v + bias[bias_off + c] : v;
}

/* Work-group c reduces channel c of dy (N, Cout, plane): work-item l sums
 * the 8-element blocks l, l + WG, ... of each image in image order as a
 * float8 (explicit vectors: with its barriers PoCL runs the kernel as scalar
 * code), its lanes go to local memory, then a fixed local tree over the
 * 8 WG sums; db[c] += the total. (No sum across a vector's lanes: LLVM
 * makes shuffles of it, on which Oclgrind 21.10 crashes.) */
kernel void conv2d_bias_backward(global const float *dy, uint dy_off, global float *db,
                                 uint db_off, uint n, uint cout, uint plane)
{
    local float part[8 * WG];
    uint c = get_group_id(0), lid = get_local_id(0);
    if (c >= cout)
        return; /* whole group: no barrier is skipped by part of it */
    float8 s8 = (float8)(0.0f);
    float tail = 0.0f;
    for (uint img = 0; img < n; img++) {
        global const float *p = dy + dy_off + (img * cout + c) * plane;
        for (uint i = lid * 8; i < plane; i += WG * 8) {
            if (i + 8 <= plane) {
                s8 += vload8(0, p + i);
            } else {
                for (uint j = i; j < plane; j++)
                    tail += p[j];
            }
        }
    }
    vstore8(s8, lid, part);
    part[8 * lid] += tail;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint k = 4 * WG; k > 0; k >>= 1) {
        for (uint j = lid; j < k; j += WG)
            part[j] += part[j + k];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0)
        db[db_off + c] += part[0];
}
