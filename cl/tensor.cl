/*
 * tensor.cl: whole-tensor utilities (fill). One work-item per element.
 */
kernel void tensor_fill(global float *x, uint x_off, uint count, float value)
{
    uint i = get_global_id(0);
    if (i < count)
        x[x_off + i] = value;
}
