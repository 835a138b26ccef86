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

/* Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2,
 * 3", SC 2011): the four words of one counter block under key. The device
 * twin of dsd_philox4x32_10 in src/philox.c, which must give the same words
 * (dropout masks, blur noise); callers use the words they need and the
 * compiler drops the rest. */
#define DSD_PHILOX_M0 0xD2511F53u
#define DSD_PHILOX_M1 0xCD9E8D57u
#define DSD_PHILOX_W0 0x9E3779B9u
#define DSD_PHILOX_W1 0xBB67AE85u
inline uint4 dsd_philox4x32_10(uint4 counter, uint2 key)
{
    uint c0 = counter.x, c1 = counter.y, c2 = counter.z, c3 = counter.w;
    uint k0 = key.x, k1 = key.y;
#pragma unroll
    for (int r = 0; r < 10; r++) {
        /* the high words through a 64-bit product rather than mul_hi: the
         * same bits, and PoCL vectorizes it (dropout 3.5x faster) */
        ulong p0 = (ulong)DSD_PHILOX_M0 * c0, p1 = (ulong)DSD_PHILOX_M1 * c2;
        uint lo0 = (uint)p0, hi0 = (uint)(p0 >> 32);
        uint lo1 = (uint)p1, hi1 = (uint)(p1 >> 32);
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += DSD_PHILOX_W0;
        k1 += DSD_PHILOX_W1;
    }
    return (uint4)(c0, c1, c2, c3);
}
