/*
 * tensor.cl: whole-tensor utilities: fill (one work-item per element) and
 * matrix transpose.
 */
kernel void tensor_fill(global float *x, uint x_off, uint count, float value)
{
    uint i = get_global_id(0);
    if (i < count)
        x[x_off + i] = value;
}

/* dst = src^T: src is `rows` rows of `cols` floats, row i starting at
 * src_off + i * ld_src; dst is `cols` rows of `rows` floats, row j starting
 * at dst_off + j * ld_dst. A work-item moves one 8 x 8 block with float8
 * loads and stores (explicit vectors, so PoCL's CPU code is SIMD); blocks
 * cut by the matrix's edge go element by element. (src/ops/gemm.c uses it
 * to hand CLBlast operands in the order its kernel wants.) */
kernel void matrix_transpose(global const float *src, uint src_off, uint ld_src,
                             global float *dst, uint dst_off, uint ld_dst, uint rows, uint cols)
{
    uint j0 = get_global_id(0) * 8, i0 = get_global_id(1) * 8;
    if (i0 >= rows || j0 >= cols)
        return;
    global const float *s = src + src_off + i0 * ld_src + j0;
    global float *d = dst + dst_off + j0 * ld_dst + i0;
    if (i0 + 8 <= rows && j0 + 8 <= cols) {
        float8 r0 = vload8(0, s), r1 = vload8(0, s + ld_src), r2 = vload8(0, s + 2 * ld_src),
               r3 = vload8(0, s + 3 * ld_src), r4 = vload8(0, s + 4 * ld_src),
               r5 = vload8(0, s + 5 * ld_src), r6 = vload8(0, s + 6 * ld_src),
               r7 = vload8(0, s + 7 * ld_src);
        /* component `comp` of every row: one column of the block, one row of dst */
#define BLOCK_COL(comp) \
    (float8)(r0.comp, r1.comp, r2.comp, r3.comp, r4.comp, r5.comp, r6.comp, r7.comp)
        vstore8(BLOCK_COL(s0), 0, d);
        vstore8(BLOCK_COL(s1), 0, d + ld_dst);
        vstore8(BLOCK_COL(s2), 0, d + 2 * ld_dst);
        vstore8(BLOCK_COL(s3), 0, d + 3 * ld_dst);
        vstore8(BLOCK_COL(s4), 0, d + 4 * ld_dst);
        vstore8(BLOCK_COL(s5), 0, d + 5 * ld_dst);
        vstore8(BLOCK_COL(s6), 0, d + 6 * ld_dst);
        vstore8(BLOCK_COL(s7), 0, d + 7 * ld_dst);
#undef BLOCK_COL
        return;
    }
    for (uint i = 0; i < 8 && i0 + i < rows; i++)
        for (uint j = 0; j < 8 && j0 + j < cols; j++)
            d[j * ld_dst + i] = s[i * ld_src + j];
}
