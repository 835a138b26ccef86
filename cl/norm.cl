/*
 * norm.cl: instance normalization (host side: src/ops/norm.c, reference:
 * tests/ref/norm.c).
 *
 * Statistics are per (n, c) plane over H x W with the biased variance. One
 * work-group of WG work-items owns a plane: work-item l visits elements
 * l, l + WG, ... (coalesced), keeping a Welford running (count, mean, M2);
 * a fixed local tree merges the WG states with Chan's formula. That reads x
 * once for the statistics, avoids the cancellation of sum(x^2) - sum(x)^2,
 * and gives the same bits run to run. The dgamma / dbeta sums over the batch
 * go through a small second kernel that adds the per-plane partials in n
 * order: no atomics anywhere.
 */

#ifndef WG
#define WG 256
#endif
#if (WG & (WG - 1)) != 0
#error "WG must be a power of two"
#endif

/* Mean and M2 = sum (x - mean)^2 of the plane p (hw floats) for the calling
 * group, left in *mean_out / *m2_out of every work-item. */
inline void plane_moments(global const float *p, uint hw, uint lid, local float *l_mean,
                          local float *l_m2, local uint *l_cnt, float *mean_out, float *m2_out)
{
    uint cnt = 0;
    float mean = 0.0f, m2 = 0.0f;
    for (uint i = lid; i < hw; i += WG) {
        float v = p[i];
        cnt++;
        float d = v - mean;
        mean += d / (float)cnt;
        m2 += d * (v - mean);
    }
    l_mean[lid] = mean;
    l_m2[lid] = m2;
    l_cnt[lid] = cnt;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint k = WG / 2; k > 0; k >>= 1) {
        if (lid < k && l_cnt[lid + k] > 0) {
            /* Chan et al.: merge (na, ma, M2a) with (nb, mb, M2b) */
            uint na = l_cnt[lid], nb = l_cnt[lid + k], n = na + nb;
            float fb = (float)nb / (float)n;
            float delta = l_mean[lid + k] - l_mean[lid];
            l_mean[lid] += delta * fb;
            l_m2[lid] += l_m2[lid + k] + delta * delta * (float)na * fb;
            l_cnt[lid] = n;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    *mean_out = l_mean[0];
    *m2_out = l_m2[0];
}

/* Group g = n*C + c normalizes plane g: moments, then one pass writing
 * y = (x - mean) * rstd * gamma[c] + beta[c]. y may be x (in place): each
 * work-item writes exactly the elements it read. gamma, beta, mean and rstd
 * are read / written only when their flag is set. */
kernel void instance_norm_forward(global const float *x, uint x_off, global const float *gamma,
                                  uint gamma_off, global const float *beta, uint beta_off,
                                  global float *y, uint y_off, global float *mean, uint mean_off,
                                  global float *rstd, uint rstd_off, uint planes, uint channels,
                                  uint hw, float eps, uint has_gamma, uint has_beta,
                                  uint save_stats)
{
    local float l_mean[WG], l_m2[WG];
    local uint l_cnt[WG];
    uint g = get_group_id(0), lid = get_local_id(0);
    if (g >= planes)
        return; /* whole group */
    size_t base = (size_t)g * hw;
    float mu, m2;
    plane_moments(x + x_off + base, hw, lid, l_mean, l_m2, l_cnt, &mu, &m2);
    float r = 1.0f / sqrt(m2 / (float)hw + eps);
    uint c = g % channels;
    float scale = has_gamma ? r * gamma[gamma_off + c] : r;
    float shift = has_beta ? beta[beta_off + c] : 0.0f;
    if (save_stats && lid == 0) {
        mean[mean_off + g] = mu;
        rstd[rstd_off + g] = r;
    }
    for (uint i = lid; i < hw; i += WG)
        y[y_off + base + i] = (x[x_off + base + i] - mu) * scale + shift;
}

/* Group g = n*C + c: a = sum dy, b = sum dy * xhat over plane g (local tree),
 * then (want_dx) dx += rstd * gamma * (dy - a/hw - xhat * b/hw), and
 * (want_partial) partial[g] = a, partial[planes + g] = b for the parameter
 * kernel below. */
kernel void instance_norm_backward_data(global const float *x, uint x_off,
                                        global const float *gamma, uint gamma_off,
                                        global const float *mean, uint mean_off,
                                        global const float *rstd, uint rstd_off,
                                        global const float *dy, uint dy_off, global float *dx,
                                        uint dx_off, global float *partial, uint partial_off,
                                        uint planes, uint channels, uint hw, uint has_gamma,
                                        uint want_dx, uint want_partial)
{
    local float l_a[WG], l_b[WG];
    uint g = get_group_id(0), lid = get_local_id(0);
    if (g >= planes)
        return; /* whole group */
    size_t base = (size_t)g * hw;
    global const float *px = x + x_off + base;
    global const float *pdy = dy + dy_off + base;
    float mu = mean[mean_off + g], r = rstd[rstd_off + g];
    float a = 0.0f, b = 0.0f;
    for (uint i = lid; i < hw; i += WG) {
        float d = pdy[i];
        a += d;
        b += d * ((px[i] - mu) * r);
    }
    l_a[lid] = a;
    l_b[lid] = b;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint k = WG / 2; k > 0; k >>= 1) {
        if (lid < k) {
            l_a[lid] += l_a[lid + k];
            l_b[lid] += l_b[lid + k];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    a = l_a[0];
    b = l_b[0];
    if (want_partial && lid == 0) {
        partial[partial_off + g] = a;
        partial[partial_off + planes + g] = b;
    }
    if (!want_dx)
        return;
    float k = has_gamma ? r * gamma[gamma_off + g % channels] : r;
    float mean_a = a / (float)hw, mean_b = b / (float)hw;
    global float *pdx = dx + dx_off + base;
    for (uint i = lid; i < hw; i += WG) {
        float xhat = (px[i] - mu) * r;
        pdx[i] += k * (pdy[i] - mean_a - xhat * mean_b);
    }
}

/* One work-item per channel c: dbeta[c] += sum_n partial[n*C + c] and
 * dgamma[c] += sum_n partial[planes + n*C + c], summed in n order. */
kernel void instance_norm_backward_params(global const float *partial, uint partial_off,
                                          global float *dgamma, uint dgamma_off,
                                          global float *dbeta, uint dbeta_off, uint batch,
                                          uint channels, uint want_dgamma, uint want_dbeta)
{
    uint c = get_global_id(0);
    if (c >= channels)
        return;
    uint planes = batch * channels;
    float sa = 0.0f, sb = 0.0f;
    for (uint n = 0; n < batch; n++) {
        sa += partial[partial_off + n * channels + c];
        sb += partial[partial_off + planes + n * channels + c];
    }
    if (want_dbeta)
        dbeta[dbeta_off + c] += sa;
    if (want_dgamma)
        dgamma[dgamma_off + c] += sb;
}
