/*
 * adam.cl: the fused Adam update (host side: src/optim/adam.c, reference:
 * tests/ref/adam.c).
 *
 * PyTorch's torch.optim.Adam (amsgrad off, weight_decay 0):
 *   m = b1 m + (1 - b1) g
 *   v = b2 v + (1 - b2) g^2
 *   p = p - step_size * m / (sqrt(v) * inv_sqrt_bc2 + eps)
 * with step_size = lr / (1 - b1^t) and inv_sqrt_bc2 = 1 / sqrt(1 - b2^t)
 * computed by the host in double and passed as floats, as are 1 - b1 and
 * 1 - b2 (exact in double, rounded once). p, g, m and v are flat arrays of
 * `count` floats (whole parameter arenas in training); the kernel ignores
 * their shapes.
 */

/* One work-item per element i < count; consecutive work-items touch
 * consecutive floats of all four arrays (coalesced). Each element is read
 * and written by its own work-item only, so the update is race-free and
 * the same run to run. */
kernel void adam_step(global float *p, uint p_off, global const float *g, uint g_off,
                      global float *m, uint m_off, global float *v, uint v_off, uint count,
                      float beta1, float one_minus_beta1, float beta2, float one_minus_beta2,
                      float step_size, float inv_sqrt_bc2, float eps)
{
    uint i = get_global_id(0);
    if (i >= count)
        return;
    float gi = g[g_off + i];
    float mi = beta1 * m[m_off + i] + one_minus_beta1 * gi;
    float vi = beta2 * v[v_off + i] + one_minus_beta2 * (gi * gi);
    m[m_off + i] = mi;
    v[v_off + i] = vi;
    float denom = sqrt(vi) * inv_sqrt_bc2 + eps;
    p[p_off + i] -= step_size * (mi / denom);
}
