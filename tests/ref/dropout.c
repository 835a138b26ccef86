/*
 * ref/dropout.c: dropout references with their own Philox4x32-10 (see
 * dropout.h). The round keys are precomputed as key + r * (Weyl constants),
 * unlike the library's running bump, so a shared mistake is unlikely.
 */
#include "dropout.h"

void ref_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
    const uint64_t m[2] = {0xD2511F53u, 0xCD9E8D57u};
    const uint32_t weyl[2] = {0x9E3779B9u, 0xBB67AE85u};
    uint32_t x[4] = {ctr[0], ctr[1], ctr[2], ctr[3]};
    for (uint32_t r = 0; r < 10; r++) {
        uint32_t k0 = key[0] + r * weyl[0], k1 = key[1] + r * weyl[1];
        uint64_t prod0 = m[0] * x[0], prod1 = m[1] * x[2];
        uint32_t hi0 = (uint32_t)(prod0 >> 32), lo0 = (uint32_t)(prod0 & 0xffffffffu);
        uint32_t hi1 = (uint32_t)(prod1 >> 32), lo1 = (uint32_t)(prod1 & 0xffffffffu);
        uint32_t y0 = hi1 ^ x[1] ^ k0, y2 = hi0 ^ x[3] ^ k1;
        x[0] = y0;
        x[1] = lo1;
        x[2] = y2;
        x[3] = lo0;
    }
    for (int i = 0; i < 4; i++)
        out[i] = x[i];
}

int ref_dropout_keep(double p, uint64_t seed, uint64_t stream, uint32_t index)
{
    const uint32_t ctr[4] = {index, (uint32_t)(stream & 0xffffffffu), (uint32_t)(stream >> 32),
                             0};
    const uint32_t key[2] = {(uint32_t)(seed & 0xffffffffu), (uint32_t)(seed >> 32)};
    uint32_t out[4];
    ref_philox4x32_10(ctr, key, out);
    double u = (double)(out[0] >> 8) / 16777216.0;
    return u >= p;
}

void ref_dropout_forward(double p, uint64_t seed, uint64_t stream, const double *x,
                         size_t count, double *y)
{
    for (size_t i = 0; i < count; i++)
        y[i] = ref_dropout_keep(p, seed, stream, (uint32_t)i) ? x[i] / (1.0 - p) : 0.0;
}

void ref_dropout_backward(double p, uint64_t seed, uint64_t stream, const double *dy,
                          size_t count, double *dx)
{
    for (size_t i = 0; i < count; i++)
        if (ref_dropout_keep(p, seed, stream, (uint32_t)i))
            dx[i] += dy[i] / (1.0 - p);
}
