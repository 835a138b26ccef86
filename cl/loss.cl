/*
 * loss.cl: backward kernels of the mean-reduced losses. Host side:
 * src/ops/loss.c. The forward passes have no kernels here: their elementwise
 * terms ((a-b)^2, |a-b|, the BCE with logits) are fused into pass 1 of the
 * deterministic reduction in cl/reduce.cl.
 *
 * Every kernel maps one work-item to one element. k is the host's
 * scale * (derivative constant) / n. `grads` says which gradients exist
 * (bit 0: da, bit 1: db); a missing one is bound to a read-only stand-in
 * buffer that the kernel never touches.
 */

/* MSE: d = k (a - b) with k = 2 scale / n; da += d, db -= d. */
kernel void mse_loss_backward(global const float *a, uint a_off, global const float *b,
                              uint b_off, global float *da, uint da_off, global float *db,
                              uint db_off, uint count, float k, uint grads)
{
    uint i = get_global_id(0);
    if (i >= count)
        return;
    float d = k * (a[a_off + i] - b[b_off + i]);
    if (grads & 1u)
        da[da_off + i] += d;
    if (grads & 2u)
        db[db_off + i] -= d;
}

/* L1: d = k sign(a - b) with sign(0) = 0 and k = scale / n; da += d, db -= d. */
kernel void l1_loss_backward(global const float *a, uint a_off, global const float *b,
                             uint b_off, global float *da, uint da_off, global float *db,
                             uint db_off, uint count, float k, uint grads)
{
    uint i = get_global_id(0);
    if (i >= count)
        return;
    float diff = a[a_off + i] - b[b_off + i];
    float d = diff > 0.0f ? k : (diff < 0.0f ? -k : 0.0f);
    if (grads & 1u)
        da[da_off + i] += d;
    if (grads & 2u)
        db[db_off + i] -= d;
}

/* sigmoid(z) - t without overflow and without cancellation where the
 * sigmoid saturates: with s = sigmoid(-|z|) = e / (1 + e), e = exp(-|z|),
 * sigmoid(z) = 1 - s for z >= 0 and s otherwise. */
inline float bce_logits_grad(float z, float t)
{
    float e = exp(-fabs(z));
    float s = e / (1.0f + e);
    return z >= 0.0f ? (1.0f - t) - s : s - t;
}

/* BCE with logits, constant target t: dz += k (sigmoid(z) - t), k = scale / n. */
kernel void bce_logits_loss_backward(global const float *z, uint z_off, global float *dz,
                                     uint dz_off, uint count, float target, float k)
{
    uint i = get_global_id(0);
    if (i < count)
        dz[dz_off + i] += k * bce_logits_grad(z[z_off + i], target);
}
