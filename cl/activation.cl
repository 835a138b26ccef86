/*
 * activation.cl: pointwise activations, forward and backward (host side:
 * src/ops/activation.c, reference: tests/ref/activation.c).
 *
 * One work-item per element over the flat tensor, so consecutive work-items
 * touch consecutive floats. The activation is a kernel argument (uniform
 * branch, one program for all four); act takes dsd_activation's values.
 * Forward may run in place (y and x the same floats): each work-item reads
 * its element before writing it. Backward accumulates (dx += ...).
 */

#define ACT_LEAKY_RELU 0
#define ACT_RELU 1
#define ACT_SIGMOID 2
#define ACT_TANH 3

/* 1 / (1 + exp(-x)) without overflow: exp only ever sees -|x|. */
inline float dsd_sigmoid(float x)
{
    float e = exp(-fabs(x));
    float s = 1.0f / (1.0f + e);
    return x >= 0.0f ? s : e * s;
}

/* One work-item per element i: y[i] = f(x[i]). */
kernel void activation_forward(global const float *x, uint x_off, global float *y, uint y_off,
                               uint count, int act, float slope)
{
    uint i = get_global_id(0);
    if (i >= count)
        return;
    float v = x[x_off + i], r;
    if (act == ACT_LEAKY_RELU)
        r = v > 0.0f ? v : slope * v; /* NaN stays NaN */
    else if (act == ACT_RELU)
        r = v < 0.0f ? 0.0f : v;      /* NaN stays NaN (as PyTorch) */
    else if (act == ACT_SIGMOID)
        r = dsd_sigmoid(v);
    else
        r = tanh(v);
    y[y_off + i] = r;
}

/* One work-item per element i: dx[i] += f'(.) * dy[i]. src is x for the ReLU
 * family (gradient at x == 0: 0 for ReLU, slope for LeakyReLU, as PyTorch)
 * and y = f(x) for sigmoid (y (1 - y)) and tanh (1 - y^2). */
kernel void activation_backward(global const float *src, uint src_off, global const float *dy,
                                uint dy_off, global float *dx, uint dx_off, uint count, int act,
                                float slope)
{
    uint i = get_global_id(0);
    if (i >= count)
        return;
    float s = src[src_off + i], g = dy[dy_off + i], d;
    if (act == ACT_LEAKY_RELU)
        d = s > 0.0f ? g : slope * g;
    else if (act == ACT_RELU)
        d = s > 0.0f ? g : 0.0f;
    else if (act == ACT_SIGMOID)
        d = g * s * (1.0f - s);
    else
        d = g * (1.0f - s * s);
    dx[dx_off + i] += d;
}
