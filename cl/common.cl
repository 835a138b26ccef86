/*
 * common.cl: prepended to every program. Definitions every kernel file may
 * use. Kernels take each tensor as (global float *data, uint offset) and
 * bound-check their work-item ids, because global sizes are rounded up to the
 * work-group size.
 */

/* Reflection padding index (PyTorch ReflectionPad2d: the edge is not repeated).
 * Valid for -n < i < 2n - 1 and n > 1; for n == 1 returns 0. */
inline int dsd_reflect(int i, int n)
{
    if (n == 1)
        return 0;
    if (i < 0)
        i = -i;
    if (i >= n)
        i = 2 * n - 2 - i;
    return i;
}
