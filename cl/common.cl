/*
 * common.cl: prepended to every program. Definitions every kernel file may
 * use. Kernels take each tensor as (global float *data, uint offset) and
 * bound-check their work-item ids, because global sizes are rounded up to the
 * work-group size.
 */

/* Reflection padding index (PyTorch ReflectionPad2d: the edge is not repeated),
 * folded with period 2n - 2 so any i >= -(2n - 2) works; n == 1 returns 0.
 * Written without abs() and without a / next to a %: Oclgrind 21.10 cannot run
 * the llvm.abs intrinsic or the `freeze` LLVM emits for that pair. */
inline int dsd_reflect(int i, int n)
{
    if (n == 1)
        return 0;
    uint period = 2 * (uint)n - 2;
    uint q = (uint)(i + (int)period) % period;
    return q < (uint)n ? (int)q : (int)(period - q);
}
